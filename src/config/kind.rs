//! A store's kind, as a type: one live log that logkeeper rotates
//! ([`LogPolicy`]), or a directory of segments the app rotates itself
//! ([`SegmentPolicy`]). Each kind carries its own location and settings, so
//! a setting of the other kind cannot be expressed: the loader refuses it
//! (`config::segments::kind`), naming the store, the setting and the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::pattern::Pattern;

/// The default `keep_rotated`.
pub const DEFAULT_KEEP_ROTATED: usize = 3;
/// Default `min_dirty_ratio`, as Kafka's `min.cleanable.dirty.ratio`.
pub const DEFAULT_MIN_DIRTY_RATIO: f64 = 0.5;
/// Default `delete_retention`, as Kafka's `delete.retention.ms`.
pub const DEFAULT_DELETE_RETENTION: Duration = Duration::from_secs(86_400);
/// Default `file_delete_delay`, as Kafka's `file.delete.delay.ms`.
pub const DEFAULT_FILE_DELETE_DELAY: Duration = Duration::from_secs(60);

/// Which kind of store, with the settings only that kind has.
#[derive(Clone, Debug)]
pub enum StoreKind {
    /// `log = "..."`: one live log, compacted by rewriting it.
    Log(LogPolicy),
    /// `segments = "dir/events-{seq}.jsonl"`: sealed segments pruned,
    /// checked and merged.
    Segmented(SegmentPolicy),
}

/// The policy of a store with one live log.
#[derive(Clone, Debug)]
pub struct LogPolicy {
    /// The live log (never a pattern).
    pub log: PathBuf,
    /// Rotated files to keep (`keep_rotated`).
    pub keep_rotated: usize,
    /// Skip a run until the log grew by this fraction since the last
    /// compaction (`min_growth`; 0: never skip).
    pub min_growth: f64,
    /// An append-only log larger than this is archived whole (`rotate_bytes`).
    pub rotate_bytes: Option<u64>,
}

/// The policy of a segmented store (`segments = "dir/events-{seq}.jsonl"`).
/// `max_age` is the store's own `StoreConfig::max_age`.
#[derive(Clone, Debug)]
pub struct SegmentPolicy {
    pub pattern: Pattern,
    /// Newest sealed segments to keep (the active one always stays).
    pub keep_files: Option<usize>,
    /// Total bytes of the store's segments, active one included.
    pub max_bytes: Option<u64>,
    /// A sealed segment is compacted only once it is this old (mtime).
    pub min_compaction_lag: Duration,
    /// Tombstones are kept this long after their segment was written.
    pub delete_retention: Duration,
    /// Compact when dirty bytes / sealed bytes reaches this.
    pub min_dirty_ratio: f64,
    /// How long a compaction input whose events are in a merged segment
    /// stays before it is deleted (for readers mid-pass).
    pub file_delete_delay: Duration,
    /// JSON pointer to each event's seq (optional): health then checks that
    /// the seqs of a sealed segment increase and lie in
    /// `[its name's seq, the next name's seq)`.
    pub seq: Option<String>,
}

impl StoreKind {
    /// What the store is known by in records and messages: its live log,
    /// or its segments pattern (a path with `{seq}`, never opened).
    pub fn path(&self) -> &Path {
        match self {
            StoreKind::Log(p) => &p.log,
            StoreKind::Segmented(p) => &p.pattern.path,
        }
    }
}
