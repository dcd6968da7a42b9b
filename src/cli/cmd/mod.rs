//! One module per subcommand, each with `Args` and `run`; shared printing.

pub mod append;
pub mod completions;
pub mod daemon;
pub mod demo;
pub mod man;
pub mod replay;
pub mod schedule;
pub mod status;
pub mod store;
pub mod sync;

use logkeeper::job::record::{Outcome, RunRecord};

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn human_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}

/// What a run did, in one phrase (for `sync` and `status`).
pub fn summary(r: &RunRecord) -> String {
    let s = &r.stats;
    match r.outcome {
        Outcome::Ok if s.rewritten => {
            let mut parts = vec![format!(
                "{} lines -> {}, {} -> {}",
                s.lines_in,
                s.lines_out,
                human_bytes(s.bytes_before),
                human_bytes(s.bytes_after)
            )];
            if s.keys_live > 0 || s.deletes_dropped > 0 {
                parts.push(format!(
                    "{} keys live, {} deletes dropped",
                    s.keys_live, s.deletes_dropped
                ));
            }
            if s.quarantined > 0 {
                parts.push(format!("{} quarantined", s.quarantined));
            }
            if s.tail_bytes > 0 {
                parts.push(format!("tail {}", human_bytes(s.tail_bytes)));
            }
            parts.join(", ")
        }
        Outcome::Ok => format!(
            "{} lines, {}: {}",
            s.lines_in,
            human_bytes(s.bytes_before),
            r.reason.as_deref().unwrap_or("nothing to change")
        ),
        Outcome::Skipped | Outcome::Busy => r.reason.clone().unwrap_or_default(),
        Outcome::Error => r.error.clone().unwrap_or_default(),
    }
}
