//! How the CLI shows the library's results to a person: byte and time
//! figures, one-line run summaries, the status table, a schedule
//! registration. Shared by the commands; `--json` output does not go
//! through here.

use crate::cli::out::outln;
use crate::job::record::{Outcome, RunRecord};
use crate::schedule::install::Registration;
use crate::status::{Health, StoreStatus, fmt_time};

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
    if let (Outcome::Ok, Some(seg)) = (r.outcome, &s.segments) {
        return segments_summary(r, seg);
    }
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

/// What a run of a segmented store did, in one phrase.
fn segments_summary(r: &RunRecord, seg: &crate::job::segmented::SegmentStats) -> String {
    let s = &r.stats;
    let mut parts = Vec::new();
    if !seg.pruned.is_empty() {
        let mut reasons: Vec<&str> = seg.pruned.iter().map(|p| p.reason.as_str()).collect();
        reasons.dedup();
        parts.push(format!(
            "pruned {} segment(s) ({}, {}), oldest seq {} -> {}",
            seg.pruned.len(),
            reasons.join(", "),
            human_bytes(seg.pruned.iter().map(|p| p.bytes).sum()),
            seg.oldest_seq_before.map_or("-".into(), |q| q.to_string()),
            seg.dir.oldest_seq.map_or("-".into(), |q| q.to_string())
        ));
    }
    if seg.validated > 0 {
        parts.push(format!(
            "checked {} sealed segment(s), {} lines, {} quarantined",
            seg.validated, s.lines_in, s.quarantined
        ));
    }
    if let Some(c) = &seg.compaction {
        parts.push(format!(
            "compacted {} segment(s) into {}, {} -> {}, {} keys live, tombstones {} kept / {} dropped",
            c.inputs,
            c.inputs as usize - c.replaced.len(),
            human_bytes(c.bytes_in),
            human_bytes(c.bytes_out),
            c.keys_live,
            c.tombstones_kept,
            c.tombstones_dropped
        ));
    }
    if !seg.inputs_deleted.is_empty() {
        parts.push(format!(
            "deleted {} compacted input(s) after file_delete_delay",
            seg.inputs_deleted.len()
        ));
    }
    if parts.is_empty() {
        parts.push(
            r.reason
                .clone()
                .unwrap_or_else(|| "nothing to change".into()),
        );
    }
    parts.push(format!(
        "now {} file(s), {}",
        seg.dir.files,
        human_bytes(seg.dir.bytes)
    ));
    parts.join("; ")
}

/// A run as `sync now` prints it: one line, then what it moved aside.
pub fn print_run(r: &RunRecord) {
    let line = format!(
        "{}: {} in {}{}: {}",
        r.store,
        r.outcome.as_str(),
        human_ms(r.duration_ms),
        if r.wait_ms > 0.0 {
            format!(" (after waiting {} for another run)", human_ms(r.wait_ms))
        } else {
            String::new()
        },
        summary(r)
    );
    match r.outcome {
        Outcome::Error | Outcome::Busy => eprintln!("logkeeper: {line}"),
        _ => outln!("{line}"),
    }
    let s = &r.stats;
    if let Some(p) = &s.rotated {
        outln!("  rotated: {}", p.display());
    }
    if let Some(p) = &s.quarantine_file {
        outln!("  quarantine: {}", p.display());
    }
    match &s.segments {
        Some(seg) if seg.pruned.len() > 3 => outln!(
            "  pruned: {} .. {} ({} segments, oldest first)",
            seg.pruned[0].file.display(),
            seg.pruned[seg.pruned.len() - 1].file.display(),
            seg.pruned.len()
        ),
        _ => {
            for p in &s.pruned {
                outln!("  pruned: {}", p.display());
            }
        }
    }
    for p in &s.recovered {
        outln!(
            "  recovered: removed {} left by an interrupted run",
            p.display()
        );
    }
}

