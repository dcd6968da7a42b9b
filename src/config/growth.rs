//! The daemon's growth trigger (`growth`, `min_size`, `min_interval`) and
//! the `time` pointer of `replay --as-of`: parsed and checked here.

use std::time::Duration;

use super::RawStore;
use super::segments::{RawBytes, parse_bytes};
use crate::error::{Error, Result};
use crate::fold::json::Pointers;

/// `min_size` when `growth` is set without it (Redis's default).
pub const DEFAULT_MIN_SIZE: u64 = 64 << 20;
/// `min_interval` when `growth` is set without it.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// Compact when the log has grown by `growth` since the last compaction
/// and is at least `min_size`, at most once per `min_interval`.
#[derive(Clone, Debug, PartialEq)]
pub struct GrowthTrigger {
    /// The growth since the last compaction that triggers one, as a
    /// fraction of the size the last compaction left (0.5: by 50%).
    pub growth: f64,
    /// No growth run below this size, in bytes.
    pub min_size: u64,
    /// The least time between two growth runs of the store.
    pub min_interval: Duration,
}

/// The store's growth trigger, if `growth` is set; `min_size` and
/// `min_interval` without `growth` are an error (they would do nothing).
pub(super) fn trigger(
    rs: &RawStore,
    err: &dyn Fn(&str, String) -> Error,
) -> Result<Option<GrowthTrigger>> {
    let Some(growth) = rs.growth else {
        for (field, set) in [
            ("min_size", rs.min_size.is_some()),
            ("min_interval", rs.min_interval.is_some()),
        ] {
            if set {
                return Err(err(
                    field,
                    "is set but `growth` is not: say by how much the log must grow (e.g. growth = 0.5)".into(),
                ));
            }
        }
        return Ok(None);
    };
    if !(growth.is_finite() && growth > 0.0) {
        return Err(err(
            "growth",
            format!("{growth} must be a fraction > 0 (0.5 means once the log grew by 50%)"),
        ));
    }
    if rs.segments.is_some() {
        return Err(err(
            "growth",
            "is for a store with one live log; a segmented store's app rotates its own files"
                .into(),
        ));
    }
    let min_size = match &rs.min_size {
        None => DEFAULT_MIN_SIZE,
        Some(RawBytes::Int(n)) => *n,
        Some(RawBytes::Text(t)) => parse_bytes(t).map_err(|m| err("min_size", m))?,
    };
    let min_interval = match &rs.min_interval {
        None => DEFAULT_MIN_INTERVAL,
        Some(s) => super::parse_duration(s).map_err(|m| err("min_interval", m))?,
    };
    Ok(Some(GrowthTrigger {
        growth,
        min_size,
        min_interval,
    }))
}

/// The `time` pointer, checked.
pub(super) fn time_pointer(
    rs: &RawStore,
    err: &dyn Fn(&str, String) -> Error,
) -> Result<Option<String>> {
    match &rs.time {
        Some(p) => {
            Pointers::new(&[p]).map_err(|m| err("time", m))?;
            Ok(Some(p.clone()))
        }
        None => Ok(None),
    }
}
