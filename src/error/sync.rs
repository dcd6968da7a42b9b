//! One run of the job (sync, compaction) on a store's log.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Error, ErrorClass};

/// One run of the job (sync, compaction) on a store's log.
///
/// Each variant names what failed and on which file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
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
        verification: Box<Verification>,
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

    /// Renaming the new log over the old one failed; the log is unchanged.
    #[error("{}: renaming the new log over it failed: {source}; the log is unchanged", path.display())]
    RenameFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SyncError {
    /// Whose move this error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            SyncError::NulInPath { .. } => ErrorClass::Usage,
            SyncError::NotAFile { .. }
            | SyncError::NoSpace { .. }
            | SyncError::LogReplaced { .. }
            | SyncError::LogRewritten { .. }
            | SyncError::LateWatchBroken { .. }
            | SyncError::UnsafeWriter { .. }
            | SyncError::WriterHung { .. }
            | SyncError::QuarantineFailed { .. }
            | SyncError::WriteFailed { .. }
            | SyncError::SegmentChanged { .. }
            | SyncError::AfterSwap { .. }
            | SyncError::VerifyFailed { .. }
            | SyncError::Interrupted { .. }
            | SyncError::RenameFailed { .. } => ErrorClass::Failed,
        }
    }
}

/// What a verification before a swap found (`job/verify.rs` computes it;
/// it is kept in the run record, and in [`SyncError::VerifyFailed`]).
///
/// A digest of the snapshot: its lines in order (count, bytes and a 64-bit
/// sum of a hash of each line's offset and bytes) and its fold (live keys, and lines a fold of
/// it would drop: a key seen twice, a delete, a malformed line).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub lines: u64,
    pub bytes: u64,
    /// 16 hex digits.
    pub hash: String,
    /// Distinct live keys (keyed stores): of the plan, as the scan folded
    /// the log; on disk, as a fold of the new file finds them.
    pub keys: u64,
    /// Lines a fold of the file would drop or change (0 for a plan).
    pub unfolded: u64,
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} lines, {} bytes, {} keys, {} lines a fold would drop)",
            self.hash, self.lines, self.bytes, self.keys, self.unfolded
        )
    }
}

/// What the verification of one swap found (kept in the run record).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Of the plan: the kept lines as the fold chose them.
    pub planned: Digest,
    /// Of the new file's snapshot as read back from disk.
    pub on_disk: Digest,
    pub ms: f64,
    /// Where the new file was kept, on a mismatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<PathBuf>,
}
