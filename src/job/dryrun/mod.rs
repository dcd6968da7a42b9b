//! `sync now NAME --dry-run`: what a run would do, from the same cut and
//! fold a run makes ([`Cut::take`]), without changing anything.
//!
//! Nothing is written and nothing is locked: not the store lock (a dry run
//! must never make a real run find the store busy, nor wait behind one),
//! not the writers' lock, not the records. A cut needs no lock to be
//! consistent: the bytes before the last complete line only change by a
//! run's swap, which renames a new inode over the path while the dry run
//! goes on reading the old one through its open fd (a complete, consistent
//! log), or by a rewrite in place (another tool's copytruncate, or a run
//! that rewrites in place under the writers' lock). The latter is caught by
//! the cut's fingerprint, read again after the report is made: if it
//! changed, the report is made again from a new cut (a few times, then an
//! error).
//!
//! Invariants:
//! - The figures in [`DryRun::run`] are those a run would record in its
//!   `stats` at this instant (same cut, same fold, same late writes), so a
//!   run that follows with no write in between records the same numbers.
//! - Every complete line is counted once in [`DryRun::groups`]: kept,
//!   superseded, a tombstone, or quarantined.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::StoreConfig;
use crate::error::{Error, IoContext, Result};
use crate::fold::fingerprint;
use crate::fold::spans::{FileSpan, locate_bad};
use crate::fold::{self, FoldSpec, Range};
use crate::job::census::{self, Census, Opener};
use crate::job::cut::Cut;
use crate::job::late;
use crate::job::record::RunRecords;
use crate::paths::Paths;

mod lines;

use lines::classify_lines;

/// How many quarantined lines and most-superseded keys a report lists.
pub const LIST: usize = 10;

/// Tries at a consistent cut before giving up (see the module docs).
const TRIES: usize = 3;

/// What a run of one store would do now. Serialised as the `--json` report
/// (fields documented in docs/dry-run.md).
#[derive(Clone, Debug, Serialize)]
pub struct DryRun {
    pub store: String,
    pub log: PathBuf,
    /// Which lock the dry run took: always `"none"` (see the module docs).
    pub lock: &'static str,
    /// What a run would do: `compact` (rewrite the log), `unchanged` (the
    /// fold changes nothing), `skip` (below `min_growth`), `refuse` (a
    /// writer the swap cannot serve).
    pub verdict: &'static str,
    /// Why, for `skip` and `refuse`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The figures a compacting run would record in its `stats`, under the
    /// same names.
    pub run: RunFigures,
    /// Bytes of the complete lines read (the cut, plus late writes).
    pub bytes_in: u64,
    /// Bytes of the lines kept (the new log's snapshot part, without the tail).
    pub bytes_kept: u64,
    pub superseded: Dropped,
    pub tombstones: Dropped,
    pub quarantine: Quarantine,
    /// Per key group (the first key component), most lines first; lines
    /// without the key (and malformed ones) under `group: null`.
    pub groups: Vec<Group>,
    /// The keys with the most superseded lines, most first (at most [`LIST`]).
    pub top_superseded: Vec<TopKey>,
    /// Who has the log (or a rotated file) open for writing now, and the
    /// strategy each would get.
    pub writers: Writers,
    pub min_growth: MinGrowth,
}

/// The `stats` fields of a run record a run would write.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RunFigures {
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub lines_in: u64,
    pub lines_out: u64,
    pub keys_live: u64,
    pub deletes_dropped: u64,
    pub keyless_kept: u64,
    pub quarantined: u64,
    pub salvaged: u64,
    /// Omitted when 0, as in a run record.
    #[serde(skip_serializing_if = "is_zero")]
    pub unglued: u64,
    pub tail_bytes: u64,
    pub rewritten: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Lines a run would drop.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Dropped {
    pub lines: u64,
    pub bytes: u64,
}

/// Lines a run would move to the quarantine file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Quarantine {
    pub lines: u64,
    pub bytes: u64,
    /// The quarantine file they would go to.
    pub file: PathBuf,
    /// The first [`LIST`] of them, in log order.
    pub first: Vec<QuarantinedLine>,
}

