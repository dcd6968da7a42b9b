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

/// A reservation of address space: the whole mapping (`base` `None`:
/// none), and how many bytes from the table's start it allows.
#[derive(Clone, Copy, Default)]
struct Mapping {
    base: Option<NonNull<u8>>,
    len: usize,
    room: usize,
}

impl Mapping {
    /// Where a table in the reservation starts: its first [`HUGE`] boundary.
    fn start(&self) -> Option<NonNull<u8>> {
        let base = self.base?;
        let skip = base.as_ptr().addr().next_multiple_of(HUGE) - base.as_ptr().addr();
        // SAFETY: `reserve` maps `HUGE` bytes more than the room, so the
        // boundary lies inside the mapping.
        Some(unsafe { base.add(skip) })
    }
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
            && let Some(start) = map.start()
        {
            return Table {
                ptr: start.cast::<T>(),
                len,
                map,
            };
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
        if self.map.base.is_none() || want > self.map.room || want == 0 {
            return false;
        }
        if !allow(self.ptr.cast::<u8>(), now, want) {
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
        if self.map.base.is_some() {
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
/// double three times where it lies, more than a key map's budget lets it
/// (unused reservation costs no memory; but it counts against a `ulimit
/// -v`, which is why it is not larger).
#[cfg(any(target_os = "linux", test))]
fn room_for(size: usize) -> usize {
    size.saturating_mul(8).max(32 << 20)
}

/// Map a reservation for a table of `size` bytes (at least [`HUGE`]):
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
        base: NonNull::new(base.cast::<u8>()),
        len,
        room,
    };
    let start = map.start()?;
    if !allow(start, 0, size) {
        unmap(map);
        return None;
    }
    madvise_huge(start.as_ptr().addr(), room);
    Some(map)
}

#[cfg(not(target_os = "linux"))]
fn reserve(_size: usize) -> Option<Mapping> {
    None
}

/// Make bytes `[from, to)` from `start` in a reservation readable and
/// writable, whole pages (bytes before `from` on its page are already
/// so; its pages, never touched, read as zeros).
#[cfg(target_os = "linux")]
fn allow(start: NonNull<u8>, from: usize, to: usize) -> bool {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096);
    let from = (start.as_ptr().addr() + from) / page * page - start.as_ptr().addr();
    let to = to.next_multiple_of(page);
    // SAFETY: `start` is a [`HUGE`] boundary, so `from` (rounded down to a
    // page) is not before it, and `to` is within the room (a multiple of
    // `HUGE`): the range lies inside a reservation this module mapped and
    // still holds, and whatever of it is already in use stays readable
    // and writable.
    unsafe {
        libc::mprotect(
            start.as_ptr().add(from).cast(),
            to - from,
            libc::PROT_READ | libc::PROT_WRITE,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn allow(_start: NonNull<u8>, _from: usize, _to: usize) -> bool {
    false
}

#[cfg(target_os = "linux")]
fn unmap(map: Mapping) {
    let Some(base) = map.base else { return };
    // SAFETY: the whole mapping `reserve` made; the table that lay in it is
    // being dropped, so nothing refers to it any more.
    unsafe {
        libc::munmap(base.as_ptr().cast(), map.len);
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
        // A size off any page boundary doubles in place too.
        let mut odd = Table::<u64>::zeroed(len + 1);
        odd[len] = 9;
        assert_eq!(odd.double_in_place(), cfg!(target_os = "linux"));
        assert!(odd[len] == 9 && odd[len + 1..].iter().all(|&x| x == 0));
        let mut small = Table::<u64>::zeroed(1000);
        assert!(!small.double_in_place());
        assert_eq!(small.len(), 1000);
    }
}
