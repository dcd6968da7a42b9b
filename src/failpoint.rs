//! Named crash points for the fault-tolerance tests.
//!
//! Compiled in only with the `failpoints` feature. When the environment
//! variable `LOGKEEPER_FAILPOINT` names a point, the process kills itself with
//! SIGKILL there, exactly as a `kill -9` or a power cut would stop it: no
//! destructors, no cleanup.

/// Die here if `LOGKEEPER_FAILPOINT` names this point (tests only).
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        $crate::failpoint::hit($name);
    };
}

#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    if std::env::var("LOGKEEPER_FAILPOINT").is_ok_and(|v| v == name) {
        // SAFETY: raising a signal on ourselves.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
