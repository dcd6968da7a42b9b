//! Thin wrappers over OS calls that have no std equivalent.

use std::fs::File;

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
