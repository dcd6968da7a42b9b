//! The config of segmented stores (`segments = "dir/events-{seq}.jsonl"`):
//! which kind a `[[store]]` table declares, and its retention and
//! compaction settings. Same rules as the rest of the loader: every error
//! names the field (the caller adds the file and line).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::kind::{
    DEFAULT_DELETE_RETENTION, DEFAULT_FILE_DELETE_DELAY, DEFAULT_MIN_DIRTY_RATIO, SegmentPolicy,
};
use crate::config::pattern::Pattern;
use crate::config::{RawStore, expand_path, parse_duration};
use crate::error::{Error, Result};
use crate::fold::json::Pointers;

/// A size: a number of bytes, or a string like "2GiB".
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawBytes {
    Int(u64),
    Text(String),
}

/// The store's log, or its pattern and parsed [`Pattern`]: exactly one of
/// `log` and `segments`, and only the settings of that kind.
pub(super) fn kind(
    rs: &RawStore,
    base: &Path,
    err: &dyn Fn(&str, String) -> Error,
) -> Result<(PathBuf, Option<Pattern>)> {
    let (log, segments) = match (&rs.log, &rs.segments) {
        (Some(_), Some(_)) => {
            return Err(err(
                "segments",
                "is set along with `log`: a store is one live log (`log`) or a directory of segments the app rotates (`segments`), not both".into(),
            ));
        }
        (None, None) => {
            return Err(err(
                "log",
                "is missing: give the live JSONL log (`log = \"...\"`), or `segments = \"dir/events-{seq}.jsonl\"` for a directory of segments".into(),
            ));
        }
        (Some(l), None) => {
            if l.trim().is_empty() {
                return Err(err(
                    "log",
                    "is empty: give the path of the live JSONL log".into(),
                ));
            }
            let log = expand_path(l, base);
            if log.file_name().is_none() {
                return Err(err("log", format!("{l:?} does not name a file")));
            }
            (log, None)
        }
        (None, Some(p)) => {
            let path = expand_path(p, base);
            let pattern = Pattern::parse(&path).map_err(|m| err("segments", m))?;
            (path, Some(pattern))
        }
    };
    if segments.is_none() {
        for (field, set) in [
            ("keep_files", rs.keep_files.is_some()),
            ("max_bytes", rs.max_bytes.is_some()),
            ("min_compaction_lag", rs.min_compaction_lag.is_some()),
            ("delete_retention", rs.delete_retention.is_some()),
            ("min_dirty_ratio", rs.min_dirty_ratio.is_some()),
            ("file_delete_delay", rs.file_delete_delay.is_some()),
            ("seq", rs.seq.is_some()),
        ] {
            if set {
                return Err(err(
                    field,
                    format!(
                        "only applies to a segmented store (`segments = ...`), and store {:?} is one live log (`log = ...`): remove the setting",
                        rs.name
                    ),
                ));
            }
        }
    } else {
        for (field, set) in [
            ("keep_rotated", rs.keep_rotated.is_some()),
            ("min_growth", rs.min_growth.is_some()),
            ("rotate_bytes", rs.rotate_bytes.is_some()),
        ] {
            if set {
                return Err(err(
                    field,
                    format!(
                        "does not apply to a segmented store, and store {:?} is one (`segments = ...`): use keep_files, max_age, max_bytes (retention) and min_dirty_ratio (compaction)",
                        rs.name
                    ),
                ));
            }
        }
    }
    Ok((log, segments))
}

/// The retention and compaction policy of a segmented store.
pub(super) fn policy(
    pattern: Pattern,
    rs: &RawStore,
    err: &dyn Fn(&str, String) -> Error,
) -> Result<SegmentPolicy> {
    let dur = |field: &str, v: &Option<String>| -> Result<Option<Duration>> {
        v.as_deref()
            .map(|s| parse_duration(s).map_err(|m| err(field, m)))
            .transpose()
    };
    let min_dirty_ratio = rs.min_dirty_ratio.unwrap_or(DEFAULT_MIN_DIRTY_RATIO);
    if !(0.0..=1.0).contains(&min_dirty_ratio) {
        return Err(err(
            "min_dirty_ratio",
            format!(
                "{min_dirty_ratio} must be a fraction from 0 to 1 (0.5: compact when half the sealed bytes are new)"
            ),
        ));
    }
    let max_bytes = match &rs.max_bytes {
        None => None,
        Some(RawBytes::Int(n)) => Some(*n),
        Some(RawBytes::Text(t)) => Some(parse_bytes(t).map_err(|m| err("max_bytes", m))?),
    };
    Ok(SegmentPolicy {
        pattern,
        keep_files: rs.keep_files,
        max_bytes,
        min_compaction_lag: dur("min_compaction_lag", &rs.min_compaction_lag)?.unwrap_or_default(),
        delete_retention: dur("delete_retention", &rs.delete_retention)?
            .unwrap_or(DEFAULT_DELETE_RETENTION),
        min_dirty_ratio,
        file_delete_delay: dur("file_delete_delay", &rs.file_delete_delay)?
            .unwrap_or(DEFAULT_FILE_DELETE_DELAY),
        seq: match &rs.seq {
            Some(p) => {
                Pointers::new(&[p]).map_err(|m| err("seq", m))?;
                Some(p.clone())
            }
            None => None,
        },
    })
}

/// Parse sizes like `1048576`, `500MB`, `2GiB` (KB/MB/GB are powers of
/// 1000, KiB/MiB/GiB of 1024).
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 1048576, \"500MB\", \"2GiB\")"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use B, KB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("500MB"), Ok(500_000_000));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert!(parse_bytes("2 parsecs").is_err());
        assert!(parse_bytes("99999999999TiB").is_err());
    }
}
