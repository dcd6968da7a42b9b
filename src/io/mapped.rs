//! Reading a stretch of a file through a read-only memory map, guarded
//! against the file shrinking under the map (Linux).
//!
//! Why: the scan reads the whole log prefix once. `pread` copies every byte
//! from the page cache into a buffer (11% of a compaction's time on the
//! standard workload, `docs/performance.md`); a map hands the page-cache
//! pages over as they are.
//!
//! The hazard of a map: touching a page wholly past the file's end raises
//! SIGBUS, which kills the process. What the scan maps is the log's prefix
//! `[0, cut)`: the log is append-only, writers never truncate it, and
//! logkeeper itself only truncates a log after folding it, under the store's
//! run lock (single flight, G5). But another tool may (a `copytruncate`
//! during a run; the swap detects it under the writers' lock and fails the
//! run with nothing changed). So a SIGBUS inside a live [`Window`] is
//! caught: the handler maps zero pages over the rest of that window and
//! marks it torn, the faulting read resumes on the zeros, and the reader
//! checks [`Window::torn`] before it trusts what it read, failing as a short
//! `pread` would. A SIGBUS anywhere else goes to the disposition that was in
//! place before (it is put back and the faulting access repeats).
//!
//! Invariants: a window's bytes are never written by anyone while it is
//! mapped (the prefix before the cut is never rewritten: appends land past
//! it); a window is registered for the handler for exactly as long as it
//! is mapped.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// One registered window: `[start, end)` of the address space.
struct Slot {
    /// 0: free; `CLAIMED`: being filled or emptied; else the map's address.
    start: AtomicUsize,
    end: AtomicUsize,
    torn: AtomicBool,
}

const CLAIMED: usize = usize::MAX;

/// Live windows at once. Each fold thread holds one; when all are taken a
/// window is read with `pread` instead (see [`Window::new`]).
const SLOTS: usize = 256;

static REGISTRY: [Slot; SLOTS] = [const {
    Slot {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        torn: AtomicBool::new(false),
    }
}; SLOTS];

static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The disposition SIGBUS had before ours (written once, before ours is
/// installed; read only by the handler).
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions; `PREVIOUS` is written here
        // once, before the handler that reads it can run; the sigaction
        // struct is fully initialised (zeroed, then the fields we use).
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE.store(page as usize, Ordering::Relaxed);
            }
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut act.sa_mask);
            let prev = (&raw mut PREVIOUS).cast::<libc::sigaction>();
            if libc::sigaction(libc::SIGBUS, &act, prev) == 0 {
                INSTALLED.store(true, Ordering::Release);
            }
        }
    });
    INSTALLED.load(Ordering::Acquire) && still_ours()
}

/// Whether SIGBUS still goes to [`on_sigbus`]: the handler hands the signal
/// back to the previous disposition on a fault that is not a window's, and
/// a host program embedding the library may install its own later. A map
/// without the guard could kill the process if the file shrank, so then
/// windows are read instead.
fn still_ours() -> bool {
    // SAFETY: sigaction with a null new action only reads the current one
    // into a zeroed struct we own.
    unsafe {
        let mut cur: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut cur) == 0
            && cur.sa_sigaction == on_sigbus as *const () as usize
    }
}

