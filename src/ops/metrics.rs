//! The Prometheus textfile: per-store `logkeeper_` series for node_exporter's
//! textfile collector (`--collector.textfile.directory`).
//!
//! Invariants:
//! - Everything comes from persisted state (run records, their `totals`,
//!   the lock file, the log's size), never from a process's memory: a
//!   restarted daemon, `sync now` and a timer unit all write the same file.
//! - Every configured store has every series; a store that never ran has
//!   zeros (and `health="never_run"` 1), so alerts work before a first run.
//! - The file is replaced atomically (temp in the same directory, fsync,
//!   rename, directory fsync): node_exporter never reads half a file.
//! - One line of `METRICS` per metric: adding a series is adding a line.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Local, Utc};

use crate::config::{BrokenStore, StoreConfig};
use crate::error::{Error, Result};
use crate::io::durable;
use crate::job::record::{Outcome, RunRecord, RunRecords, Totals};
use crate::paths::Paths;
use crate::status::{Health, StoreStatus, store_status};

/// What the metrics of one store are computed from.
pub struct StoreView {
    pub status: StoreStatus,
    pub totals: Totals,
    /// The live log's size now (0 when it does not exist).
    pub log_bytes: u64,
    /// Live keys after the last run that compacted.
    pub keys_live: u64,
    /// Seconds between two scheduled runs (0 without a schedule).
    pub schedule_interval: f64,
    /// When the store becomes overdue (Unix time; 0 without a schedule or a
    /// success): see [`crate::status::overdue_at`].
    pub overdue_at: f64,
}

#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

/// One metric: a series per store, or per store and label value.
struct Metric {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    label: Option<(&'static str, &'static [&'static str])>,
    value: fn(&StoreView, &str) -> f64,
}

const fn gauge(
    name: &'static str,
    help: &'static str,
    value: fn(&StoreView, &str) -> f64,
) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        help,
        label: None,
        value,
    }
}

const fn counter(
    name: &'static str,
    help: &'static str,
    value: fn(&StoreView, &str) -> f64,
) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        help,
        label: None,
        value,
    }
}

const fn labelled(m: Metric, label: &'static str, values: &'static [&'static str]) -> Metric {
    Metric {
        label: Some((label, values)),
        ..m
    }
}

const OUTCOMES: &[&str] = &["ok", "skipped", "busy", "error"];
const TRIGGERS: &[&str] = &[
    "manual", "schedule", "timer", "cron", "daemon", "growth", "demo",
];
const HEALTHS: &[&str] = &["ok", "failed", "overdue", "never_run", "config_error"];

fn ts(r: Option<&RunRecord>) -> f64 {
    r.map_or(0.0, |r| r.finished_at.timestamp_millis() as f64 / 1e3)
}

fn outcome(label: &str) -> Outcome {
    match label {
        "ok" => Outcome::Ok,
        "skipped" => Outcome::Skipped,
        "busy" => Outcome::Busy,
        _ => Outcome::Error,
    }
}

fn health(h: Health) -> &'static str {
    match h {
        Health::Ok => "ok",
        Health::Failed => "failed",
        Health::Overdue => "overdue",
        Health::NeverRun => "never_run",
        Health::ConfigError => "config_error",
    }
}

fn last(v: &StoreView) -> Option<&RunRecord> {
    v.status.last_run.as_ref()
}

fn b(x: bool) -> f64 {
    if x { 1.0 } else { 0.0 }
}

#[rustfmt::skip]
const METRICS: &[Metric] = &[
    gauge("logkeeper_last_run_timestamp_seconds", "When the store's last run finished (Unix time; 0 if it never ran).", |v, _| ts(last(v))),
    gauge("logkeeper_last_success_timestamp_seconds", "When the store's last successful run finished (Unix time; 0 if none).", |v, _| ts(v.status.last_success.as_ref())),
    gauge("logkeeper_last_run_duration_seconds", "How long the store's last run took.", |v, _| last(v).map_or(0.0, |r| (r.duration_ms * 1e3).round() / 1e6)),
    labelled(gauge("logkeeper_last_run_outcome", "1 for the outcome of the store's last run, 0 for the others.", |v, l| b(last(v).is_some_and(|r| r.outcome == outcome(l)))), "outcome", OUTCOMES),
    labelled(gauge("logkeeper_health", "1 for the store's health as `logkeeper status` reports it, 0 for the others.", |v, l| b(health(v.status.health) == l)), "health", HEALTHS),
    gauge("logkeeper_last_run_before_bytes", "Size of the live log when the last run started.", |v, _| last(v).map_or(0.0, |r| r.stats.bytes_before as f64)),
    gauge("logkeeper_last_run_after_bytes", "Size of the live log when the last run ended.", |v, _| last(v).map_or(0.0, |r| r.stats.bytes_after as f64)),
    gauge("logkeeper_log_bytes", "Size of the live log now.", |v, _| v.log_bytes as f64),
    gauge("logkeeper_keys_live", "Live keys after the last compaction (keyed stores).", |v, _| v.keys_live as f64),
    counter("logkeeper_quarantined_lines_total", "Malformed lines moved to the quarantine file.", |v, _| v.totals.quarantined_lines as f64),
    counter("logkeeper_late_lines_carried_total", "Lines a lock-ignoring writer appended to a rotated file, carried into the live log.", |v, _| v.totals.late_lines_carried as f64),
    labelled(counter("logkeeper_runs_total", "Runs of the store by outcome.", |v, l| v.totals.runs(outcome(l)) as f64), "outcome", OUTCOMES),
    counter("logkeeper_pruned_files_total", "Rotated files deleted by retention.", |v, _| v.totals.pruned_files as f64),
    gauge("logkeeper_run_in_progress", "1 while a run holds the store's lock.", |v, _| b(v.status.running.is_some())),
    labelled(gauge("logkeeper_last_run_trigger", "1 for what started the store's last run, 0 for the others.", |v, l| b(last(v).is_some_and(|r| r.trigger == l))), "trigger", TRIGGERS),
    gauge("logkeeper_growth_ratio", "Growth of the live log since the last compaction, as a fraction of the size it left (0 without a growth trigger or a compaction).", |v, _| v.status.growth.as_ref().and_then(|g| g.grown).unwrap_or(0.0)),
    gauge("logkeeper_growth_threshold_ratio", "The store's `growth` trigger (0 without one).", |v, _| v.status.growth.as_ref().map_or(0.0, |g| g.threshold)),
    gauge("logkeeper_growth_min_size_bytes", "The store's `min_size` for growth runs (0 without a growth trigger).", |v, _| v.status.growth.as_ref().map_or(0.0, |g| g.min_size as f64)),
    gauge("logkeeper_schedule_interval_seconds", "Seconds between two scheduled runs of the store (0 without a schedule).", |v, _| v.schedule_interval),
    gauge("logkeeper_overdue_at_timestamp_seconds", "When the store becomes overdue if no run succeeds before: its first scheduled run after the last success plus a grace of 10 minutes and its jitter (Unix time; 0 without a schedule or a success). Alert on time() > this.", |v, _| v.overdue_at),
];

