//! What a run reports about the writers it saw, the strategy it chose,
//! and a segmented store's steps: plain data, kept in the run record and
//! read by `status`. The job modules that produce each value re-export its
//! type (`census`, `strategy`, `carry`, `segmented`), so the record (the
//! state layer) imports nothing from the job above it.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One file descriptor open for writing on a watched file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opener {
    pub pid: u32,
    /// The program name (`/proc/<pid>/comm`), e.g. `marshal`.
    pub program: String,
    /// Which watched file the descriptor refers to (the name the caller gave
    /// for that inode, e.g. the live log or a rotated file).
    pub file: PathBuf,
    pub fd: u32,
    /// The open flags that matter to a log, e.g. `O_WRONLY|O_APPEND`.
    pub flags: String,
    /// Opened with `O_APPEND`: every write lands at the end of the inode.
    pub append: bool,
}

/// Who had the watched files open for writing at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Census {
    pub openers: Vec<Opener>,
    /// Processes whose descriptors could not be read (another user's, or
    /// restricted by `hidepid`): the census may miss their writers.
    pub unreadable: u32,
    /// False where this platform has no census (the list is then empty).
    pub supported: bool,
    /// Why the census cannot see every process that may write (empty when
    /// it can): processes of other users it may not read, a PID namespace
    /// that hides the rest of the machine, `/proc` mounted with `hidepid`.
    /// A run then assumes unseen writers exist (see [`Census::complete`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blind: Vec<String>,
}

/// What the carry window did (in the run record, under `strategy`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Window {
    /// Complete lines copied from the old inode into the live log.
    pub lines: u64,
    /// How long the window stayed open.
    pub ms: f64,
    /// The longest a carried line could have waited in the old inode
    /// (the gap between two polls, plus the append).
    pub max_carry_ms: f64,
    /// Writers that held the old inode at the swap and left it during the
    /// window (they follow a new inode: class A, or the writer protocol).
    pub followed: Vec<Opener>,
    /// Writers still holding the old inode when the window closed (they
    /// keep one fd for life: class B); their later lines wait for the next
    /// run.
    pub stayed: Vec<Opener>,
    /// An open gate was armed (`gate` is not `none`): opens of the live
    /// path during the window waited until the old inode's complete lines
    /// were carried.
    pub gated: bool,
    /// Which open gate the window had.
    pub gate: GateKind,
    /// With a fanotify gate, the opens of the live path that waited at it;
    /// with a lease, the breaks (each let every open waiting then through).
    pub gated_opens: u64,
}

/// The open gate of a carry window (docs/writers.md, "The open gate").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateKind {
    /// No gate: not permitted here, or `LOGKEEPER_OPEN_GATE=off`.
    #[default]
    None,
    /// A fanotify `FAN_OPEN_PERM` mark (`CAP_SYS_ADMIN`): every open of the
    /// live path waits.
    Fanotify,
    /// A write lease (`F_SETLEASE`; the file's owner, or `CAP_LEASE`):
    /// opens wait while it is held, and it is held whenever no other
    /// process has the live file open.
    Lease,
}

impl GateKind {
    pub fn name(self) -> &'static str {
        match self {
            GateKind::None => "none",
            GateKind::Fanotify => "fanotify",
            GateKind::Lease => "lease",
        }
    }
}

/// What a run chose and why (in the run record and `status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// `swap` or `in-place`.
    pub strategy: String,
    /// Why, naming the writers that decided it.
    pub reason: String,
    /// Writers whose lines this strategy cannot make visible within 1 s,
    /// and what to do (none when every writer is served).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unserved: Option<String>,
    /// The carry window after a swap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
}

/// What a run of a segmented store did, in the run record
/// (`stats.segments`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SegmentStats {
    /// The directory after the run.
    pub dir: DirSummary,
    /// The oldest retained seq before the run.
    pub oldest_seq_before: Option<u64>,
    /// Segments deleted by retention (by this run, or by an interrupted run
    /// whose record was never written: `reason` then says so).
    pub pruned: Vec<Pruned>,
    /// Sealed segments whose lines were checked by this run.
    pub validated: u64,
    /// Sealed segments rewritten without their malformed or torn lines.
    pub repaired: Vec<PathBuf>,
    /// Sealed segments left alone because a process had them open for
    /// writing.
    pub open_for_writing: Vec<PathBuf>,
    /// Events whose seq (with `seq` set) is not increasing across the
    /// checked segments (at most 10 per segment); nothing is changed.
    pub seq_problems: Vec<SeqProblem>,
    /// Bytes of sealed segments not yet compacted, and their share of the
    /// sealed bytes, when the run decided whether to compact.
    pub dirty_bytes: u64,
    pub dirty_ratio: f64,
    pub compaction: Option<CompactionStats>,
    /// Compaction inputs deleted (their events are in a merged segment).
    pub inputs_deleted: Vec<PathBuf>,
}

/// One segment deleted by retention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    pub file: PathBuf,
    /// The seq in its name (its first event).
    pub seq: u64,
    /// The next segment's seq: the pruned file held events `[seq, next_seq)`.
    pub next_seq: u64,
    pub bytes: u64,
    /// Which limit deleted it: `keep_files`, `max_age` or `max_bytes`.
    pub reason: String,
}

/// An event whose seq breaks the order readers rely on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeqProblem {
    pub file: PathBuf,
    /// Byte offset of the event's line in the segment.
    pub offset: u64,
    pub seq: u64,
    /// e.g. `is not greater than the previous event's (41)`.
    pub problem: String,
}

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompactionStats {
    /// Segments read.
    pub inputs: u64,
    /// Segments written (each under its group's first input's name).
    pub outputs: Vec<PathBuf>,
    /// Inputs whose events are now in an output: deleted after the delay.
    pub replaced: Vec<PathBuf>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub lines_in: u64,
    pub lines_out: u64,
    pub keys_live: u64,
    pub tombstones_kept: u64,
    pub tombstones_dropped: u64,
    /// Older writes of a key dropped because a later write supersedes them.
    pub superseded: u64,
}

/// A segmented store's directory at one instant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DirSummary {
    /// Segment files (names matching the pattern).
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// The smallest seq in a name: the oldest retained event.
    pub oldest_seq: Option<u64>,
    /// The seq in the active segment's name.
    pub newest_seq: Option<u64>,
    /// The active segment (the newest by seq; never touched).
    pub active: Option<PathBuf>,
    pub active_bytes: u64,
    /// Bytes in segments that no compaction has produced or found clean
    /// (the active one included).
    pub bytes_since_compaction: u64,
    pub last_compaction: Option<DateTime<Utc>>,
    /// Compaction inputs waiting to be deleted (their events are already
    /// in a merged segment).
    pub pending_delete: u64,
    /// Files in the directory that do not match the pattern (never touched).
    pub unmatched: Vec<PathBuf>,
    /// Seqs carried by more than one name: readers cannot order those files.
    pub duplicate_seqs: Vec<u64>,
}
