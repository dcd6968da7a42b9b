//! A fixed-size, zeroed table of plain values, backed by huge pages when
//! it is large (Linux, transparent huge pages in `madvise` mode or on).
//!
//! Why: the fold's key map is read at random, one slot per line. With 4 KiB
//! pages a 4 MiB table spans 1024 pages, more than the TLB holds, so nearly
//! every lookup also walks the page tables (twice over under a hypervisor),
//! and a prefetch of the slot cannot retire until that walk is done: the
//! profile showed the scan stalled on its prefetches. A table of 2 MiB pages
//! needs one TLB entry per 2 MiB.
//!
//! Invariants:
//! - A table of at least [`HUGE`] bytes starts on a [`HUGE`] boundary and is
//!   advised (`MADV_HUGEPAGE`) before its first byte is touched, so the
//!   kernel can fault it in as huge pages; a smaller one is cache-line
//!   aligned. The advice is a hint: without it (other OSes, THP off) the
//!   table works the same on small pages.
//! - Every element starts as all-zero bytes, which [`Zeroable`] promises is
//!   a valid value.
//! - A huge table (Linux) is mapped straight from the kernel inside a
//!   larger reservation of address space (`PROT_NONE`: no memory, no
//!   commit charge), so [`Table::double_in_place`] can grow it where it
//!   lies: the old elements stay on their pages and only the new half is
//!   fresh memory. A doubling by copy held the old table and the new one
//!   at once (three times the old size) and faulted in all of the new one;
//!   fresh pages are the dearest part of a table on a VM, whose host backs
//!   a guest page only when it is first touched (`docs/performance.md`).

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A huge page (x86-64 and most aarch64 kernels).
pub(crate) const HUGE: usize = 2 << 20;

/// # Safety
/// All-zero bytes are a valid value of the type, and it has no drop glue.
pub(crate) unsafe trait Zeroable: Copy {}

/// See the module doc.
pub(crate) struct Table<T: Zeroable> {
    ptr: NonNull<T>,
    len: usize,
    /// The reservation the table lies in, when mapped (`len` 0 when it
    /// came from the allocator).
    map: Mapping,
}

/// A reservation of address space: the whole mapping, and how many bytes
/// from the table's start it allows.
#[derive(Clone, Copy, Default)]
struct Mapping {
    base: usize,
    len: usize,
    room: usize,
}

// SAFETY: the table owns its elements like a `Box<[T]>`.
unsafe impl<T: Zeroable + Send> Send for Table<T> {}
// SAFETY: as above; shared access only reads.
unsafe impl<T: Zeroable + Sync> Sync for Table<T> {}

impl<T: Zeroable> Default for Table<T> {
    fn default() -> Self {
        Table {
            ptr: NonNull::dangling(),
            len: 0,
            map: Mapping::default(),
        }
    }
}

impl<T: Zeroable> Table<T> {
    /// `len` zeroed elements.
    pub(crate) fn zeroed(len: usize) -> Self {
        let Some(layout) = Self::layout(len) else {
            return Self::default();
        };
        if layout.size() >= HUGE
            && let Some(map) = reserve(layout.size())
        {
            let ptr = NonNull::new((map.base.next_multiple_of(HUGE)) as *mut T)
                .expect("a mapping is never at address 0");
            return Table { ptr, len, map };
        }
        // SAFETY: the layout has a non-zero size (checked by `layout`).
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            handle_alloc_error(layout)
        };
        advise_huge(raw, layout.size());
        // SAFETY: `raw` holds `layout.size()` writable bytes; zero bytes are
        // a valid `T` (`Zeroable`).
        unsafe { raw.write_bytes(0, layout.size()) };
        Table {
            ptr,
            len,
            map: Mapping::default(),
        }
    }

    /// Double the table where it lies, if its reservation has room: the
    /// first half keeps its elements, the second is zeroed. Returns false,
    /// and changes nothing, otherwise (an allocated table, a full
    /// reservation, another OS): the caller then copies into a new table.
    pub(crate) fn double_in_place(&mut self) -> bool {
        let (now, want) = (self.len * size_of::<T>(), 2 * self.len * size_of::<T>());
        if self.map.len == 0 || want > self.map.room || want == 0 {
            return false;
        }
        if !allow(self.ptr.as_ptr() as usize + now, want - now) {
            return false;
        }
        self.len *= 2;
        true
    }

    fn layout(len: usize) -> Option<Layout> {
        let size = len
            .checked_mul(size_of::<T>())
            .expect("table size overflows");
        if size == 0 {
            return None;
        }
        let align = if size >= HUGE { HUGE } else { 64 };
        Some(Layout::from_size_align(size, align.max(align_of::<T>())).expect("table layout"))
    }
}

impl<T: Zeroable> Drop for Table<T> {
    fn drop(&mut self) {
        if self.map.len > 0 {
            return unmap(self.map);
        }
        if let Some(layout) = Self::layout(self.len) {
            // SAFETY: allocated in `zeroed` with this very layout.
            unsafe { dealloc(self.ptr.as_ptr().cast(), layout) }
        }
    }
}