/// Gather what the metrics of `store` need, as of `now`.
pub fn view(paths: &Paths, store: &StoreConfig, now: DateTime<Local>) -> StoreView {
    let state = RunRecords::new(paths.store_state(&store.name));
    let status = store_status(paths, store, now);
    let compacted = |r: &&RunRecord| r.outcome == Outcome::Ok;
    let keys_live = match status
        .last_run
        .as_ref()
        .filter(compacted)
        .or(status.last_success.as_ref().filter(compacted))
    {
        Some(r) => r.stats.keys_live,
        None => state
            .history()
            .iter()
            .rev()
            .find(|r| r.outcome == Outcome::Ok)
            .map_or(0, |r| r.stats.keys_live),
    };
    let schedule_interval = store
        .schedule
        .as_ref()
        .and_then(|s| {
            let a = s.next_after(&now)?;
            let b = s.next_after(&a)?;
            Some((b - a).num_milliseconds() as f64 / 1e3)
        })
        .unwrap_or(0.0);
    StoreView {
        totals: match &status.last_run {
            Some(r) if r.totals.is_some() => r.totals.clone().unwrap_or_default(),
            _ => state.totals(),
        },
        log_bytes: match &status.segments {
            Some(dir) => dir.bytes,
            None => std::fs::metadata(store.path()).map_or(0, |m| m.len()),
        },
        keys_live,
        schedule_interval,
        overdue_at: status
            .last_success
            .as_ref()
            .and_then(|ok| crate::status::overdue_at(store, ok.finished_at))
            .map_or(0.0, |(_, at)| at.timestamp_millis() as f64 / 1e3),
        status,
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The textfile for these stores.
pub fn render(views: &[StoreView]) -> String {
    let mut out = String::new();
    for m in METRICS {
        let kind = match m.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
        let _ = writeln!(out, "# TYPE {} {kind}", m.name);
        for v in views {
            let store = escape(&v.status.name);
            match m.label {
                None => {
                    let _ = writeln!(out, "{}{{store=\"{store}\"}} {}", m.name, (m.value)(v, ""));
                }
                Some((label, values)) => {
                    for l in values {
                        let _ = writeln!(
                            out,
                            "{}{{store=\"{store}\",{label}=\"{l}\"}} {}",
                            m.name,
                            (m.value)(v, l)
                        );
                    }
                }
            }
        }
    }
    out
}

/// What the metrics of a store with an invalid config say: its health
/// `config_error` (B.8), its totals so far, zeros for the rest.
fn broken_view(paths: &Paths, broken: &BrokenStore, config: &Path) -> StoreView {
    let status = crate::status::config_error_status(paths, broken, config);
    StoreView {
        totals: if broken.has_valid_name() {
            RunRecords::new(paths.store_state(&broken.name)).totals()
        } else {
            Totals::default()
        },
        log_bytes: 0,
        keys_live: 0,
        schedule_interval: 0.0,
        overdue_at: 0.0,
        status,
    }
}

/// Rewrite the metrics file at `path` for the valid `stores` and the
/// `broken` ones of the config at `config`, atomically.
pub fn write<'a>(
    paths: &Paths,
    stores: impl IntoIterator<Item = &'a StoreConfig>,
    broken: &[BrokenStore],
    config: &Path,
    path: &Path,
) -> Result<()> {
    let now = Utc::now().with_timezone(&Local);
    let mut views: Vec<StoreView> = stores.into_iter().map(|s| view(paths, s, now)).collect();
    views.extend(broken.iter().map(|b| broken_view(paths, b, config)));
    let dir = durable::parent_dir(path);
    if !dir.is_dir() {
        return Err(Error::io(
            "write metrics file",
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "its directory {} does not exist: create it, or point `metrics_file` at node_exporter's --collector.textfile.directory",
                    dir.display()
                ),
            ),
        ));
    }
    durable::atomic_write(path, render(&views).as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_help_type_and_a_conventional_name() {
        let mut names = std::collections::HashSet::new();
        for m in METRICS {
            assert!(m.name.starts_with("logkeeper_"), "{}", m.name);
            assert!(names.insert(m.name), "{} twice", m.name);
            assert_eq!(
                matches!(m.kind, Kind::Counter),
                m.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                m.name
            );
            assert!(!m.help.is_empty());
        }
    }
}