/// The human status table, with each unhealthy store's reasons below it.
pub fn table(statuses: &[StoreStatus]) -> String {
    let mut rows = vec![[
        "STORE".to_string(),
        "HEALTH".into(),
        "LAST RUN".into(),
        "OUTCOME".into(),
        "TOOK".into(),
        "LAST SUCCESS".into(),
        "NEXT RUN".into(),
    ]];
    for s in statuses {
        let (when, outcome, took) = match &s.last_run {
            Some(r) => (
                fmt_time(r.finished_at),
                r.outcome.as_str().to_string(),
                human_ms(r.duration_ms),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        rows.push([
            s.name.clone(),
            s.health.as_str().into(),
            when,
            outcome,
            took,
            s.last_success
                .as_ref()
                .map_or("-".into(), |r| fmt_time(r.finished_at)),
            s.next_run
                .map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M").to_string()),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            continue;
        }
        out.push_str(&details(&statuses[n - 1]));
    }
    out
}

/// The lines under a store's row: its segments, last run, what runs now,
/// reasons, writers, warnings and notes.
fn details(s: &StoreStatus) -> String {
    let mut out = String::new();
    if let Some(d) = &s.segments {
        out.push_str(&format!(
            "  segments: {} file(s), {}, seqs {}..{}, active {} ({}){}\n",
            d.files,
            human_bytes(d.bytes),
            d.oldest_seq.map_or("-".into(), |q| q.to_string()),
            d.newest_seq.map_or("-".into(), |q| q.to_string()),
            d.active
                .as_deref()
                .and_then(|p| p.file_name())
                .map_or("-".into(), |n| n.to_string_lossy().into_owned()),
            human_bytes(d.active_bytes),
            // Only a store that compacts (with a key) has a "since".
            d.last_compaction.map_or(String::new(), |_| format!(
                ", {} since last compaction",
                human_bytes(d.bytes_since_compaction)
            ))
        ));
        if d.pending_delete > 0 {
            out.push_str(&format!(
                "  segments: {} compacted input(s) wait for file_delete_delay before deletion (their events are in merged segments)\n",
                d.pending_delete
            ));
        }
    }
    if let Some(r) = last_run_shown(s) {
        out.push_str(&format!("  last run: {}\n", summary(r)));
    }
    match (&s.running, s.waiting_for.as_slice()) {
        (Some(h), []) => out.push_str(&format!("  running now: {h}\n")),
        (Some(h), pids) => out.push_str(&format!(
            "  running, waiting for {} lock on the log (the run: {h})\n",
            pids.iter()
                .map(|p| format!("pid {p}'s"))
                .collect::<Vec<_>>()
                .join(" and ")
        )),
        (None, _) => {}
    }
    for reason in &s.reasons {
        out.push_str(&format!("  ! {reason}\n"));
    }
    if s.health == Health::NeverRun && s.running.is_none() {
        out.push_str(&format!(
            "  hint: run `logkeeper sync now {}` or `logkeeper schedule install`\n",
            s.name
        ));
    }
    for w in &s.writers.openers {
        out.push_str(&format!(
            "  writer: pid {} ({}) fd {} {} on {}\n",
            w.pid,
            w.program,
            w.fd,
            w.flags,
            w.file.display()
        ));
    }
    if !s.writers.blind.is_empty() {
        out.push_str(&format!(
            "  writer census incomplete: {}\n  hint: {}\n",
            s.writers.blind.join("; "),
            crate::job::census::Census::FIX
        ));
    }
    for w in &s.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    for note in &s.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    out
}

/// The last run, for its `last run:` line; none for a failed one whose
/// summary (its error) the `failed` reason already says with its time:
/// each fact once.
fn last_run_shown(s: &StoreStatus) -> Option<&RunRecord> {
    s.last_run
        .as_ref()
        .filter(|r| !(r.outcome == Outcome::Error && s.health == Health::Failed))
}

/// The human lines for a registration.
pub fn describe(r: &Registration) -> String {
    let mut out = format!(
        "schedule: {} ({} mode), installed {}, runs {}{}\n",
        r.backend.as_str(),
        r.mode.as_str(),
        crate::status::fmt_time(r.installed_at),
        r.binary.display(),
        if r.binary_exists { "" } else { " (MISSING)" }
    );
    for f in &r.files {
        out.push_str(&format!(
            "  {}{}\n",
            f.path.display(),
            if f.exists { "" } else { " (MISSING)" }
        ));
    }
    if let Some(present) = r.crontab_block {
        out.push_str(&format!(
            "  crontab block: {}\n",
            if present { "present" } else { "MISSING" }
        ));
    }
    for p in &r.problems {
        out.push_str(&format!("  ! {p}\n"));
    }
    out
}

/// What to do about a library error, in the CLI's words (commands and
/// flags), printed after the error itself; None when the error says enough.
pub fn hint(err: &crate::Error) -> Option<String> {
    use crate::Error;
    Some(match err {
        Error::Config(crate::error::ConfigError::NoConfig { .. }) => {
            "create one with `logkeeper store add NAME --log PATH`, or pass --config".into()
        }
        Error::Config(crate::error::ConfigError::StoreExists { name, .. }) => {
            format!("remove it first with `logkeeper store remove {name}`")
        }
        Error::Config(crate::error::ConfigError::NoStores { .. }) => {
            "add one with `logkeeper store add NAME --log PATH`".into()
        }
        Error::Config(crate::error::ConfigError::NoStoreNamed { .. }) => {
            "name the stores to act on, or pass --all".into()
        }
        Error::Schedule(crate::error::ScheduleError::AlreadyInstalled { installed, .. }) => {
            format!("run `logkeeper schedule uninstall --backend {installed}` first")
        }
        _ => return None,
    })
}
