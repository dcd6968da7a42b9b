//! How far a store's log has grown since its last compaction, against its
//! growth trigger: what the daemon decides on, and what `status` and the
//! metrics show.
//!
//! The baseline is the log's size after the last compaction, from the
//! store's `compaction.json` in the state dir: it survives restarts of the
//! daemon (unlike Redis's in-memory base size before redis PR#10550).

use serde::Serialize;

use crate::config::{GrowthTrigger, StoreConfig};
use crate::job::record::RunRecords;
use crate::paths::Paths;

/// The log's growth now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GrowthNow {
    /// The live log's size now.
    pub size: u64,
    /// Its size after the last compaction (none yet: null).
    pub baseline_bytes: Option<u64>,
    /// Growth since then, as a fraction of the baseline (null without one,
    /// or when the last compaction left the log empty).
    pub grown: Option<f64>,
    /// The store's `growth`.
    pub threshold: f64,
    /// The store's `min_size`.
    pub min_size: u64,
    /// Whether both conditions hold (a daemon runs it, rate limits allowing).
    pub due: bool,
}

/// Whether a log of `size` bytes is due by `t`, given the size the last
/// compaction left (`None`: never compacted, due once at `min_size`). Pure.
pub fn is_due(t: &GrowthTrigger, size: u64, baseline: Option<u64>) -> bool {
    if size < t.min_size {
        return false;
    }
    match baseline {
        None => true,
        Some(b) => size.saturating_sub(b) as f64 >= t.growth * b.max(1) as f64,
    }
}

/// Growth as a fraction of `baseline`.
pub fn grown(size: u64, baseline: u64) -> f64 {
    size.saturating_sub(baseline) as f64 / baseline.max(1) as f64
}

/// The store's growth now, if it has a growth trigger.
pub fn now(paths: &Paths, store: &StoreConfig) -> Option<GrowthNow> {
    let t = store.growth.as_ref()?;
    let size = std::fs::metadata(store.path()).map_or(0, |m| m.len());
    let baseline = RunRecords::new(paths.store_state(&store.name))
        .baseline()
        .map(|b| b.bytes_after);
    Some(GrowthNow {
        size,
        baseline_bytes: baseline,
        grown: baseline.filter(|b| *b > 0).map(|b| grown(size, b)),
        threshold: t.growth,
        min_size: t.min_size,
        due: is_due(t, size, baseline),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(growth: f64, min_size: u64) -> GrowthTrigger {
        GrowthTrigger {
            growth,
            min_size,
            min_interval: Duration::from_secs(60),
        }
    }

    #[test]
    fn due_only_at_min_size_and_past_the_growth() {
        let t = t(0.5, 1000);
        assert!(!is_due(&t, 999, Some(100)), "below min_size");
        assert!(is_due(&t, 1000, Some(100)));
        assert!(!is_due(&t, 1499, Some(1000)), "grew 49.9%");
        assert!(is_due(&t, 1500, Some(1000)), "grew 50%");
        assert!(!is_due(&t, 999, None));
        assert!(is_due(&t, 1000, None), "never compacted: due at min_size");
        assert!(is_due(&t, 1000, Some(0)));
    }
}