impl<T: Zeroable> Deref for Table<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised elements (or a dangling pointer and 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> DerefMut for Table<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// The address space a huge table of `size` bytes reserves: room to
/// double several times where it lies (address space is plentiful, and
/// unused reservation costs no memory).
fn room_for(size: usize) -> usize {
    size.saturating_mul(16).max(64 << 20)
}

/// Map a reservation for a table of `size` bytes (a multiple of [`HUGE`]):
/// [`room_for`] bytes from a [`HUGE`] boundary, inaccessible but for the
/// first `size`, advised for huge pages. `None` if the kernel refuses (a
/// `ulimit -v`, say): the table is then allocated as a small one is.
#[cfg(target_os = "linux")]
fn reserve(size: usize) -> Option<Mapping> {
    let room = room_for(size);
    let len = room.checked_add(HUGE)?;
    // SAFETY: a fresh anonymous mapping at an address the kernel picks;
    // nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return None;
    }
    let map = Mapping {
        base: base as usize,
        len,
        room,
    };
    let start = map.base.next_multiple_of(HUGE);
    if !allow(start, size) {
        unmap(map);
        return None;
    }
    madvise_huge(start, room);
    Some(map)
}

#[cfg(not(target_os = "linux"))]
fn reserve(_size: usize) -> Option<Mapping> {
    None
}

/// Make `[at, at + len)` of a reservation readable and writable (its
/// pages, never touched, read as zeros).
#[cfg(target_os = "linux")]
fn allow(at: usize, len: usize) -> bool {
    // SAFETY: the range lies inside a reservation this module mapped and
    // still holds; no reference into it exists yet.
    unsafe {
        libc::mprotect(
            at as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn allow(_at: usize, _len: usize) -> bool {
    false
}

#[cfg(target_os = "linux")]
fn unmap(map: Mapping) {
    // SAFETY: the whole mapping `reserve` made; the table that lay in it is
    // being dropped, so nothing refers to it any more.
    unsafe {
        libc::munmap(map.base as *mut libc::c_void, map.len);
    }
}

#[cfg(not(target_os = "linux"))]
fn unmap(_map: Mapping) {}

/// Ask for huge pages over the whole 2 MiB pages inside `[p, p + len)`
/// (none if it holds none); a hint, failures ignored.
fn advise_huge(p: *const u8, len: usize) {
    let start = (p as usize).next_multiple_of(HUGE);
    let end = (p as usize).saturating_add(len) / HUGE * HUGE;
    if end > start {
        madvise_huge(start, end - start);
    }
}

#[cfg(target_os = "linux")]
fn madvise_huge(at: usize, len: usize) {
    // SAFETY: the range lies inside one live allocation of the caller's;
    // MADV_HUGEPAGE changes no contents.
    unsafe {
        libc::madvise(at as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn madvise_huge(_at: usize, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    // SAFETY: a u64 of zero bytes is 0.
    unsafe impl Zeroable for u64 {}

    #[test]
    fn tables_of_every_size_class_start_zeroed_aligned_and_hold_what_is_written() {
        for len in [0, 1, 7, 1000, HUGE / 8 - 1, HUGE / 8, 3 * HUGE / 8 + 5] {
            let mut t = Table::<u64>::zeroed(len);
            assert_eq!(t.len(), len);
            assert!(t.iter().all(|&x| x == 0), "len {len}");
            let align = if len * 8 >= HUGE { HUGE } else { 64 };
            assert!(
                len == 0 || (t.as_ptr() as usize).is_multiple_of(align),
                "len {len}"
            );
            for (i, x) in t.iter_mut().enumerate() {
                *x = i as u64 * 3;
            }
            assert!(t.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));
        }
    }

    #[test]
    fn a_huge_table_doubles_where_it_lies_keeping_its_elements_and_zeroing_the_rest() {
        let len = HUGE / 8;
        let mut t = Table::<u64>::zeroed(len);
        for (i, x) in t.iter_mut().enumerate() {
            *x = i as u64 + 1;
        }
        let at = t.as_ptr();
        let mut n = len;
        while t.double_in_place() {
            n *= 2;
            assert_eq!((t.len(), t.as_ptr()), (n, at));
            assert!(t[..len].iter().enumerate().all(|(i, &x)| x == i as u64 + 1));
            assert!(n == 2 * len || t[n / 2 - 1] == 7, "len {n}");
            assert!(t[n / 2..].iter().all(|&x| x == 0), "len {n}");
            t[n - 1] = 7;
        }
        // Linux: in place up to the reservation, then the caller copies.
        if cfg!(target_os = "linux") {
            assert_eq!(n * 8, room_for(len * 8));
        }
        let mut small = Table::<u64>::zeroed(1000);
        assert!(!small.double_in_place());
        assert_eq!(small.len(), 1000);
    }
}
