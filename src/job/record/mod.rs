//! Run records: the last-run record, the last success, and a bounded history.
//!
//! Layout under the state dir, per store:
//! `stores/<name>/last-run.json`, `last-success.json`, `compaction.json`
//! (the log size after the last compaction, the baseline of `min_growth`)
//! and `history.jsonl`.
//!
//! Invariants:
//! - The JSON files are replaced atomically (temp, fsync, rename, fsync dir);
//!   a reader sees the previous record or the new one, never a torn one.
//! - Every run writes a last-run record, whatever its outcome.
//! - The history keeps at most [`HISTORY_KEEP`] records once trimmed; it is
//!   appended with O_APPEND, fdatasync'ed after each append (and its
//!   directory fsynced when the append created it), and trimmed by atomic
//!   rewrite.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, to_json};
use crate::io::durable;

pub mod report;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The job ran to the end (it may have found nothing to change).
    Ok,
    /// The job decided not to run (too little growth, no log yet, or a
    /// scheduled run found a manual one holding the lock).
    Skipped,
    /// A manual run found the lock held.
    Busy,
    /// The job failed; `error` says why.
    Error,
}

impl Outcome {
    /// What `sync now` exits with for one run of this outcome: 1 failed,
    /// 75 busy, else 0 (a command of several runs takes the worst).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Error => crate::exit_code::FAILED,
            Outcome::Busy => crate::exit_code::BUSY,
            Outcome::Ok | Outcome::Skipped => crate::exit_code::OK,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Skipped => "skipped",
            Outcome::Busy => "busy",
            Outcome::Error => "error",
        }
    }
}

/// Milliseconds spent in each phase of a run (written to the microsecond).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timings {
    #[serde(serialize_with = "ms")]
    pub lock_ms: f64,
    #[serde(serialize_with = "ms")]
    pub scan_ms: f64,
    #[serde(serialize_with = "ms")]
    pub write_ms: f64,
    #[serde(serialize_with = "ms")]
    pub swap_ms: f64,
    #[serde(serialize_with = "ms")]
    pub prune_ms: f64,
    /// Of `write_ms`: the verification before the swap (issue 16 D).
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub verify_ms: f64,
}

fn is_zero_f64(n: &f64) -> bool {
    *n == 0.0
}

/// A millisecond figure rounded to the microsecond, so `--json` shows
/// `0.074`, not the float noise of `0.07410800000000001` (C.14).
fn ms<S: serde::Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64((v * 1e3).round() / 1e3)
}

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Size of the live log when the run started.
    pub bytes_before: u64,
    /// Size of the live log when the run ended.
    pub bytes_after: u64,
    /// Complete lines read (before the cut).
    pub lines_in: u64,
    /// Lines written to the new log's snapshot part.
    pub lines_out: u64,
    /// Distinct live keys after the fold (keyed stores).
    pub keys_live: u64,
    /// Delete events dropped along with the keys they deleted.
    pub deletes_dropped: u64,
    /// Valid lines without the key, kept in place.
    pub keyless_kept: u64,
    /// Malformed lines (or torn fragments) moved to the quarantine file.
    pub quarantined: u64,
    /// Lines that were a torn fragment glued to a complete event: the event
    /// was kept, the fragment quarantined (also counted in `quarantined`).
    pub salvaged: u64,
    /// Lines that were two complete events glued together (a writer's `\n`
    /// was lost): both kept, each as its own line.
    #[serde(skip_serializing_if = "is_zero")]
    pub unglued: u64,
    pub quarantine_file: Option<PathBuf>,
    /// Bytes after the cut carried unchanged (torn line and lines appended
    /// during the run).
    pub tail_bytes: u64,
    /// Whether the log was rewritten (false when the fold changed nothing).
    pub rewritten: bool,
    /// The pre-compaction file, kept as a rotated file.
    pub rotated: Option<PathBuf>,
    /// The rotated file's size at the swap (the old log's final size).
    pub rotated_bytes: u64,
    /// Rotated files deleted by retention.
    pub pruned: Vec<PathBuf>,
    /// Temp files and stale links left by an earlier crashed run, removed.
    pub recovered: Vec<PathBuf>,
    /// Lines a writer that does not take the lock appended to the previous
    /// rotated file after its swap, carried into the live log by this run.
    pub late_lines_carried: u64,
    /// Of those late lines, the malformed ones (quarantined).
    pub late_lines_quarantined: u64,
    /// The newest rotated file they were found in.
    pub late_lines_from: Option<PathBuf>,
    /// Rotated files kept although retention would prune them: a writer
    /// still has them open, or they hold late writes not carried yet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_for_late_writes: Vec<PathBuf>,
    /// Who had the live log or a rotated file open for writing after the
    /// run (see `census`).
    pub writers: report::Census,
    /// How the log was replaced and why (`swap` + carry window, or
    /// `in-place`), and writers not served within 1 s (docs/writers.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<report::Report>,
    /// The filesystem reported no size (0 total blocks), so the free-space
    /// check was skipped.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub free_space_unchecked: bool,
    pub timings: Timings,
    /// The verification before the swap (issue 16 D): the digests of the
    /// planned fold and of the new file read back; on a failed run, the
    /// mismatch and where the new file was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::error::Verification>,
    /// Segmented stores only: the directory, prunes, health, compaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<report::SegmentStats>,
    /// The most keys one fold thread's map held (`Plan::map_keys`): kept
    /// in `compaction.json` for the next run's maps, not reported.
    #[serde(skip)]
    pub map_keys: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The record of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub store: String,
    pub log: PathBuf,
    pub outcome: Outcome,
    /// What started the run: manual, schedule, daemon, timer, cron, demo.
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// How long the run took, not counting `wait_ms`.
    #[serde(serialize_with = "ms")]
    pub duration_ms: f64,
    /// How long a `--wait` run waited for another run's store lock before
    /// it started (C.14); 0 when it did not wait.
    #[serde(default, serialize_with = "ms")]
    pub wait_ms: f64,
    /// Why a run was skipped or busy (e.g. the lock holder).
    pub reason: Option<String>,
    /// Why a run failed.
    pub error: Option<String>,
    pub stats: Stats,
    pub pid: u32,
    pub host: String,
    pub version: String,
    /// Names this run (`<started_at>-<pid>`): hooks get it as
    /// `LOGKEEPER_RUN_ID`.
    #[serde(default)]
    pub run_id: String,
    /// The store's counters up to and including this run (the metrics'
    /// `_total` series). Kept in the record so they are replaced in the same
    /// atomic write and survive restarts; None in records of older versions.
    #[serde(default)]
    pub totals: Option<Totals>,
    /// The `on_failure` / `on_success` hook run after the record was first
    /// written; the record is then rewritten with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<HookRun>,
}

