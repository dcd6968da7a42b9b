//! Rotated files: the pre-compaction log kept beside the live one, and their
//! pruning.
//!
//! Invariants:
//! - A rotated file is named `<log file name>.<UTC timestamp>`, e.g.
//!   `events.jsonl.20261123T104950.123Z`; only names of exactly that form are
//!   ever pruned, so the lock and quarantine files are never touched.
//! - The names are a sequence: a new name's stamp is later than every
//!   existing one's, even after the clock steps back, so name order is
//!   rotation order and pruning by it never takes the newest file.
//! - A protected file (this run's, one a writer holds open, one with late
//!   writes not carried yet) is never pruned.
//! - The rotated file is a hard link to the old log's inode, made while the
//!   writers' lock is held, so it holds the old log's exact bytes and mode.
//! - A crash between linking and the swap leaves a rotated name on the live
//!   inode; [`remove_live_links`] removes such names at the next run.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::error::{IoContext, Result};
use crate::io::durable;

const STAMP: &str = "%Y%m%dT%H%M%S%.3fZ";

fn file_name(log: &Path) -> String {
    log.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The rotated name for a file rotated at `at`.
pub fn rotated_name(log: &Path, at: DateTime<Utc>) -> PathBuf {
    durable::parent_dir(log).join(format!("{}.{}", file_name(log), at.format(STAMP)))
}

/// Parse the rotation time out of a rotated file name, if it is one.
fn parse_rotated(log_name: &str, candidate: &str) -> Option<DateTime<Utc>> {
    let stamp = candidate.strip_prefix(log_name)?.strip_prefix('.')?;
    NaiveDateTime::parse_from_str(stamp, STAMP)
        .ok()
        .map(|n| n.and_utc())
}

/// Rotated files of `log`, newest first.
pub fn list(log: &Path) -> Result<Vec<(DateTime<Utc>, PathBuf)>> {
    let dir = durable::parent_dir(log);
    let name = file_name(log);
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).ctx("list directory", dir)? {
        let entry = entry.ctx("list directory", dir)?;
        if let Some(at) = parse_rotated(&name, &entry.file_name().to_string_lossy()) {
            out.push((at, entry.path()));
        }
    }
    out.sort_by(|a, b| b.cmp(a));
    Ok(out)
}

/// Hard-link the live log under a fresh rotated name and return that name.
pub fn link_rotated(log: &Path) -> Result<PathBuf> {
    let mut at = Utc::now();
    if let Some((newest, _)) = list(log)?.first()
        && *newest >= at
    {
        at = *newest + chrono::Duration::milliseconds(1);
    }
    loop {
        let target = rotated_name(log, at);
        match fs::hard_link(log, &target) {
            Ok(()) => return Ok(target),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                at += chrono::Duration::milliseconds(1);
            }
            Err(e) => return Err(crate::Error::io("keep rotated copy of", log, e)),
        }
    }
}

/// Remove rotated names that point at the live log's own inode (left by a
/// run that crashed between linking and swapping).
pub fn remove_live_links(log: &Path) -> Result<Vec<PathBuf>> {
    let Ok(live) = fs::metadata(log) else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for (_, p) in list(log)? {
        if let Ok(m) = fs::metadata(&p)
            && m.ino() == live.ino()
            && m.dev() == live.dev()
        {
            fs::remove_file(&p).ctx("remove stale rotated link", &p)?;
            removed.push(p);
        }
    }
    Ok(removed)
}

/// Delete the rotated files retention chose (`plan::log::prune`), then
/// fsync the directory once.
pub fn remove(log: &Path, files: &[PathBuf]) -> Result<()> {
    for path in files {
        crate::failpoint::failpoint!(MidPrune);
        fs::remove_file(path).ctx("prune rotated file", path)?;
    }
    if !files.is_empty() {
        durable::fsync_dir(durable::parent_dir(log))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_rotated_names_parse() {
        assert!(parse_rotated("e.jsonl", "e.jsonl.20261123T104950.123Z").is_some());
        for other in [
            "e.jsonl",
            "e.jsonl.lock",
            "e.jsonl.quarantine",
            "e.jsonl.2026",
            "f.jsonl.20261123T104950.123Z",
        ] {
            assert!(parse_rotated("e.jsonl", other).is_none(), "{other}");
        }
    }
}
