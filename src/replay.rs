//! `replay`: the folded state of a live log, without changing anything.

pub(crate) mod asof;

use std::io::Write;

use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::fold;
use crate::job::cut::Cut;

pub use crate::job::segmented::view::Replayed as SegmentsReplayed;

/// `replay` of a segmented store: every segment in seq order (see
/// `job::segmented::replay`).
pub fn replay_segments(store: &StoreConfig, out: &mut impl Write) -> Result<SegmentsReplayed> {
    match &store.segments() {
        Some(policy) => crate::job::segmented::replay(store, policy, out),
        None => Err(Error::Config(crate::error::ConfigError::WrongStoreKind {
            store: store.name.clone(),
            msg: "is not a segmented store (it has a `log`, not `segments`)",
        })),
    }
}

/// Write the store's folded state to `out`: for a keyed store one line per
/// live key (and keyless lines in place), in the order of each key's last
/// write; for an append-only store every valid line. Malformed lines and a
/// torn last line are left out (the returned figures count them).
pub fn replay(store: &StoreConfig, out: &mut impl Write) -> Result<Replayed> {
    if store.segments().is_some() {
        return Err(Error::Config(crate::error::ConfigError::WrongStoreKind {
            store: store.name.clone(),
            msg: "is a segmented store: replay it with `replay_segments`",
        }));
    }
    let c = Cut::take(store, None)?;
    fold::copy_ranges_nl(&c.file, &c.plan.keep, &c.plan.newlines, out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::io("write to", "stdout", e)
        } else {
            Error::io("read log", &c.log, e)
        }
    })?;
    Ok(Replayed {
        lines_in: c.plan.lines_in,
        keys_live: c.plan.keys_live,
        keyless_kept: c.plan.keyless_kept,
        malformed: c.plan.bad_lines,
        torn_bytes: c.size - c.cut,
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