/// One line that would be quarantined: where it is and why.
#[derive(Clone, Debug, Serialize)]
pub struct QuarantinedLine {
    /// The file it is in (the live log, or a rotated file for a late write).
    pub source: PathBuf,
    /// Its byte offset in that file (the quarantine entry's `offset`).
    pub offset: u64,
    /// Its length without the `\n`.
    pub length: u64,
    pub reason: String,
}

/// One key group's lines.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Group {
    /// The first key component (e.g. an `item_type`), or null for lines
    /// without the key and malformed lines.
    pub group: Option<serde_json::Value>,
    pub lines_in: u64,
    pub bytes_in: u64,
    pub lines_kept: u64,
    pub bytes_kept: u64,
    pub superseded: u64,
    pub tombstones: u64,
    pub quarantined: u64,
}

/// A key and how many of its lines a run would drop as superseded.
#[derive(Clone, Debug, Serialize)]
pub struct TopKey {
    /// The key's components, as JSON values.
    pub key: Vec<serde_json::Value>,
    pub superseded: u64,
}

/// The census, with the strategy a run would use for each writer.
#[derive(Clone, Debug, Serialize)]
pub struct Writers {
    /// False where this platform has no census.
    pub supported: bool,
    /// Processes whose descriptors could not be read.
    pub unreadable: u32,
    pub openers: Vec<WriterPlan>,
}

/// One write-mode descriptor and what a run would do about it.
#[derive(Clone, Debug, Serialize)]
pub struct WriterPlan {
    #[serde(flatten)]
    pub opener: Opener,
    /// `swap` or `refuse`.
    pub strategy: &'static str,
    pub why: &'static str,
}

/// The `min_growth` check as a run would make it.
#[derive(Clone, Debug, Serialize)]
pub struct MinGrowth {
    /// The store's `min_growth` (0: not set).
    pub threshold: f64,
    /// The log size after the last compaction, if any.
    pub baseline_bytes: Option<u64>,
    /// Growth since then, as a fraction (null without a baseline).
    pub grown: Option<f64>,
    /// Whether a run (without `--force`) would skip.
    pub would_skip: bool,
}

/// The strategy a run gives one writer. A small function on purpose: the
/// rule lives with the swap (`refuse_unsafe_writers` in `job/guard.rs`),
/// and this only reports it.
pub fn writer_strategy(store: &StoreConfig, o: &Opener) -> (&'static str, &'static str) {
    if o.append {
        (
            "swap",
            "O_APPEND: a compacted copy is renamed over the log; lines it writes to the old inode after the swap are carried by the next run",
        )
    } else if store.allow_positional_writers {
        (
            "swap",
            "no O_APPEND, allowed by allow_positional_writers: its writes after the swap land at its own offset in the rotated file",
        )
    } else {
        (
            "refuse",
            "no O_APPEND: it writes at its own offset, which a swap cannot serve; the run fails before touching the log",
        )
    }
}

/// What a run of `store` would do now (single-file stores). `force`
/// ignores `min_growth`, as `sync now --force` does.
pub fn dry_run(paths: &Paths, store: &StoreConfig, force: bool) -> Result<DryRun> {
    if store.segments().is_some() {
        return Err(Error::Config(crate::error::ConfigError::WrongStoreKind {
            store: store.name.clone(),
            msg: "is a segmented store: --dry-run explains single-file stores only",
        }));
    }
    if let Err(e) = std::fs::symlink_metadata(store.path())
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Ok(missing_log(store));
    }
    let state_dir = paths.store_state(&store.name);
    for _ in 0..TRIES {
        let log = crate::job::compact::resolve_log(store.path())?;
        let live = std::fs::metadata(&log).ctx("stat log", &log)?;
        let (late_state, _) = late::load(&state_dir, &log, &live);
        let c = Cut::take(store, Some(&late_state))?;
        let report = report(paths, store, force, &c, &late_state)?;
        if fingerprint(&c.file, c.cut).ctx("read log", &c.log)? == c.fingerprint {
            return Ok(report);
        }
    }
    Err(Error::io(
        "read a consistent cut of",
        store.path(),
        std::io::Error::other(
            "another program kept rewriting the log in place during the dry run; nothing was changed: run it again",
        ),
    ))
}

