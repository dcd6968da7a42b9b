//! The `logkeeper` binary: everything is in the library's CLI module
//! ([`logkeeper::run`]), so the binary is this call.

fn main() -> std::process::ExitCode {
    logkeeper::run(std::env::args_os())
}
