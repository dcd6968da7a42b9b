//! What a segmented store remembers between runs, in its state dir
//! (`stores/<name>/segments.json`, replaced atomically):
//! - `validated`: sealed segments whose every line was checked, by name and
//!   (inode, size), so a run only reads segments it has not seen;
//! - `clean`: segments written by a compaction (or found to hold nothing to
//!   drop), by name and inode: the bytes of every other sealed segment are
//!   "dirty", the numerator of `min_dirty_ratio`;
//! - `pending`: compaction inputs whose events are already in a merged
//!   segment, to be deleted once `file_delete_delay` has passed, and only if
//!   the merged segment really replaced its first input (`after`);
//! - `journal`: the prunes the last run was about to make, written before
//!   the first unlink, so a run killed before its record is written still
//!   has its prunes named by the next run's record.
//!
//! Invariant: the file is only ever replaced whole (temp, fsync, rename,
//! fsync dir); a run killed at any instant leaves the previous state or the
//! new one. Stale entries (files gone or replaced) are ignored and dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::pattern::{Listing, Segment};
use crate::error::Result;
use crate::io::durable;

/// A file's identity: a rewritten file gets a new inode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub ino: u64,
    pub size: u64,
}

/// A compaction input waiting to be deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub name: String,
    pub ino: u64,
    pub since: DateTime<Utc>,
    /// The merged segment's name and inode: the input may only go once that
    /// file holds its events.
    pub after: (String, u64),
}

pub use crate::plan::retention::Pruned;

/// Prunes a run is making, recorded before it makes them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub pid: u32,
    pub at: Option<DateTime<Utc>>,
    pub pruned: Vec<Pruned>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SegState {
    pub validated: BTreeMap<String, FileId>,
    pub clean: BTreeMap<String, u64>,
    pub pending: Vec<Pending>,
    pub journal: Journal,
    pub last_compaction: Option<DateTime<Utc>>,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("segments.json")
}

impl SegState {
    /// The saved state, or an empty one (a damaged file only costs a
    /// re-validation, never data).
    pub fn load(state_dir: &Path) -> SegState {
        std::fs::read(path(state_dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, state_dir: &Path) -> Result<()> {
        durable::ensure_private_dir(state_dir)?;
        let json = serde_json::to_vec(self).expect("state serializes");
        durable::atomic_write(&path(state_dir), &json, 0o600)
    }

    pub fn is_validated(&self, name: &str, id: FileId) -> bool {
        self.validated.get(name) == Some(&id)
    }

    pub fn is_clean(&self, name: &str, ino: u64) -> bool {
        self.clean.get(name) == Some(&ino)
    }

    pub fn is_pending(&self, name: &str) -> bool {
        self.pending.iter().any(|p| p.name == name)
    }

    /// Drop entries for files that are gone or were replaced.
    /// Drop what the state remembers of segments gone or replaced;
    /// whether anything was dropped.
    pub fn forget_missing(&mut self, listing: &Listing) -> bool {
        let present: BTreeMap<&str, FileId> = listing
            .segments
            .iter()
            .map(|s| (s.name.as_str(), FileId::of(s)))
            .collect();
        let before = (self.validated.len(), self.clean.len());
        self.validated
            .retain(|n, id| present.get(n.as_str()) == Some(id));
        self.clean
            .retain(|n, ino| present.get(n.as_str()).map(|id| id.ino) == Some(*ino));
        before != (self.validated.len(), self.clean.len())
    }
}

impl FileId {
    /// A listed segment's inode and size.
    pub fn of(s: &Segment) -> FileId {
        FileId {
            ino: s.ino,
            size: s.size,
        }
    }
}

/// What the planner asks of the state (`plan::segmented`).
impl crate::plan::segmented::Marks for SegState {
    fn validated(&self, s: &Segment) -> bool {
        self.is_validated(&s.name, FileId::of(s))
    }

    fn clean(&self, s: &Segment) -> bool {
        self.is_clean(&s.name, s.ino)
    }
}
