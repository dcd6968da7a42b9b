//! Handing memory freed by a finished run back to the OS.
//!
//! The scan threads allocate from their own glibc arenas; when a run ends
//! the memory is freed but the arenas keep it, so an idle daemon would hold
//! the peak of its largest run forever. `malloc_trim(0)` returns the free
//! pages of every arena (glibc >= 2.8 walks all of them). Elsewhere (musl,
//! macOS) the allocator returns memory itself and this is a no-op.

/// Return freed heap memory to the OS. Cheap when there is nothing to return.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