/// The SIGBUS handler. Async-signal-safe: atomics and `mmap`/`sigaction`
/// system calls only.
extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &REGISTRY {
        let start = slot.start.load(Ordering::Acquire);
        if start == 0 || start == CLAIMED || addr < start {
            continue;
        }
        let end = slot.end.load(Ordering::Acquire);
        // The slot may have been released and claimed again between the
        // two loads: `end` then belongs to another window than `start`.
        if addr >= end || slot.start.load(Ordering::Acquire) != start {
            continue;
        }
        let page = addr & !(PAGE.load(Ordering::Relaxed) - 1);
        // SAFETY: `[page, end)` lies inside a live window's map (registered
        // while mapped), which MAP_FIXED replaces with zero pages.
        let r = unsafe {
            libc::mmap(
                page as *mut libc::c_void,
                end - page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if r != libc::MAP_FAILED {
            slot.torn.store(true, Ordering::Release);
            return;
        }
        break;
    }
    // Not ours (or the zero map failed): put the previous disposition back;
    // the faulting access repeats and gets it.
    // SAFETY: `PREVIOUS` was filled by `install` before this handler existed.
    unsafe {
        libc::sigaction(
            libc::SIGBUS,
            (&raw const PREVIOUS).cast::<libc::sigaction>(),
            std::ptr::null_mut(),
        );
    }
}

/// `[start, start + len)` of a file, mapped (or, when no slot is free or
/// the map fails, read into memory).
pub(crate) struct Window {
    /// The map (page-aligned) and its length; null when `owned` holds the bytes.
    map: *mut libc::c_void,
    map_len: usize,
    /// Offset of the requested start inside the map.
    skip: usize,
    len: usize,
    slot: usize,
    owned: Vec<u8>,
}

// SAFETY: a window is a read-only view owned by one thread at a time.
unsafe impl Send for Window {}

impl Window {
    /// Map `[start, start + len)` of `file`. The file must hold those bytes
    /// now (checked); if it loses them while mapped, [`Window::torn`] says so.
    pub(crate) fn new(file: &File, start: u64, len: usize) -> io::Result<Window> {
        Window::map(file, start, len, libc::MAP_POPULATE)
    }

    /// [`Window::new`] for a window read sparsely: its pages are mapped in
    /// as they are first touched (the kernel maps a few around each), not
    /// all at once.
    pub(crate) fn sparse(file: &File, start: u64, len: usize) -> io::Result<Window> {
        Window::map(file, start, len, 0)
    }

    fn map(file: &File, start: u64, len: usize, populate: libc::c_int) -> io::Result<Window> {
        let size = file.metadata()?.len();
        if start + len as u64 > size {
            return Err(shrank(size));
        }
        if len == 0 || !install() {
            return Window::read(file, start, len);
        }
        let Some(slot) = claim() else {
            return Window::read(file, start, len);
        };
        let page = PAGE.load(Ordering::Relaxed) as u64;
        let base = start - start % page;
        let skip = (start - base) as usize;
        let map_len = skip + len;
        // SAFETY: a fresh read-only shared map of an open fd; the kernel
        // picks the address. MAP_POPULATE: the window is read whole, so
        // its page-table entries are made in one go here rather than by a
        // page fault every 16 pages as it is read.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_SHARED | populate,
                file.as_raw_fd(),
                base as libc::off_t,
            )
        };
        if map == libc::MAP_FAILED {
            release(slot);
            return Window::read(file, start, len);
        }
        let s = &REGISTRY[slot];
        s.torn.store(false, Ordering::Relaxed);
        s.end.store(map as usize + map_len, Ordering::Release);
        s.start.store(map as usize, Ordering::Release);
        Ok(Window {
            map,
            map_len,
            skip,
            len,
            slot,
            owned: Vec::new(),
        })
    }

    /// The fallback: the bytes read into memory.
    fn read(file: &File, start: u64, len: usize) -> io::Result<Window> {
        let mut owned = vec![0u8; len];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut owned, start).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                shrank(start)
            } else {
                e
            }
        })?;
        Ok(Window {
            map: std::ptr::null_mut(),
            map_len: 0,
            skip: 0,
            len,
            slot: usize::MAX,
            owned,
        })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        if self.map.is_null() {
            return &self.owned;
        }
        // SAFETY: the map is live for `self`'s life, readable, and holds
        // `skip + len` bytes; nobody writes them (module invariant), and
        // the SIGBUS handler only swaps unreadable pages for zero pages.
        unsafe { std::slice::from_raw_parts(self.map.cast::<u8>().add(self.skip), self.len) }
    }

    /// Whether the file lost some of these bytes while they were mapped:
    /// then [`Window::bytes`] read zeros in their place and must not be
    /// trusted.
    pub(crate) fn torn(&self) -> bool {
        !self.map.is_null() && REGISTRY[self.slot].torn.load(Ordering::Acquire)
    }

    /// [`Window::torn`] as the error a short `pread` gives.
    pub(crate) fn check(&self, at: u64) -> io::Result<()> {
        if self.torn() {
            return Err(shrank(at));
        }
        Ok(())
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        if self.map.is_null() {
            return;
        }
        let s = &REGISTRY[self.slot];
        s.start.store(CLAIMED, Ordering::Release);
        // SAFETY: the map was made by `new` with this address and length.
        unsafe {
            libc::munmap(self.map, self.map_len);
        }
        release(self.slot);
    }
}

fn claim() -> Option<usize> {
    (0..SLOTS).find(|&i| {
        REGISTRY[i]
            .start
            .compare_exchange(0, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

fn release(slot: usize) {
    REGISTRY[slot].end.store(0, Ordering::Relaxed);
    REGISTRY[slot].start.store(0, Ordering::Release);
}

fn shrank(at: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the log shrank while being read (expected data at byte {at})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_window_holds_the_bytes_at_any_offset() {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        t.write_all(&data).unwrap();
        let f = t.reopen().unwrap();
        for (start, len) in [(0, 20_000), (1, 4095), (4095, 2), (8192, 11_808)] {
            let w = Window::new(&f, start, len).unwrap();
            assert_eq!(w.bytes(), &data[start as usize..start as usize + len]);
            assert!(!w.torn());
        }
        let err = Window::new(&f, 19_000, 2_000).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// A file truncated while mapped: reading the lost pages does not kill
    /// the process (SIGBUS), they read as zeros and the window says torn.
    #[test]
    fn a_file_truncated_under_its_map_reads_as_torn_not_sigbus() {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        t.write_all(&vec![b'x'; 64 << 10]).unwrap();
        let f = t.reopen().unwrap();
        let w = Window::new(&f, 0, 64 << 10).unwrap();
        assert!(!w.map.is_null(), "the test needs a real map");
        t.as_file().set_len(4096).unwrap();
        let sum: u64 = w.bytes().iter().map(|&b| b as u64).sum();
        assert!(w.torn());
        assert!(w.check(0).is_err());
        // The first page is still the file's; the rest read as zeros.
        assert_eq!(sum, 4096 * b'x' as u64);
        drop(w);
        // A fresh window over what is left is whole again.
        let w = Window::new(&f, 0, 4096).unwrap();
        assert!(w.bytes().iter().all(|&b| b == b'x'));
        assert!(!w.torn());
    }
}
