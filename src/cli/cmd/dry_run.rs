//! `logkeeper sync now --dry-run`: print what a run would do.

use crate::Paths;
use crate::config::StoreConfig;
use crate::job::dryrun::{DryRun, Group, Writers, dry_run};
use serde::Serialize;

use crate::cli::out::{out, outln};
use crate::cli::render::human_bytes;

#[derive(Serialize)]
struct DryRunJson<'a> {
    dry_runs: &'a [DryRun],
}

/// Report on each store; exit 0 (an error, e.g. a segmented store, ends
/// the command with its class's code).
pub fn run(paths: &Paths, stores: &[&StoreConfig], force: bool, json: bool) -> anyhow::Result<u8> {
    let mut reports = Vec::with_capacity(stores.len());
    for store in stores {
        let r = dry_run(paths, store, force)?;
        if !json {
            out!("{}", render(&r));
        }
        reports.push(r);
    }
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&DryRunJson { dry_runs: &reports })?
        );
    }
    Ok(crate::cli::exit::OK)
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0%".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The human report of one dry run.
pub fn render(r: &DryRun) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let run = &r.run;
    let _ = writeln!(
        o,
        "{}: dry run of {} (no lock taken, nothing written)",
        r.store,
        r.log.display()
    );
    let verdict = match r.verdict {
        "compact" => format!(
            "a run would compact the log: {} -> {}",
            human_bytes(run.bytes_before),
            human_bytes(run.bytes_after)
        ),
        "unchanged" => "a run would leave the log as it is (the fold changes nothing)".into(),
        "skip" => format!("a run would skip: {}", r.reason.as_deref().unwrap_or("")),
        _ => format!("a run would fail: {}", r.reason.as_deref().unwrap_or("")),
    };
    let _ = writeln!(o, "  verdict:     {verdict}");
    let lines_in = r.groups.iter().map(|g| g.lines_in).sum::<u64>();
    let _ = writeln!(
        o,
        "  in:          {lines_in} lines, {} (+ {} after the last complete line, carried as is)",
        human_bytes(r.bytes_in),
        human_bytes(run.tail_bytes)
    );
    let kept = r.groups.iter().map(|g| g.lines_kept).sum::<u64>();
    let _ = writeln!(
        o,
        "  kept:        {kept} lines, {} ({} live keys, {} lines without the key)",
        human_bytes(r.bytes_kept),
        run.keys_live,
        run.keyless_kept
    );
    let _ = writeln!(
        o,
        "  superseded:  {} lines, {} ({} of the lines)",
        r.superseded.lines,
        human_bytes(r.superseded.bytes),
        pct(r.superseded.lines, lines_in)
    );
    let _ = writeln!(
        o,
        "  tombstones:  {} lines, {}",
        r.tombstones.lines,
        human_bytes(r.tombstones.bytes)
    );
    render_quarantine(&mut o, r);
    render_groups(&mut o, r);
    render_writers(&mut o, &r.writers);
    let m = &r.min_growth;
    let growth = match (m.threshold > 0.0, m.grown) {
        (false, _) => "not set".to_string(),
        (true, None) => format!(
            "{:.0}%, no compaction yet: a run would not skip",
            m.threshold * 100.0
        ),
        (true, Some(g)) => format!(
            "{:.0}%; grown {:.0}% since the last compaction ({}): a run would {}",
            m.threshold * 100.0,
            g * 100.0,
            human_bytes(m.baseline_bytes.unwrap_or(0)),
            if m.would_skip { "skip" } else { "not skip" }
        ),
    };
    let _ = writeln!(o, "  min_growth:  {growth}");
    o
}

/// The quarantine lines of a dry run: the count and the first few.
fn render_quarantine(o: &mut String, r: &DryRun) {
    use std::fmt::Write;
    let _ = writeln!(
        o,
        "  quarantine:  {} lines, {} -> {}",
        r.quarantine.lines,
        human_bytes(r.quarantine.bytes),
        r.quarantine.file.display()
    );
    for q in &r.quarantine.first {
        let _ = writeln!(
            o,
            "               {}:{} ({} bytes): {}",
            q.source.display(),
            q.offset,
            q.length,
            q.reason
        );
    }
    if r.quarantine.lines > r.quarantine.first.len() as u64 {
        let _ = writeln!(
            o,
            "               ... and {} more",
            r.quarantine.lines - r.quarantine.first.len() as u64
        );
    }
}

/// The per key group table and the most superseded keys.
fn render_groups(o: &mut String, r: &DryRun) {
    use std::fmt::Write;
    if !r.groups.is_empty() {
        let _ = writeln!(o, "  per key group (first key component):");
        let _ = writeln!(
            o,
            "    {:<20} {:>10} {:>10} {:>11} {:>10} {:>11}",
            "GROUP", "IN", "KEPT", "SUPERSEDED", "TOMBSTONES", "QUARANTINED"
        );
        for g in &r.groups {
            let _ = writeln!(o, "    {}", group_row(g));
        }
    }
    if !r.top_superseded.is_empty() {
        let _ = writeln!(o, "  most superseded keys:");
        for k in &r.top_superseded {
            let key = serde_json::to_string(&k.key).unwrap_or_default();
            let _ = writeln!(o, "    {:<40} {} superseded", key, k.superseded);
        }
    }
}

/// The writers the census found and what a run would do for each.
fn render_writers(o: &mut String, w: &Writers) {
    use std::fmt::Write;
    if !w.supported {
        let _ = writeln!(o, "  writers:     no census on this platform");
    } else if w.openers.is_empty() {
        let _ = writeln!(o, "  writers:     none has the log open for writing");
    } else {
        let _ = writeln!(o, "  writers:");
        for p in &w.openers {
            let _ = writeln!(
                o,
                "    pid {} ({}) fd {} {} on {}: {} ({})",
                p.opener.pid,
                p.opener.program,
                p.opener.fd,
                p.opener.flags,
                p.opener.file.display(),
                p.strategy,
                p.why
            );
        }
    }
    if w.unreadable > 0 {
        let _ = writeln!(
            o,
            "               ({} processes could not be read: the census may be incomplete)",
            w.unreadable
        );
    }
}

fn group_row(g: &Group) -> String {
    let name = match &g.group {
        Some(v) => v.to_string(),
        None => "(no key)".into(),
    };
    format!(
        "{:<20} {:>10} {:>10} {:>11} {:>10} {:>11}",
        name, g.lines_in, g.lines_kept, g.superseded, g.tombstones, g.quarantined
    )
}