/// A run skips a store whose log does not exist yet; so says the dry run,
/// with the run's words.
fn missing_log(store: &StoreConfig) -> DryRun {
    DryRun {
        store: store.name.clone(),
        log: store.path().to_path_buf(),
        lock: "none",
        verdict: "skip",
        reason: Some(crate::job::missing_log_reason(store)),
        run: RunFigures::default(),
        bytes_in: 0,
        bytes_kept: 0,
        superseded: Dropped::default(),
        tombstones: Dropped::default(),
        quarantine: Quarantine {
            file: crate::job::quarantine::path_for(store.path()),
            ..Quarantine::default()
        },
        groups: Vec::new(),
        top_superseded: Vec::new(),
        writers: plan_writers(store, census::take(&[store.path()])),
        min_growth: MinGrowth {
            threshold: store.log_policy().map_or(0.0, |p| p.min_growth),
            baseline_bytes: None,
            grown: None,
            would_skip: false,
        },
    }
}

fn report(
    paths: &Paths,
    store: &StoreConfig,
    force: bool,
    c: &Cut,
    late_state: &late::LateWrites,
) -> Result<DryRun> {
    let spec = FoldSpec::for_store(store)?;
    let keyed = spec.is_keyed();
    let plan = &c.plan;
    let segs = c.spans();
    let lines = classify_lines(&spec, &segs, plan, &c.log)?;
    let bytes_kept = plan.kept_bytes() + plan.newlines.len() as u64;
    let choice = choice(store, c, keyed);
    let rotate = choice == Some(crate::plan::log::Choice::Archive);
    let rewritten = rotate || choice == Some(crate::plan::log::Choice::Rewrite);
    let run = run_figures(c, keyed, rotate, rewritten, bytes_kept);

    let quarantine = Quarantine {
        lines: plan.bad_lines,
        bytes: plan.bad.iter().map(|b| b.range.len()).sum(),
        file: crate::job::quarantine::path_for(&c.log),
        first: first_quarantined(&locate_bad(&segs, &plan.bad)),
    };

    let mut watched: Vec<&Path> = vec![&c.log];
    watched.extend(late_state.watches.iter().map(|w| w.rotated.as_path()));
    let writers = plan_writers(store, census::take(&watched));
    let baseline = RunRecords::new(paths.store_state(&store.name)).baseline();
    let grown = baseline
        .as_ref()
        .map(|b| crate::plan::log::growth(c.size, b.bytes_after));
    let skip = crate::job::min_growth_skip(paths, store, force, c.size, late_state);
    let (verdict, reason) = match (skip, refusal(&writers)) {
        (Some(why), _) => ("skip", Some(why)),
        (None, Some(why)) => ("refuse", Some(why)),
        (None, None) if rewritten => ("compact", None),
        (None, None) => ("unchanged", None),
    };
    let run = if verdict == "skip" {
        // A skipped run records only the log's size.
        RunFigures {
            bytes_before: c.size,
            bytes_after: c.size,
            ..RunFigures::default()
        }
    } else {
        run
    };
    Ok(DryRun {
        store: store.name.clone(),
        log: c.log.clone(),
        lock: "none",
        verdict,
        reason,
        run,
        bytes_in: plan.cut,
        bytes_kept,
        superseded: lines.superseded,
        tombstones: lines.tombstones,
        quarantine,
        groups: lines.groups,
        top_superseded: lines.top,
        writers,
        min_growth: MinGrowth {
            threshold: store.log_policy().map_or(0.0, |p| p.min_growth),
            baseline_bytes: baseline.map(|b| b.bytes_after),
            grown,
            would_skip: verdict == "skip",
        },
    })
}

