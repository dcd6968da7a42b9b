//! Thin wrappers over OS calls that have no std equivalent.

use std::fs::File;
use std::path::Path;

/// Ask the kernel to start writing `[off, off + len)` of `f` back now,
/// without waiting: the final fsync then has little left to do. A hint only;
/// durability still comes from the caller's fsync.
#[cfg(target_os = "linux")]
pub(crate) fn start_writeback(f: &File, off: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a valid fd; failure is harmless (a hint).
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            off as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn start_writeback(_f: &File, _off: u64, _len: u64) {}

/// Make a write past the file-size limit (`ulimit -f`, RLIMIT_FSIZE) fail
/// with EFBIG instead of killing the process with SIGXFSZ, so a run that
/// hits the limit removes its temp file and records the error like any
/// other failed write (G2). Sets the disposition of SIGXFSZ to ignore,
/// process-wide, once; [`crate::job::sync_store`] calls it, and a program
/// that appends with [`crate::writer::LogWriter`] under such a limit should
/// call it at start-up (the `logkeeper` binary does).
pub fn ignore_sigxfsz() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: setting a signal's disposition to SIG_IGN has no
        // preconditions; no handler runs.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
    });
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sync_store_makes_a_file_size_limit_an_error_not_a_signal() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("events.jsonl");
        std::fs::write(&log, "{\"id\":1}\n{\"id\":1}\n").unwrap();
        let store = crate::StoreConfig::builder("s", &log)
            .key(["/id"])
            .build()
            .unwrap();
        let paths = crate::Paths {
            config: dir.path().join("config.toml"),
            state_dir: dir.path().join("state"),
        };
        let rec = crate::sync_store(&paths, &store, &crate::SyncOptions::default());
        assert_eq!(rec.outcome, crate::Outcome::Ok, "{rec:?}");
        // No other unit test touches SIGXFSZ: only sync_store can have set it.
        // SAFETY: querying (not changing) a disposition into a zeroed struct.
        let old = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(
                libc::sigaction(libc::SIGXFSZ, std::ptr::null(), &mut old),
                0
            );
            old
        };
        assert_eq!(old.sa_sigaction, libc::SIG_IGN);
    }
}
