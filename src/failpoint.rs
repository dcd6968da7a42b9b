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

/// A failpoint kills the run (`LOGKEEPER_FAILPOINT=name`) or pauses it
/// (`LOGKEEPER_PAUSE=name`: the run creates the file `LOGKEEPER_PAUSE_FILE`
/// and waits, up to 60 s, until the test removes it), so a test can act
/// between two steps.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    if std::env::var("LOGKEEPER_PAUSE").is_ok_and(|v| v == name)
        && let Some(flag) = std::env::var_os("LOGKEEPER_PAUSE_FILE")
    {
        let _ = std::fs::write(&flag, b"");
        let t0 = std::time::Instant::now();
        while std::path::Path::new(&flag).exists() && t0.elapsed().as_secs() < 60 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
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