/// A store's counters since its state began. They only grow (a lost or
/// unreadable last record restarts them from the history, which Prometheus
/// sees as a counter reset).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    pub runs_ok: u64,
    pub runs_skipped: u64,
    pub runs_busy: u64,
    pub runs_error: u64,
    pub quarantined_lines: u64,
    pub late_lines_carried: u64,
    pub pruned_files: u64,
}

impl Totals {
    /// These totals plus one run.
    pub fn plus(mut self, rec: &RunRecord) -> Totals {
        *match rec.outcome {
            Outcome::Ok => &mut self.runs_ok,
            Outcome::Skipped => &mut self.runs_skipped,
            Outcome::Busy => &mut self.runs_busy,
            Outcome::Error => &mut self.runs_error,
        } += 1;
        let s = &rec.stats;
        self.quarantined_lines += s.quarantined + s.late_lines_quarantined;
        self.late_lines_carried += s.late_lines_carried;
        self.pruned_files += s.pruned.len() as u64;
        self
    }

    pub fn runs(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Ok => self.runs_ok,
            Outcome::Skipped => self.runs_skipped,
            Outcome::Busy => self.runs_busy,
            Outcome::Error => self.runs_error,
        }
    }
}

/// What the store's `on_failure` / `on_success` hook did (`ops/hooks.rs`
/// runs it), kept in the run record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookRun {
    /// `on_failure` or `on_success`.
    pub hook: String,
    pub command: String,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// It ran past the timeout and was killed.
    pub timed_out: bool,
    /// It could not be started.
    pub error: Option<String>,
    pub duration_ms: f64,
}

impl HookRun {
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// One line for logs: what went wrong.
    pub fn describe(&self) -> String {
        if let Some(e) = &self.error {
            format!("{} could not start: {e}", self.hook)
        } else if self.timed_out {
            format!(
                "{} ran past its timeout ({:.0} ms) and was killed with its process group",
                self.hook, self.duration_ms
            )
        } else if let Some(s) = self.signal {
            format!("{} was killed by signal {s}", self.hook)
        } else {
            format!(
                "{} exited {}",
                self.hook,
                self.exit_code.map_or("?".into(), |c| c.to_string())
            )
        }
    }
}

pub const HISTORY_KEEP: usize = 100;

/// The run records of one store: `last-run.json`, `last-success.json`,
/// the `min_growth` baseline and the bounded history, in its state directory.
#[derive(Clone, Debug)]
pub struct RunRecords {
    dir: PathBuf,
}

/// Held while a run reads and writes its store's records; see
/// [`RunRecords::lock_records`].
pub struct RecordsLock {
    _file: std::fs::File,
}

/// The `min_growth` baseline: the log's size after the last compaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Baseline {
    pub bytes_after: u64,
    pub at: DateTime<Utc>,
    /// The most keys one thread's key map held in that compaction's fold:
    /// the next fold of the log starts its maps with room for as many
    /// (`fold::Opts::presize`). Absent in older files, and after a fold
    /// with no keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_keys: Option<u64>,
}

