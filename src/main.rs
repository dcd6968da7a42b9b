//! The `logkeeper` binary: parse arguments, call the library, print, exit.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // A file-size limit (ulimit -f) must fail a write with EFBIG, which the
    // job reports and cleans up after, rather than kill the process.
    // SAFETY: setting a signal disposition to SIG_IGN at start-up.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    match cli::run(std::env::args_os()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("logkeeper: {err:#}");
            ExitCode::from(cli::exit::of_error(&err))
        }
    }
}
