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
//!   free pages left inside every arena.
//!
//! Elsewhere (musl, macOS) both are no-ops: those allocators return memory
//! by themselves.

/// Fix the allocator's thresholds for a process that idles between runs.
/// Process-wide: the `logkeeper daemon` binary calls it; a program that
/// embeds the daemon decides for itself.
pub fn tune_for_long_running() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before the
    // daemon starts any thread that allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Return freed heap memory to the OS. Cheap when there is nothing to return.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
