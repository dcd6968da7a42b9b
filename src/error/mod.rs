//! The library's one error type. Every variant says what failed and on which
//! file; [`Error::class`] says whose move it is (the caller's input, a busy
//! lock, or a failure), which the CLI maps to its exit codes. Messages do
//! not name CLI commands or flags: the CLI adds those as hints.

use std::path::{Path, PathBuf};

/// Whose move an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The input is wrong (arguments, config): fix it and retry.
    Usage,
    /// Another process holds a lock: retry later (or wait).
    Busy,
    /// Something failed while doing the work.
    Failed,
}

/// Everything that can go wrong. Each variant names what failed and on
/// which file, and keeps the underlying error as its `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed on a named file.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The config file is malformed or names an invalid value.
    #[error("{}{}: {msg}", path.display(), location(*line, *col))]
    Config {
        path: PathBuf,
        line: Option<usize>,
        col: Option<usize>,
        msg: String,
    },

    /// A store built in code (not loaded from a file) is invalid.
    #[error("store {store:?}: {msg}")]
    InvalidStore { store: String, msg: String },

    /// The config path exists but cannot be read as text (a directory,
    /// not UTF-8, no permission): a usage error, like a malformed config.
    #[error("cannot read config {}: {source} (point --config or LOGKEEPER_CONFIG at a TOML file)", path.display())]
    ConfigUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `demo DIR` on a directory with files of its own.
    #[error("{} is not empty and was not made by `logkeeper demo`: the demo would overwrite files there; give a new or empty directory", dir.display())]
    DemoDirInUse { dir: PathBuf },

    /// No config file where one was expected.
    #[error("no config file at {}", path.display())]
    NoConfig { path: PathBuf },

    /// A store name that the config does not declare.
    #[error("no store named {name:?} in {}{}", config.display(), known_list(known))]
    UnknownStore {
        name: String,
        config: PathBuf,
        known: Vec<String>,
    },

    /// Adding a store under a name the config already declares.
    #[error("a store named {name:?} already exists in {}", config.display())]
    StoreExists { name: String, config: PathBuf },

    /// The config declares no stores to act on.
    #[error("{} declares no stores", config.display())]
    NoStores { config: PathBuf },

    /// Several stores and none named (nor all asked for).
    #[error("{} declares several stores and none was named (stores: {})", config.display(), known.join(", "))]
    NoStoreNamed { config: PathBuf, known: Vec<String> },

    /// No home directory to derive a default location from.
    #[error("cannot find {what} (no home directory): {hint}")]
    NoHome {
        what: &'static str,
        hint: &'static str,
    },

    /// A system tool (crontab, systemctl, launchctl) could not be run.
    #[error("cannot run `{cmd}`: {source}{hint}")]
    ToolNotRun {
        cmd: String,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A system tool ran and reported failure.
    #[error("`{cmd}` failed ({status}): {stderr}{hint}")]
    ToolFailed {
        cmd: String,
        status: String,
        stderr: String,
        hint: &'static str,
    },

    /// The schedule is already registered with another backend.
    #[error(
        "the schedule of {} is already installed with {installed}",
        config.display()
    )]
    AlreadyInstalled {
        config: PathBuf,
        installed: &'static str,
    },

    /// A backend cannot run in the asked mode.
    #[error("the {backend} backend cannot run in {mode} mode: {hint}")]
    ModeUnsupported {
        backend: &'static str,
        mode: &'static str,
        hint: &'static str,
    },

    /// A store's schedule cannot be registered with the OS scheduler as asked.
    #[error("store {store:?}: {msg}")]
    Unschedulable { store: String, msg: String },

    /// No store of the config has a schedule to register.
    #[error("no store in {} has a schedule: add `schedule = \"*/30 * * * *\"` to a store", config.display())]
    NothingScheduled { config: PathBuf },

    /// A rendered unit or agent file failed its own check (a bug).
    #[error("rendered {}: {msg}", path.display())]
    Render { path: PathBuf, msg: String },

    /// A record could not be encoded as JSON (a path in it is not UTF-8).
    #[error("cannot encode {what} for {} as JSON: {source}", path.display())]
    Encode {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The store's single-flight lock is held by another run.
    #[error("store {store:?} is busy: {holder} holds {}", lock.display())]
    Busy {
        store: String,
        lock: PathBuf,
        holder: String,
    },

    /// A daemon already runs for this config (its single-instance lock is held).
    #[error("a logkeeper daemon already runs for this config ({holder}; lock {})", lock.display())]
    DaemonRunning { lock: PathBuf, holder: String },

    /// A line handed to the writer is not one valid JSON value.
    #[error("line {index} is not a single valid JSON value ({reason}); nothing was written")]
    InvalidLine { index: usize, reason: String },

    /// The log is a directory, device, fifo or socket.
    #[error("{}: {}", path.display(), if *is_dir {
        "is a directory, not a log file; point the store's `log` at the JSONL file"
    } else {
        "is not a regular file (a device, fifo or socket cannot be compacted)"
    })]
    NotAFile { path: PathBuf, is_dir: bool },

    /// A path cannot be passed to the OS (it contains a NUL byte).
    #[error("{} contains a NUL byte", path.display())]
    NulInPath { path: PathBuf },

    /// The log's filesystem has no room for the new log.
    #[error(
        "{}: not enough free space to compact: the new log needs about {need} bytes, {avail} are available; free some space or lower keep_rotated",
        dir.display()
    )]
    NoSpace { dir: PathBuf, need: u64, avail: u64 },

    /// Another program replaced the log during the run.
    #[error("{}: was replaced by another program during the run; nothing was changed, run again", path.display())]
    LogReplaced { path: PathBuf },

    /// Another program truncated or rewrote the log in place during the run
    /// (logrotate's copytruncate): the bytes that were folded are gone.
    #[error(
        "{}: was truncated or rewritten in place by another program during the run (it had {before} bytes, now {now}; logrotate's copytruncate?); nothing was changed: exclude this log from other rotation tools and run again",
        path.display()
    )]
    LogRewritten {
        path: PathBuf,
        before: u64,
        now: u64,
    },

    /// A rotated file watched for late writes shrank, was replaced, or had
    /// its carried bytes changed (logrotate's copytruncate straddling a
    /// swap): late lines written to it may be lost and cannot be carried.
    #[error(
        "{}: this rotated file is watched for late writes (a writer still appended to it after a swap) but {what}; lines a writer appended to it after that are lost to the log. The live log was not changed by this run; the file is no longer watched, so the next run proceeds. Exclude the log and its rotated files from other rotation tools (logrotate's copytruncate), and check that writer's recent events",
        rotated.display()
    )]
    LateWatchBroken { rotated: PathBuf, what: String },

    /// A process writes to the log in a way no swap can serve safely: at
    /// its own file offset, without `O_APPEND`.
    #[error(
        "{}: pid {pid} ({program}) has it open for writing without O_APPEND (fd {fd}, {flags}): its writes land at its own file offset, so after a swap they could overwrite lines and be lost; nothing was changed. Make that program open the log with O_APPEND (or use the writer protocol / logkeeper's LogWriter); if it is the only writer and you accept the risk, set `allow_positional_writers = true` on the store",
        path.display()
    )]
    UnsafeWriter {
        path: PathBuf,
        pid: u32,
        program: String,
        fd: u32,
        flags: String,
    },

    /// A writer held the log's lock past the swap's bound.
    #[error(
        "{}: {holder} has held the log's lock for over {:.1}s (hung?); nothing was changed{}",
        path.display(), waited.as_secs_f64(),
        if holder.starts_with("pid ") { String::new() } else { format!(", find it with `fuser {}`", path.display()) }
    )]
    WriterHung {
        path: PathBuf,
        waited: std::time::Duration,
        /// Who holds it (`pid N (program)`), else "a writer" (C.12).
        holder: String,
    },

    /// Moving the malformed lines to the quarantine file failed (ENOSPC,
    /// EIO...) before the swap: the run stopped with the log as it was
    /// (C.13). Entries already written are recognised by the next run.
    #[error(
        "{source}; {} is unchanged (the run stopped before touching it): free space on its filesystem and run again",
        log.display()
    )]
    QuarantineFailed {
        log: PathBuf,
        #[source]
        source: Box<Error>,
    },

    /// Writing the new log failed (ENOSPC, EFBIG, EIO...); the log is
    /// unchanged and the temp file removed.
    #[error(
        "{}: writing the new log failed: {source}; {} is unchanged and the temp file was removed",
        tmp.display(), log.display()
    )]
    WriteFailed {
        tmp: PathBuf,
        log: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A sealed segment changed while a run compacted it (its writer
    /// appended to a file it had rolled away from); nothing was replaced.
    #[error("sealed segment {}: {what}; nothing was replaced, the next run retries", path.display())]
    SegmentChanged { path: PathBuf, what: &'static str },

    /// An operation for one kind of store asked of the other kind.
    #[error("store {store:?}: {msg}")]
    WrongStoreKind { store: String, msg: &'static str },

    /// A step after the exchange failed (EIO on a failing disk): unlike
    /// every other failure of a run, the log *was* replaced (issue 16 B.11).
    #[error(
        "{}: {op} failed after the log was already replaced by its compacted file: {source}; the new log is complete and the old one is kept as {}; check the disk (dmesg), the next run finishes the clean-up",
        log.display(), rotated.display()
    )]
    AfterSwap {
        op: &'static str,
        log: PathBuf,
        rotated: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The new file read back from disk does not fold to the planned fold
    /// (issue 16 D): a defect, caught before the swap; the log is unchanged.
    #[error(
        "{}: verify before swap failed: the new file does not fold to the planned fold (planned {}, on disk {}); the log is unchanged; {}; this is a bug of logkeeper or a failing disk: please report it with that file",
        log.display(), verification.planned, verification.on_disk,
        match &verification.kept {
            Some(p) => format!("the new file is kept for diagnosis as {}", p.display()),
            None => "the new file could not be kept for diagnosis".to_string(),
        }
    )]
    VerifyFailed {
        log: PathBuf,
        verification: Box<crate::job::verify::Verification>,
    },

    /// SIGTERM or SIGINT stopped the run at a safe point before its swap
    /// (issue 16 B.7); the log is unchanged.
    #[error(
        "interrupted by {signal} {step}: the run stopped there and the log is unchanged; run it again"
    )]
    Interrupted {
        signal: &'static str,
        step: &'static str,
    },
    /// A name beside the log or in the state dir that another user could
    /// have planted, a directory they can write, or an owner the run cannot
    /// keep: refused before anything is changed (G8).
    #[error("{}: {msg}", path.display())]
    Unsafe { path: PathBuf, msg: String },

    /// `replay --as-of` asked for a time before the oldest retained point.
    #[error(
        "store {store:?}: {asked} is before the oldest retained point, {oldest} ({}); nothing older is kept (raise keep_rotated to keep more)",
        file.display()
    )]
    AsOfTooEarly {
        store: String,
        asked: String,
        oldest: String,
        file: PathBuf,
    },

    /// `replay --as-of` was given a time it cannot read.
    #[error(
        "{input:?} is not a time: use RFC 3339 (2026-11-29T08:00:00Z), a local \"YYYY-MM-DD HH:MM[:SS]\" or \"YYYY-MM-DD\", or Unix seconds"
    )]
    BadTime { input: String },

    /// Renaming the new log over the old one failed; the log is unchanged.
    #[error("{}: renaming the new log over it failed: {source}; the log is unchanged", path.display())]
    RenameFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn location(line: Option<usize>, col: Option<usize>) -> String {
    match (line, col) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (it declares no stores)".into()
    } else {
        format!(" (known: {})", known.join(", "))
    }
}

