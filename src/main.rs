//! The `logkeeper` binary: parse arguments, call the library, print, exit.

mod cli;
mod cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(std::env::args_os()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("logkeeper: {err:#}");
            ExitCode::from(cli::exit_code_of(&err))
        }
    }
}
