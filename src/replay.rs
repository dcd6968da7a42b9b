//! `replay`: the folded state of a live log, without changing anything.

use std::io::Write;

use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::fold::{self, Plan};
use crate::job::cut::Cut;

pub use crate::job::segmented::view::Replayed;

/// `replay` of a segmented store: every segment in seq order (see
/// [`crate::job::segmented::replay`]).
pub fn replay_segments(store: &StoreConfig, out: &mut impl Write) -> Result<Replayed> {
    match &store.segments {
        Some(policy) => crate::job::segmented::replay(store, policy, out),
        None => Err(Error::WrongStoreKind {
            store: store.name.clone(),
            msg: "is not a segmented store (it has a `log`, not `segments`)",
        }),
    }
}

/// Write the store's folded state to `out`: for a keyed store one line per
/// live key (and keyless lines in place), in the order of each key's last
/// write; for an append-only store every valid line. Malformed lines and a
/// torn last line are left out (the returned plan counts them).
pub fn replay(store: &StoreConfig, out: &mut impl Write) -> Result<Plan> {
    if store.segments.is_some() {
        return Err(Error::WrongStoreKind {
            store: store.name.clone(),
            msg: "is a segmented store: replay it with `replay_segments`",
        });
    }
    let c = Cut::take(store, None)?;
    fold::copy_ranges_nl(&c.file, &c.plan.keep, &c.plan.newlines, out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::io("write to", "stdout", e)
        } else {
            Error::io("read log", &c.log, e)
        }
    })?;
    Ok(c.plan)
}
