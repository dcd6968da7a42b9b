//! Standard output that reports a failed write instead of panicking
//! (issue 16 B.10: `status > /dev/full` exited 101).
//!
//! `out!` / `outln!` replace `print!` / `println!` in the commands. A failed
//! write is remembered, not returned: a `sync now` of several stores goes on
//! running (and recording) them all, and [`finish`] turns the first failure
//! into the command's error after the work is done, so a run's own outcome
//! (its record, the metrics file) never depends on where its output went.

use std::io::Write;
use std::sync::Mutex;

/// The first failed write to stdout, if any.
static FIRST_ERROR: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Write to stdout; remember the first failure for [`finish`].
pub fn write(args: std::fmt::Arguments<'_>) {
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        remember(e);
    }
}

fn remember(e: std::io::Error) {
    let mut first = FIRST_ERROR.lock().unwrap_or_else(|p| p.into_inner());
    first.get_or_insert(e);
}

/// Flush stdout; the first write that failed since the process started.
pub fn finish() -> std::io::Result<()> {
    if let Err(e) = std::io::stdout().lock().flush() {
        remember(e);
    }
    match FIRST_ERROR.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `print!` to stdout through [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!($($arg)*))
    };
}

/// `println!` to stdout through [`write`].
macro_rules! outln {
    () => {
        $crate::cli::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};
