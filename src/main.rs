//! The `logkeeper` binary: everything is in the library's CLI module
//! ([`logkeeper::run`]), so the binary is this call.

fn main() -> std::process::ExitCode {
    pin_mmap_threshold();
    logkeeper::run(std::env::args_os())
}

/// glibc raises its mmap threshold to the size of each large block freed
/// (up to 32 MiB). After the fold frees its first key table, later tables,
/// arenas and buffers come from the heap and stay resident after they are
/// freed: on 2M live keys, peak RSS 64 MiB where the heap peaked at 46.
/// With the threshold pinned, blocks of 256 KiB and more are always their
/// own mapping, returned to the system when freed (issue 18: memory flat).
fn pin_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; called before
    // any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}
