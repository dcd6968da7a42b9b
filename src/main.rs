//! The `logkeeper` binary: parse arguments, call the library, print, exit.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // A file-size limit (ulimit -f) must fail a write with EFBIG, which is
    // reported and cleaned up after, rather than kill the process: `sync`
    // gets this from the library; `append` and the rest from here.
    logkeeper::ignore_sigxfsz();
    match cli::run(std::env::args_os()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("logkeeper: {err:#}");
            if let Some(hint) = err
                .chain()
                .find_map(|e| e.downcast_ref::<logkeeper::Error>())
                .and_then(cli::render::hint)
            {
                eprintln!("logkeeper: hint: {hint}");
            }
            ExitCode::from(cli::exit::of_error(&err))
        }
    }
}
