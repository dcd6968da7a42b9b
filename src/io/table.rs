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
        }
    }
}

impl<T: Zeroable> Table<T> {
    /// `len` zeroed elements.
    pub(crate) fn zeroed(len: usize) -> Self {
        let Some(layout) = Self::layout(len) else {
            return Self::default();
        };
        // SAFETY: the layout has a non-zero size (checked by `layout`).
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            handle_alloc_error(layout)
        };
        advise_huge(raw, layout.size());
        // SAFETY: `raw` holds `layout.size()` writable bytes; zero bytes are
        // a valid `T` (`Zeroable`).
        unsafe { raw.write_bytes(0, layout.size()) };
        Table { ptr, len }
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
}