impl Error {
    /// Whose move this error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Config { .. }
            | Error::ConfigUnreadable { .. }
            | Error::DemoDirInUse { .. }
            | Error::InvalidStore { .. }
            | Error::NoConfig { .. }
            | Error::UnknownStore { .. }
            | Error::StoreExists { .. }
            | Error::NoStores { .. }
            | Error::NoStoreNamed { .. }
            | Error::NoHome { .. }
            | Error::AlreadyInstalled { .. }
            | Error::ModeUnsupported { .. }
            | Error::Unschedulable { .. }
            | Error::NothingScheduled { .. }
            | Error::NulInPath { .. }
            | Error::InvalidLine { .. }
            | Error::WrongStoreKind { .. }
            | Error::AsOfTooEarly { .. }
            | Error::BadTime { .. } => ErrorClass::Usage,
            Error::Busy { .. } | Error::DaemonRunning { .. } => ErrorClass::Busy,
            Error::Io { .. }
            | Error::Encode { .. }
            | Error::ToolNotRun { .. }
            | Error::ToolFailed { .. }
            | Error::Render { .. }
            | Error::NotAFile { .. }
            | Error::NoSpace { .. }
            | Error::LogReplaced { .. }
            | Error::LogRewritten { .. }
            | Error::LateWatchBroken { .. }
            | Error::UnsafeWriter { .. }
            | Error::WriterHung { .. }
            | Error::WriteFailed { .. }
            | Error::QuarantineFailed { .. }
            | Error::RenameFailed { .. }
            | Error::AfterSwap { .. }
            | Error::VerifyFailed { .. }
            | Error::Interrupted { .. }
            | Error::SegmentChanged { .. }
            | Error::Unsafe { .. } => ErrorClass::Failed,
        }
    }

    pub fn io(op: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `value` as JSON (pretty or compact) for the file at `path`. Fails only
/// on values serde_json cannot encode, such as a path that is not UTF-8.
pub(crate) fn to_json<T: serde::Serialize>(
    what: &'static str,
    path: &Path,
    value: &T,
    pretty: bool,
) -> Result<Vec<u8>> {
    let r = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    };
    r.map_err(|source| Error::Encode {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Attach an operation and a path to an `io::Result`.
pub trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
