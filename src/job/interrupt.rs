//! SIGTERM and SIGINT during a run (issue 16 B.7): systemd stops a timer's
//! job with SIGTERM, a user presses Ctrl-C. Killed outright, a run would
//! leave no record (status would still show the previous run as ok) and a
//! stale holder in the lock file. With [`install`], the signal only sets a
//! flag; the run stops at its next safe point (`check`): before the swap
//! it undoes (the temp file goes, the log is unchanged), and once the swap
//! has begun it finishes. Either way it writes its record, empties the lock
//! file, releases the lock and the caller exits non-zero.
//!
//! A second signal is not caught (`SA_RESETHAND`): it kills the run as a
//! `kill -9` would, which is still crash-safe (G2), for a user who will not
//! wait. Hand-written rather than `signal-hook`: one atomic store in the
//! handler is all it needs.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::{Error, Result};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe: one atomic store.
    RECEIVED.store(sig, Ordering::SeqCst);
}

/// Catch SIGTERM and SIGINT for the rest of the process (the CLI's
/// `sync now` calls it; an embedding program that wants the same calls it
/// too). Without `SA_RESTART`, so a blocking lock wait returns `EINTR`.
pub fn install() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction with a handler that only stores to an
        // atomic; the mask is initialised by sigemptyset.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The signal received since [`install`], if any, by name.
pub fn received() -> Option<&'static str> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        libc::SIGTERM => Some("SIGTERM"),
        libc::SIGINT => Some("SIGINT"),
        _ => Some("a signal"),
    }
}

/// A safe point: stop here (`Err`) if a signal came. `step` says where,
/// e.g. "before the swap".
pub(crate) fn check(step: &'static str) -> Result<()> {
    match received() {
        Some(signal) => Err(Error::Sync(crate::error::SyncError::Interrupted {
            signal,
            step,
        })),
        None => Ok(()),
    }
}

/// An error caused by the signal itself (a lock wait cut short with
/// `EINTR`) says so.
pub(crate) fn explain(e: Error) -> Error {
    match (received(), &e) {
        (Some(signal), Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::Interrupted =>
        {
            Error::Sync(crate::error::SyncError::Interrupted {
                signal,
                step: "while waiting for a lock",
            })
        }
        _ => e,
    }
}
