//! Named crash points for the fault-tolerance tests.
//!
//! Compiled in only with the `failpoints` feature. When the environment
//! variable `LOGKEEPER_FAILPOINT` names a point, the process kills itself with
//! SIGKILL there, exactly as a `kill -9` or a power cut would stop it: no
//! destructors, no cleanup.

/// Die here if `LOGKEEPER_FAILPOINT` names this point (tests only).
#[doc(hidden)]
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

/// `Err(errno)` here if `LOGKEEPER_FAILPOINT` is `NAME:ERRNO` (e.g.
/// `snapshot-write:ENOSPC`), else `Ok(())`. Tests only; a no-op otherwise.
#[doc(hidden)]
#[macro_export]
macro_rules! fail_io {
    ($name:literal) => {{
        #[cfg(feature = "failpoints")]
        let r = match $crate::failpoint::io_error($name) {
            Some(e) => Err(e),
            None => Ok(()),
        };
        #[cfg(not(feature = "failpoints"))]
        let r: std::io::Result<()> = Ok(());
        r
    }};
}

#[cfg(feature = "failpoints")]
pub fn io_error(name: &str) -> Option<std::io::Error> {
    let v = std::env::var("LOGKEEPER_FAILPOINT").ok()?;
    let (point, errno) = v.split_once(':')?;
    if point != name {
        return None;
    }
    let code = match errno {
        "ENOSPC" => libc::ENOSPC,
        "EIO" => libc::EIO,
        "EFBIG" => libc::EFBIG,
        "EROFS" => libc::EROFS,
        "EDQUOT" => libc::EDQUOT,
        _ => libc::EIO,
    };
    Some(std::io::Error::from_raw_os_error(code))
}