impl RunRecords {
    pub fn new(dir: PathBuf) -> Self {
        RunRecords { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn last_run(&self) -> Option<RunRecord> {
        read_json(&self.file("last-run.json"))
    }

    pub fn last_success(&self) -> Option<RunRecord> {
        read_json(&self.file("last-success.json"))
    }

    pub fn baseline(&self) -> Option<Baseline> {
        read_json(&self.file("compaction.json"))
    }

    /// The store's counters: those of the last record, else summed from
    /// the history (state written by an older version).
    pub fn totals(&self) -> Totals {
        match self.last_run().and_then(|r| r.totals) {
            Some(t) => t,
            None => self
                .history()
                .iter()
                .fold(Totals::default(), |t, r| t.plus(r)),
        }
    }

    /// Serialise the read-modify-write of this store's records across
    /// processes (`records.lock`, an `flock`, released by the kernel if the
    /// holder dies). A run that finds the store busy records that without
    /// the store lock, so without this it could read the counters, lose a
    /// race with the lock holder's write, and make a counter go backwards.
    pub fn lock_records(&self) -> Result<RecordsLock> {
        durable::ensure_private_dir(&self.dir)?;
        let path = self.file("records.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx("open", &path)?;
        f.lock().ctx("lock", &path)?;
        Ok(RecordsLock { _file: f })
    }

    /// Where the last-run record is (hooks get it as `LOGKEEPER_RECORD`).
    pub fn last_run_path(&self) -> PathBuf {
        self.file("last-run.json")
    }

    /// Record a finished run. `success` marks it as the store's last success
    /// (the health clock), `baseline` updates the `min_growth` baseline.
    pub fn record(&self, rec: &RunRecord, success: bool, baseline: bool) -> Result<()> {
        self.write_last(rec, success, baseline)?;
        self.append_history(rec)
    }

    /// [`Self::record`] without the history: the job writes the record,
    /// runs the hook, rewrites the record with it, then appends the history.
    pub fn write_last(&self, rec: &RunRecord, success: bool, baseline: bool) -> Result<()> {
        durable::ensure_private_dir(&self.dir)?;
        let last_run = self.file("last-run.json");
        let json = to_json("the run record", &last_run, rec, true)?;
        let last_success = self.file("last-success.json");
        let compaction = self.file("compaction.json");
        let b = Baseline {
            bytes_after: rec.stats.bytes_after,
            at: rec.finished_at,
            map_keys: Some(rec.stats.map_keys).filter(|&n| n > 0),
        };
        let b = to_json("the compaction baseline", &compaction, &b, false)?;
        // Each file is whole on its own, so they are replaced together
        // (one round of fsyncs): a crash may leave some old, some new.
        let mut files = vec![(last_run.as_path(), json.as_slice())];
        if success {
            files.push((&last_success, &json));
        }
        if baseline {
            files.push((&compaction, &b));
        }
        durable::atomic_write_all(&files, 0o600)
    }

    pub fn append_history(&self, rec: &RunRecord) -> Result<()> {
        let path = self.file("history.jsonl");
        let mut line = to_json("the run record", &path, rec, false)?;
        line.push(b'\n');
        let mut f = durable::open_append(&path, 0o600)?;
        // A new file's name must survive a power loss too.
        let created = f.metadata().ctx("stat", &path)?.len() == 0;
        // A run killed mid-append left a torn line: end it, so this record
        // starts a line of its own (readers skip the torn one).
        if !ends_with_newline(&f).ctx("read", &path)? {
            line.insert(0, b'\n');
        }
        f.write_all(&line).ctx("append to", &path)?;
        f.sync_data().ctx("fsync", &path)?;
        if created {
            durable::fsync_dir(durable::parent_dir(&path))?;
        }
        let len = f.metadata().ctx("stat", &path)?.len();
        // Trim when the file holds about twice what we keep.
        if len > (line.len() * HISTORY_KEEP * 2) as u64 {
            let text = std::fs::read(&path).ctx("read", &path)?;
            let lines: Vec<&[u8]> = text
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            let keep = &lines[lines.len().saturating_sub(HISTORY_KEEP)..];
            let mut out = Vec::with_capacity(text.len() / 2);
            for l in keep {
                out.extend_from_slice(l);
                out.push(b'\n');
            }
            durable::atomic_write(&path, &out, 0o600)?;
        }
        Ok(())
    }

    /// The run history, oldest first.
    pub fn history(&self) -> Vec<RunRecord> {
        std::fs::read_to_string(self.file("history.jsonl"))
            .map(|t| {
                t.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn ends_with_newline(f: &std::fs::File) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, len - 1)?;
    Ok(b[0] == b'\n')
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}
