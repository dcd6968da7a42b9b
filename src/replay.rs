//! `replay`: the folded state of a live log, without changing anything.

use std::fs::File;
use std::io::Write;

use crate::config::StoreConfig;
use crate::error::{Error, IoContext, Result};
use crate::fold::{self, FoldSpec};
use crate::job::compact::{resolve_log, scan_threads};

/// Write the store's folded state to `out`: for a keyed store one line per
/// live key (and keyless lines in place), in the order of each key's last
/// write; for an append-only store every valid line. Malformed lines and a
/// torn last line are left out (the returned figures count them).
pub fn replay(store: &StoreConfig, out: &mut impl Write) -> Result<Replayed> {
    let log = resolve_log(&store.log)?;
    let file = File::open(&log).ctx("open log", &log)?;
    let size = file.metadata().ctx("stat log", &log)?.len();
    let cut = fold::find_cut(&file, size).ctx("read log", &log)?;
    let plan = fold::fold(&FoldSpec::for_store(store)?, &file, cut, scan_threads())
        .ctx("read log", &log)?;
    fold::copy_ranges(&file, &plan.keep, out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::io("write to", "stdout", e)
        } else {
            Error::io("read log", &log, e)
        }
    })?;
    Ok(Replayed {
        lines_in: plan.lines_in,
        keys_live: plan.keys_live,
        keyless_kept: plan.keyless_kept,
        malformed: plan.bad.len() as u64,
        torn_bytes: size - cut,
    })
}

/// What [`replay`] found in the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replayed {
    /// Complete lines read.
    pub lines_in: u64,
    /// Keys whose last event is live (keyed stores).
    pub keys_live: u64,
    /// Valid lines without the key, kept in place (keyed stores).
    pub keyless_kept: u64,
    /// Lines (or torn fragments) that are not valid JSON: left out.
    pub malformed: u64,
    /// Bytes after the last `\n` (a torn last line): left out.
    pub torn_bytes: u64,
}
