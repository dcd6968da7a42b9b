//! Handing memory freed by a finished run back to the OS, so a long-running
//! daemon idles small whatever it compacted before.
//!
//! Why two calls (glibc): the scan threads allocate from their own arenas.
//! glibc raises its mmap and trim thresholds dynamically each time a large
//! block is freed (up to 32 / 64 MiB), after which every thread arena keeps
//! megabytes of free memory at its top; and `malloc_trim` releases free
//! chunks inside an arena but trims the top only of the main one.
//! - [`tune_for_long_running`] (once, at `logkeeper daemon` start-up) fixes the mmap
//!   threshold at glibc's initial 128 KiB, which also stops the dynamic
//!   raise of the trim threshold: large buffers are then mapped and unmapped
//!   on their own, and an arena's top is trimmed as soon as it is freed.
//! - [`release_free_memory`] (after each of the daemon's runs) returns the
//!   free pages left inside every arena, and, in a process tuned so, drops
//!   the mappings of the code pages the run touched ([`drop_code_pages`]).
//!
//! Elsewhere (musl, macOS) both are no-ops: those allocators return memory
//! by themselves.

/// Whether [`release_free_memory`] also drops the executable's code pages:
/// set by [`tune_for_long_running`], as it acts on the whole process's
/// code, which in a program that embeds the daemon is not ours to manage.
static DROP_CODE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Fix the allocator's thresholds for a process that idles between runs,
/// and have [`release_free_memory`] drop the code pages a run touched.
/// Process-wide: the `logkeeper daemon` binary calls it; a program that
/// embeds the daemon decides for itself.
pub fn tune_for_long_running() {
    DROP_CODE.store(true, std::sync::atomic::Ordering::Relaxed);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before the
    // daemon starts any thread that allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Return freed heap memory to the OS and, in a process that called
/// [`tune_for_long_running`], let go of the code pages a run touched
/// ([`drop_code_pages`]). Cheap when there is nothing to return.
pub fn release_free_memory() {
    release(DROP_CODE.load(std::sync::atomic::Ordering::Relaxed));
}

/// [`release_free_memory`]; returns the bytes of code mappings dropped.
fn release(drop_code: bool) -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
    #[cfg(target_os = "linux")]
    if drop_code {
        return drop_code_pages();
    }
    let _ = drop_code;
    0
}

/// Drop the page-table entries of the executable's code (the pages stay
/// in the page cache); returns how many bytes of mappings it asked for.
///
/// Why: a run touches most of the program's code (4 of its 5.5 MiB on
/// x86-64), and those pages stay mapped, counted in the daemon's RSS
/// between runs (10.2 MiB, over its 10 MiB target, of which 7 MiB were
/// file pages), though the idle loop runs little of it. `MADV_DONTNEED` on
/// the executable's read-and-execute mapping drops its page-table entries
/// only: the pages stay in the page cache, shared, and come back as minor
/// faults when the next run runs them.
///
/// Only a mapping that `/proc/self/smaps` shows with no anonymous page
/// (code is never written; a written private page is a copy of its own,
/// which dropping would lose; `Private_Dirty` does not tell, as it also
/// counts a page cache page not yet written back, as in a binary just
/// built), and only the executable's own (not the libraries').
#[cfg(target_os = "linux")]
pub(crate) fn drop_code_pages() -> usize {
    let (Ok(exe), Ok(smaps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/smaps"),
    ) else {
        return 0;
    };
    let mut dropped = 0;
    for (start, end) in clean_code(&smaps, &exe) {
        // SAFETY: a read-only, executable, clean private file mapping of
        // our own executable: no Rust value lives in it, and dropping its
        // entries loses nothing (they fault back in from the file).
        if unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) }
            == 0
        {
            dropped += end - start;
        }
    }
    dropped
}

/// The `r-xp` mappings of `exe` in an smaps listing with no `Anonymous`
/// page, as address ranges.
#[cfg(any(target_os = "linux", test))]
fn clean_code(smaps: &str, exe: &std::path::Path) -> Vec<(usize, usize)> {
    let exe = exe.to_string_lossy();
    let mut out = Vec::new();
    let mut current = None;
    for line in smaps.lines() {
        if let Some((range, perms, path)) = mapping_header(line) {
            current = (perms == "r-xp" && path == exe).then_some(range);
        } else if let (Some(range), Some(v)) = (current, line.strip_prefix("Anonymous:")) {
            if v.trim() == "0 kB" {
                out.push(range);
            }
            current = None;
        }
    }
    out
}

/// `start-end perms offset dev inode path` (the path may hold spaces).
#[cfg(any(target_os = "linux", test))]
fn mapping_header(line: &str) -> Option<((usize, usize), &str, &str)> {
    let mut it = line.splitn(6, ' ');
    let (a, b) = it.next()?.split_once('-')?;
    let range = (
        usize::from_str_radix(a, 16).ok()?,
        usize::from_str_radix(b, 16).ok()?,
    );
    let perms = it.next()?;
    let path = it.nth(3).unwrap_or("").trim_start();
    Some((range, perms, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_clean_code_mappings_are_picked() {
        let smaps = "\
55f5dd419000-55f5dd505000 r--p 00000000 fd:00 123 /opt/lk bin
Anonymous:             0 kB
55f5dd505000-55f5dd95e000 r-xp 000ec000 fd:00 123          /opt/lk bin
Rss:                4260 kB
Private_Dirty:       256 kB
Anonymous:             0 kB
55f5dd95e000-55f5dd960000 r-xp 00545000 fd:00 123 /opt/lk bin
Anonymous:             8 kB
7fe8cf4d6000-7fe8cf62c000 r-xp 00028000 fd:00 456 /usr/lib/libc.so.6
Anonymous:             0 kB
7fe8c0000000-7fe8c008d000 rw-p 00000000 00:00 0 
Anonymous:           176 kB
";
        let exe = std::path::Path::new("/opt/lk bin");
        assert_eq!(
            clean_code(smaps, exe),
            vec![(0x55f5dd505000, 0x55f5dd95e000)]
        );
    }

    /// In this very process: the test binary's code is found and its
    /// entries dropped, and the code still runs after (it faults back in).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_code_pages_are_dropped_and_fault_back_in() {
        assert!(drop_code_pages() > 0);
        assert_eq!(
            mapping_header("1-2 r-xp 0 0:0 0 /x"),
            Some(((1, 2), "r-xp", "/x"))
        );
        assert!(drop_code_pages() > 0);
        // Only a process tuned for it (the daemon binary) drops them.
        assert_eq!(release(false), 0);
        assert!(release(true) > 0);
    }
}
