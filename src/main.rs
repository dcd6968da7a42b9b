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
        // `logkeeper replay s | head`: the reader has what it wanted.
        Err(err) if cli::exit::is_broken_pipe(&err) => ExitCode::from(cli::exit::OK),
        Err(err) => {
            eprintln!("logkeeper: {}", message(&err));
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

/// The error and its causes, `: `-separated, each said once: the library's
/// errors already include their cause's text, so `{err:#}` would repeat it.
fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
