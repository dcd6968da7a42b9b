//! Bytes a non-cooperating writer appended to the old log after a swap.
//!
//! A writer that keeps an fd open and never takes the `flock` goes on
//! appending to the old inode after a compaction renamed the new log over
//! it. That inode is the newest rotated file, so those bytes are not lost:
//! each run records the rotated file's size at the swap, and the next run
//! compares. Complete lines written past that size are carried into the live
//! log by the writer protocol (malformed ones go to quarantine), and the run
//! record and `status` report it.
//!
//! Invariant: the checked size only moves forward past lines that were
//! carried, so a line is carried at most once, and never dropped.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::fold::json::Scanner;
use crate::fold::{Bad, Range};
use crate::io::durable;
use crate::job::quarantine;
use crate::writer::LogWriter;

/// The newest rotated file and its size when it stopped being the live log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Watch {
    pub rotated: PathBuf,
    pub size: u64,
}

/// What [`carry`] found.
#[derive(Clone, Debug, Default)]
pub struct Carried {
    pub lines: u64,
    pub quarantined: u64,
    pub from: Option<PathBuf>,
    /// The watch to keep (the rotated file's new checked size).
    pub watch: Option<Watch>,
}

/// Carry complete lines appended to `watch.rotated` after the swap into the
/// live log at `log`.
pub fn carry(log: &Path, watch: &Watch, mode: u32) -> Result<Carried> {
    let mut out = Carried {
        watch: Some(watch.clone()),
        ..Carried::default()
    };
    let Ok(f) = File::open(&watch.rotated) else {
        return Ok(out); // pruned or moved away: nothing to watch
    };
    let size = f.metadata().ctx("stat", &watch.rotated)?.len();
    if size <= watch.size {
        return Ok(out);
    }
    let mut buf = vec![0u8; (size - watch.size) as usize];
    f.read_exact_at(&mut buf, watch.size)
        .ctx("read late writes in", &watch.rotated)?;
    // Only complete lines; a partial one waits for the next run.
    let Some(last_nl) = memchr::memrchr(b'\n', &buf) else {
        return Ok(out);
    };
    let mut good: Vec<&[u8]> = Vec::new();
    let mut bad = Vec::new();
    let mut scanner = Scanner::new();
    let mut at = 0usize;
    for line in buf[..last_nl].split(|&b| b == b'\n') {
        let start = watch.size + at as u64;
        if let Err(reason) = scanner.validate(line) {
            bad.push(Bad {
                range: Range {
                    start,
                    end: start + line.len() as u64 + 1,
                },
                reason,
            });
        } else {
            good.push(line);
        }
        at += line.len() + 1;
    }
    if !bad.is_empty() {
        quarantine::append(log, &watch.rotated, &f, &bad, mode)?;
    }
    if !good.is_empty() {
        LogWriter::open(log)?.append_raw(&good)?;
    }
    tracing::warn!(
        "{} line(s) were appended to {} after it was rotated (a writer that does not take the lock); carried into {}",
        good.len() + bad.len(),
        watch.rotated.display(),
        log.display()
    );
    out.lines = good.len() as u64;
    out.quarantined = bad.len() as u64;
    out.from = Some(watch.rotated.clone());
    out.watch = Some(Watch {
        rotated: watch.rotated.clone(),
        size: watch.size + last_nl as u64 + 1,
    });
    Ok(out)
}

/// Where a store's watches are kept.
pub fn watch_path(state_dir: &Path) -> PathBuf {
    state_dir.join("rotated-watch.json")
}

/// The rotated files being watched, with their checked sizes.
pub fn load(state_dir: &Path) -> Vec<Watch> {
    std::fs::read(watch_path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Save the watches whose files still exist.
pub fn save(state_dir: &Path, watches: &[Watch]) -> Result<()> {
    let live: Vec<&Watch> = watches.iter().filter(|w| w.rotated.exists()).collect();
    durable::ensure_private_dir(state_dir)?;
    durable::atomic_write(
        &watch_path(state_dir),
        &serde_json::to_vec(&live).expect("watches serialize"),
        0o600,
    )
}

/// Carry late writes from every watched rotated file; returns the totals
/// and the updated watches.
pub fn carry_all(log: &Path, watches: &[Watch], mode: u32) -> Result<(Carried, Vec<Watch>)> {
    let mut total = Carried::default();
    let mut kept = Vec::with_capacity(watches.len());
    for w in watches {
        let c = carry(log, w, mode)?;
        total.lines += c.lines;
        total.quarantined += c.quarantined;
        if c.from.is_some() {
            total.from = c.from;
        }
        kept.extend(c.watch);
    }
    Ok((total, kept))
}