/// The run's own choice after the fold (`plan::log::choose`).
fn choice(store: &StoreConfig, c: &Cut, keyed: bool) -> Option<crate::plan::log::Choice> {
    let folded = crate::plan::log::Folded {
        keyed,
        identity: c.plan.is_identity(),
        late_bytes: c.late_bytes(),
        size: c.size,
    };
    Some(crate::plan::log::choose(store.log_policy()?, &folded))
}

/// Why a run would refuse: a writer without `O_APPEND` (unless allowed).
fn refusal(writers: &Writers) -> Option<String> {
    writers
        .openers
        .iter()
        .find(|w| w.strategy == "refuse")
        .map(|w| {
            format!(
                "pid {} ({}) has the log open for writing without O_APPEND ({}): {}",
                w.opener.pid, w.opener.program, w.opener.flags, w.why
            )
        })
}

/// The figures a run would record, from the cut and the choice.
fn run_figures(c: &Cut, keyed: bool, rotate: bool, rewritten: bool, bytes_kept: u64) -> RunFigures {
    let plan = &c.plan;
    let tail = c.size - c.cut;
    let mut run = RunFigures {
        bytes_before: c.size,
        bytes_after: c.size,
        lines_in: plan.lines_in,
        lines_out: plan.lines_out(keyed),
        keys_live: plan.keys_live,
        deletes_dropped: plan.deletes_dropped,
        keyless_kept: plan.keyless_kept,
        quarantined: plan.bad_lines,
        salvaged: plan.salvaged,
        unglued: plan.unglued,
        tail_bytes: tail,
        rewritten,
    };
    if rotate {
        (run.lines_out, run.bytes_after) = (0, 0);
    } else if rewritten {
        run.bytes_after = bytes_kept + tail;
    }
    run
}

/// Whether the bad range `r` of `seg` includes its line's `\n` (a whole
/// malformed line does; a salvaged fragment does not).
/// The first [`LIST`] quarantined lines: a run of adjacent malformed lines
/// (one entry of the plan) is listed line by line, each with its reason.
fn first_quarantined(located: &[(FileSpan, fold::Bad)]) -> Vec<QuarantinedLine> {
    use std::os::unix::fs::FileExt;
    let mut out = Vec::new();
    for (seg, b) in located {
        let mut at = b.range.start;
        while at < b.range.end && out.len() < LIST {
            let end = crate::job::quarantine::next_line_end(seg.file, at, b.range.end)
                .unwrap_or(b.range.end);
            let r = Range { start: at, end };
            let length = r.len() - u64::from(line_ends_in_newline(seg, r));
            let reason = if at == b.range.start {
                b.reason.to_string()
            } else {
                // A later line of a run: its own reason (a short read or
                // a long line keeps the run's).
                let mut line = vec![0u8; length.min(1 << 20) as usize];
                match seg.file.read_exact_at(&mut line, at) {
                    Ok(()) if length <= 1 << 20 => fold::json::Scanner::new()
                        .validate(&line)
                        .err()
                        .map_or_else(|| b.reason.to_string(), |e| e.to_string()),
                    _ => b.reason.to_string(),
                }
            };
            out.push(QuarantinedLine {
                source: seg.path.to_path_buf(),
                offset: at,
                length,
                reason,
            });
            at = end;
        }
    }
    out
}

fn line_ends_in_newline(seg: &FileSpan, r: Range) -> bool {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    r.end > r.start && seg.file.read_exact_at(&mut b, r.end - 1).is_ok() && b[0] == b'\n'
}

fn plan_writers(store: &StoreConfig, census: Census) -> Writers {
    Writers {
        supported: census.supported,
        unreadable: census.unreadable,
        openers: census
            .openers
            .into_iter()
            .map(|o| {
                let (strategy, why) = writer_strategy(store, &o);
                WriterPlan {
                    opener: o,
                    strategy,
                    why,
                }
            })
            .collect(),
    }
}
