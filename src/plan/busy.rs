//! The one set of files a run may not touch, which every planner consults
//! (as lsm-tree's hidden set): files a writer holds open (the census),
//! compaction inputs waiting for deletion, and files the run protects for
//! its own reasons (its own rotated file, uncarried late writes, a file not
//! quiet long enough under a blind census).
//!
//! Built by the job from what it observed; read here without I/O.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Files a planner must leave alone, by why.
#[derive(Clone, Debug, Default)]
pub struct Busy {
    open: HashSet<PathBuf>,
    pending: HashSet<PathBuf>,
    protected: HashSet<PathBuf>,
}

impl Busy {
    /// Nothing busy (the plan made before a census is taken).
    pub fn none() -> Busy {
        Busy::default()
    }

    /// A file the writer census shows open (for writing, where it says so).
    pub fn open(&mut self, p: impl Into<PathBuf>) -> &mut Busy {
        self.open.insert(p.into());
        self
    }

    /// A merged compaction input waiting for its deletion.
    pub fn pending(&mut self, p: impl Into<PathBuf>) -> &mut Busy {
        self.pending.insert(p.into());
        self
    }

    /// A file this run protects (its own rotated file, uncarried late
    /// writes, not quiet long enough).
    pub fn protect(&mut self, p: impl Into<PathBuf>) -> &mut Busy {
        self.protected.insert(p.into());
        self
    }

    pub fn is_open(&self, p: &Path) -> bool {
        self.open.contains(p)
    }

    pub fn is_pending(&self, p: &Path) -> bool {
        self.pending.contains(p)
    }

    /// Open, pending or protected: not to be deleted or rewritten.
    pub fn is_busy(&self, p: &Path) -> bool {
        self.is_open(p) || self.is_pending(p) || self.protected.contains(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_makes_a_file_busy_and_only_open_and_pending_are_told_apart() {
        let mut b = Busy::none();
        b.open("/a").pending("/b").protect("/c");
        assert!(b.is_open(Path::new("/a")) && !b.is_open(Path::new("/b")));
        assert!(b.is_pending(Path::new("/b")) && !b.is_pending(Path::new("/c")));
        for p in ["/a", "/b", "/c"] {
            assert!(b.is_busy(Path::new(p)), "{p}");
        }
        assert!(!b.is_busy(Path::new("/d")));
    }
}
