//! The command-line interface: argument parsing, dispatch to the library,
//! printing and exit codes. [`run`] is its one entry point, which the
//! `logkeeper` binary calls; everything else here is the crate's own.

pub(crate) mod cmd;
pub(crate) mod exit;
pub(crate) mod out;
pub(crate) mod progress;
pub(crate) mod render;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::paths::Paths;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "logkeeper",
    version,
    about = "Keeps append-only JSONL event logs small, durable and observable",
    after_help = "Exit codes: 0 ok; 1 a run failed (or status found a failed store); 2 usage or config error;\n3 status found a store overdue or never run; 75 busy (another run holds the store's lock)."
)]
pub struct Cli {
    /// Config file [default: $LOGKEEPER_CONFIG, else $XDG_CONFIG_HOME/logkeeper/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory [default: $LOGKEEPER_STATE_DIR, else $XDG_STATE_HOME/logkeeper]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log more to stderr (-v info, -vv debug); or set LOGKEEPER_LOG
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a realistic store in DIR (or a temp dir), sync it, show status
    Demo(cmd::demo::Args),
    /// Add, list or remove stores in the config file
    #[command(subcommand)]
    Store(cmd::store::StoreCmd),
    /// Run the job now
    #[command(subcommand)]
    Sync(cmd::sync::SyncCmd),
    /// Show each store's last run, last success, health and next run
    Status(cmd::status::Args),
    /// Append JSON lines to a store's log by the writer protocol
    Append(cmd::append::Args),
    /// Print a store's folded state, one line per live key
    Replay(cmd::replay::Args),
    /// Run every store's schedule until SIGTERM
    Daemon(cmd::daemon::Args),
    /// Install, uninstall or show the OS registration of the schedules
    #[command(subcommand)]
    Schedule(cmd::schedule::ScheduleCmd),
    /// Print a shell completion script (bash, zsh or fish)
    Completions(cmd::completions::Args),
    /// Print the man page (roff)
    Man(cmd::man::Args),
}

impl Cli {
    pub fn paths(&self) -> crate::Result<Paths> {
        Paths::resolve(self.config.as_deref(), self.state_dir.as_deref())
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGKEEPER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Like any Unix filter, a command whose reader went away (`status | head`)
/// ends quietly, killed by SIGPIPE, instead of panicking in `println!` (Rust
/// ignores SIGPIPE by default). Not the daemon: a closed stderr pipe must
/// never kill the scheduler. A run is crash-safe at any instant (G2), and
/// commands print only after their runs are recorded.
fn restore_default_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_DFL.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Run the `logkeeper` command line with `args` (the program name first),
/// print what it prints and return the exit code of the product contract
/// ([`crate::exit_code`]). Errors are printed to stderr, with a hint where
/// the library has one.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     logkeeper::run(std::env::args_os())
/// }
/// ```
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // A file-size limit (ulimit -f) must fail a write with EFBIG, which is
    // reported and cleaned up after, rather than kill the process: `sync`
    // gets this from the job; `append` and the rest from here.
    crate::ignore_sigxfsz();
    match dispatch(args) {
        Ok(code) => code,
        // `logkeeper replay s | head`: the reader has what it wanted.
        Err(err) if exit::is_broken_pipe(&err) => ExitCode::from(exit::OK),
        Err(err) => {
            eprintln!("logkeeper: {}", message(&err));
            if let Some(hint) = err
                .chain()
                .find_map(|e| e.downcast_ref::<crate::Error>())
                .and_then(render::hint)
            {
                eprintln!("logkeeper: hint: {hint}");
            }
            ExitCode::from(exit::of_error(&err))
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

/// Parse `args` and run the command; its exit code, or the error that
/// stopped it.
fn dispatch<I, T>(args: I) -> anyhow::Result<ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return Ok(ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            }));
        }
    };
    init_tracing(cli.verbose);
    if !matches!(cli.command, Command::Daemon(_)) {
        restore_default_sigpipe();
    }
    // The demo makes its own config and state; every other command gets
    // the resolved paths.
    let paths = || cli.paths();
    let code = match &cli.command {
        Command::Demo(a) => cmd::demo::run(a)?,
        Command::Store(c) => cmd::store::run(&paths()?, c)?,
        Command::Sync(c) => cmd::sync::run(&paths()?, c)?,
        Command::Status(a) => cmd::status::run(&paths()?, a)?,
        Command::Append(a) => cmd::append::run(&paths()?, a)?,
        Command::Replay(a) => cmd::replay::run(&paths()?, a)?,
        Command::Daemon(a) => cmd::daemon::run(&paths()?, a)?,
        Command::Schedule(c) => cmd::schedule::run(&paths()?, c)?,
        Command::Completions(a) => cmd::completions::run(a)?,
        Command::Man(a) => cmd::man::run(a)?,
    };
    // B.10: the work is done and recorded; only now does a full disk or a
    // closed stdout become the command's error (exit 1, not a panic).
    out::finish().map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "write the output to stdout (the command itself finished with exit code {code}; any run it made is recorded)"
        ))
    })?;
    Ok(ExitCode::from(code))
}
