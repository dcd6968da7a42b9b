//! `replay --as-of TIME` and `replay --points`: the folded state as it was.
//!
//! A *point* is an instant whose log the store still holds:
//! - single-file store: each run's swap, whose pre-compaction log is the
//!   rotated file `<log>.<swap time>` up to the byte the run copied to
//!   (`rotated_bytes` in its run record; the whole file if the record has
//!   left the history), and the live log now;
//! - segmented store: the end of each segment file, in seq order (the
//!   state there is the fold of that segment and every older one); its time
//!   is the file's mtime, lowered to the next segment's when a compaction
//!   rewrote it later, so point times never go back.
//!
//! Without a `time` pointer, `--as-of TIME` is the fold at the latest point
//! at or before TIME. With one (`time = "/created_at"`), the fold stops
//! exactly at TIME: it reads every retained line once, in write order (the
//! oldest point's file, then what each newer file adds after the previous
//! swap: [`exact_stream`]), and skips lines whose time is after TIME; lines
//! without a readable time are kept and counted. A TIME before the oldest
//! point is an error naming it.
//!
//! Read-only; no lock (a run only renames a new inode over the live log
//! and never changes a rotated file's bytes before `rotated_bytes`).
//! Limit: lines a lock-ignoring writer appended to a rotated file after its
//! swap (late writes) are carried into the log by the next run, so they
//! appear from the point after that run on; the exact stream skips them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;

use crate::config::StoreConfig;
use crate::error::{Error, IoContext, Result};
use crate::fold::json::{Kind, Pointers, Scanner, Span, unescape};
use crate::fold::{self, FoldSpec};
use crate::job::record::{RunRecord, RunRecords};
use crate::paths::Paths;

/// One retained point.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// When the log was as this point holds it.
    pub time: DateTime<Utc>,
    /// `run` (a run's swap), `live` (the live log now) or `segment`.
    pub kind: &'static str,
    /// The file the point lives in (the rotated file, the live log, the
    /// segment).
    pub file: PathBuf,
    /// Bytes of that file that belong to the point.
    pub bytes: u64,
    /// Complete lines folded to make the state at this point (for a
    /// segment, in it and every older one).
    pub lines: u64,
    /// The run that made the point (run points whose record is still in
    /// the history).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The byte ranges folded for the state at this point, in order.
    #[serde(skip)]
    sources: Vec<Source>,
    /// The lines this point's file adds to the older points' (for the
    /// exact stream, see [`exact_stream`]).
    #[serde(skip)]
    raw: Source,
}

/// `[start, end)` of a file; `start` is moved back to its line's start and
/// `end` to just after its last complete line when read.
#[derive(Clone, Debug, Default)]
struct Source {
    path: PathBuf,
    start: u64,
    end: u64,
}

/// What `--as-of` folded.
#[derive(Clone, Debug, Serialize)]
pub struct AsOf {
    /// The point folded (without a time pointer), or the earliest point at
    /// or after the time asked (with one: the fold then reads every
    /// retained line up to that time, from `files` files).
    pub point: Point,
    /// Files read.
    pub files: u64,
    /// True when the store's `time` pointer made the fold stop exactly at
    /// the time asked.
    pub exact: bool,
    /// Lines skipped because their time is after the time asked.
    pub skipped_after: u64,
    /// Lines kept although they have no readable time.
    pub untimed: u64,
    /// Malformed lines left out.
    pub malformed: u64,
    /// Lines written out.
    pub lines_out: u64,
}

/// Parse a TIME: RFC 3339, a local `YYYY-MM-DD HH:MM[:SS]` (or with `T`),
/// a local date (midnight), or Unix seconds.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    parse_instant(s.trim()).ok_or_else(|| {
        Error::Replay(crate::error::ReplayError::BadTime {
            input: s.to_string(),
        })
    })
}

fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return local(n);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return local(d.and_hms_opt(0, 0, 0)?);
    }
    s.parse::<f64>().ok().and_then(unix)
}

fn local(n: NaiveDateTime) -> Option<DateTime<Utc>> {
    Local
        .from_local_datetime(&n)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Unix seconds (or milliseconds, for values past the year 5138).
fn unix(x: f64) -> Option<DateTime<Utc>> {
    if !x.is_finite() {
        return None;
    }
    let ms = if x.abs() >= 1e11 { x } else { x * 1e3 };
    DateTime::from_timestamp_millis(ms.round() as i64)
}

/// The time of one line at `ptrs` (one pointer), if it has a readable one.
fn line_time(scanner: &mut Scanner, ptrs: &Pointers, line: &[u8]) -> Option<DateTime<Utc>> {
    let mut spans: [Option<Span>; 1] = [None];
    scanner.scan(line, ptrs, &mut spans).ok()?;
    let s = spans[0]?;
    value_time(&line[s.start..s.end], s.kind)
}

/// A time value longer than this is not one: a line too long to hold
/// ([`fold::Line::Long`]) has its time value read back only up to it.
const MAX_TIME_VALUE: usize = 256;

/// The time of a line too long to hold, from the span its streamed
/// validation found, reading back only that value.
fn long_line_time(file: &File, off: u64, verdict: &fold::Verdict) -> Option<DateTime<Utc>> {
    let s = (*verdict.as_ref().ok()?.first()?)?;
    if s.end - s.start > MAX_TIME_VALUE {
        return None;
    }
    value_time(&fold::read_span(file, off, &s).ok()?, s.kind)
}

/// A time from a value's raw text: an instant string or Unix seconds.
fn value_time(raw: &[u8], kind: Kind) -> Option<DateTime<Utc>> {
    match kind {
        Kind::String { escaped } => {
            let bytes = if escaped { unescape(raw) } else { raw.to_vec() };
            parse_instant(std::str::from_utf8(&bytes).ok()?)
        }
        Kind::Number => unix(std::str::from_utf8(raw).ok()?.parse().ok()?),
        _ => None,
    }
}

/// Complete lines in `[0, end)` of `path`.
fn count_lines(path: &Path, end: u64) -> Result<u64> {
    let f = File::open(path).ctx("open", path)?;
    let cut = fold::find_cut(&f, end).ctx("read", path)?;
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < cut {
        let want = ((cut - at) as usize).min(buf.len());
        use std::os::unix::fs::FileExt;
        f.read_exact_at(&mut buf[..want], at).ctx("read", path)?;
        n += memchr::memchr_iter(b'\n', &buf[..want]).count() as u64;
        at += want as u64;
    }
    Ok(n)
}

/// The store's retained points, oldest first.
pub fn points(paths: &Paths, store: &StoreConfig) -> Result<Vec<Point>> {
    match &store.segments() {
        Some(policy) => segment_points(store, policy),
        None => log_points(paths, store),
    }
}

fn log_points(paths: &Paths, store: &StoreConfig) -> Result<Vec<Point>> {
    let history = RunRecords::new(paths.store_state(&store.name)).history();
    let mut out = Vec::new();
    let mut rotated = crate::job::rotation::list(store.path())?;
    rotated.reverse();
    // Where the lines written after the previous run's swap start in the
    // next file: that run's new log was `bytes_after` long at its swap
    // (snapshot, late writes, tail). Unknown (record gone): 0, which folds
    // the snapshot again, harmlessly (it holds each key's latest value).
    let mut after_prev = 0;
    let mut point = |time, kind, path: PathBuf, bytes, rec: Option<&RunRecord>| -> Result<Point> {
        let raw = Source {
            path: path.clone(),
            start: after_prev.min(bytes),
            end: bytes,
        };
        after_prev = rec.map_or(0, |r| r.stats.bytes_after);
        Ok(Point {
            time,
            kind,
            lines: count_lines(&path, bytes)?,
            run_id: rec.map(|r| r.run_id.clone()),
            sources: vec![Source {
                path: path.clone(),
                start: 0,
                end: bytes,
            }],
            raw,
            file: path,
            bytes,
        })
    };
    for (time, path) in rotated {
        let rec = history
            .iter()
            .rev()
            .find(|r| r.stats.rotated.as_deref() == Some(path.as_path()));
        let size = std::fs::metadata(&path).ctx("stat", &path)?.len();
        let bytes = rec.map_or(size, |r| r.stats.rotated_bytes.min(size));
        out.push(point(time, "run", path, bytes, rec)?);
    }
    if let Ok(m) = std::fs::metadata(store.path()) {
        out.push(point(
            Utc::now(),
            "live",
            store.path().to_path_buf(),
            m.len(),
            None,
        )?);
    }
    Ok(out)
}

fn segment_points(
    store: &StoreConfig,
    policy: &crate::job::segmented::SegmentPolicy,
) -> Result<Vec<Point>> {
    let l = crate::job::segmented::pattern::list(&policy.pattern, &store.name)?;
    let mut out: Vec<Point> = Vec::new();
    let mut sources = Vec::new();
    let mut lines = 0;
    for seg in &l.segments {
        let whole = Source {
            path: seg.path.clone(),
            start: 0,
            end: seg.size,
        };
        sources.push(whole.clone());
        lines += count_lines(&seg.path, seg.size)?;
        out.push(Point {
            time: DateTime::<Utc>::from(seg.mtime),
            kind: "segment",
            file: seg.path.clone(),
            bytes: seg.size,
            lines,
            run_id: None,
            sources: sources.clone(),
            raw: whole,
        });
    }
    // A compaction rewrites an old segment after newer ones were sealed:
    // its state was reached no later than the next segment's.
    for i in (0..out.len().saturating_sub(1)).rev() {
        out[i].time = out[i].time.min(out[i + 1].time);
    }
    Ok(out)
}

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The exact stream: the oldest point's whole file, then the lines each
/// newer point's file adds (written after the previous swap), so that
/// every line still retained is read once, in write order, and the oldest
/// state (a snapshot) first. Filtering it by time gives the state at any
/// time since the oldest point, even where the events' own times disagree
/// with the swaps' (a value superseded before a swap is still in the file
/// it was written to).
fn exact_stream(pts: &[Point]) -> Vec<Source> {
    // The oldest point's `raw` is its whole file (nothing before it).
    pts.iter().map(|p| p.raw.clone()).collect()
}

/// Copy `len` bytes of `file` from `off` to `w`, through a bounded buffer.
fn copy_from(file: &File, mut off: u64, len: u64, w: &mut impl Write) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; (len as usize).min(1 << 20)];
    let end = off + len;
    while off < end {
        let n = ((end - off) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], off)?;
        w.write_all(&buf[..n])?;
        off += n as u64;
    }
    Ok(())
}

/// The lines of `sources` (those after `at` by `time_ptr` skipped) in one
/// temp file, and its length; counts what it skipped into `r`.
fn gather(
    sources: &[Source],
    time_ptr: Option<&Pointers>,
    at: DateTime<Utc>,
    r: &mut AsOf,
) -> Result<(File, u64)> {
    let tmp = tempfile::tempfile().ctx("create a temp file in", std::env::temp_dir())?;
    let mut w = BufWriter::with_capacity(1 << 20, &tmp);
    let mut scanner = Scanner::new();
    for Source { path, start, end } in sources {
        let f = File::open(path).ctx("open", path)?;
        let cut = fold::find_cut(&f, *end).ctx("read", path)?;
        let from = fold::find_cut(&f, *start).ctx("read", path)?.min(cut);
        let mut failed = None;
        fold::for_each_line_bounded(&f, from, cut, time_ptr, |off, line| {
            if failed.is_some() {
                return;
            }
            if let Some(ptrs) = time_ptr {
                let t = match &line {
                    fold::Line::Whole(b) => line_time(&mut scanner, ptrs, b),
                    fold::Line::Long { verdict, .. } => long_line_time(&f, off, verdict),
                };
                match t {
                    Some(t) if t > at => {
                        r.skipped_after += 1;
                        return;
                    }
                    Some(_) => {}
                    None => r.untimed += 1,
                }
            }
            let copied = match line {
                fold::Line::Whole(b) => w.write_all(b).and_then(|()| w.write_all(b"\n")),
                // Copied in pieces, `\n` included: memory stays flat.
                fold::Line::Long { len, .. } => copy_from(&f, off, len + 1, &mut w),
            };
            if let Err(e) = copied {
                failed = Some(e);
            }
        })
        .ctx("read", path)?;
        if let Some(e) = failed {
            return Err(Error::io("write a temp file in", std::env::temp_dir(), e));
        }
    }
    w.flush()
        .ctx("write a temp file in", std::env::temp_dir())?;
    drop(w);
    let len = tmp
        .metadata()
        .ctx("stat a temp file in", std::env::temp_dir())?
        .len();
    Ok((tmp, len))
}

/// Write the store's folded state as of `at` to `out` (see the module docs).
pub fn replay_as_of(
    paths: &Paths,
    store: &StoreConfig,
    at: DateTime<Utc>,
    out: &mut impl Write,
) -> Result<AsOf> {
    let pts = points(paths, store)?;
    let Some(oldest) = pts.first() else {
        return Err(Error::io(
            "find a retained point of",
            store.path(),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    };
    if at < oldest.time {
        return Err(Error::Replay(crate::error::ReplayError::AsOfTooEarly {
            store: store.name.clone(),
            asked: fmt(at),
            oldest: fmt(oldest.time),
            file: oldest.file.clone(),
        }));
    }
    let time_ptr = match &store.time {
        Some(p) => Some(Pointers::new(&[p]).map_err(|msg| {
            Error::Config(crate::error::ConfigError::InvalidStore {
                store: store.name.clone(),
                msg,
            })
        })?),
        None => None,
    };
    let point = match &time_ptr {
        // The earliest point at or after `at`, if any, to report; the fold
        // reads the exact stream of every point.
        Some(_) => pts.iter().find(|p| p.time >= at).or(pts.last()),
        None => pts.iter().rev().find(|p| p.time <= at),
    }
    .expect("at >= the oldest point")
    .clone();
    let sources = match &time_ptr {
        Some(_) => exact_stream(&pts),
        None => point.sources.clone(),
    };
    let spec = FoldSpec::for_store(store)?;
    let mut r = AsOf {
        point,
        exact: time_ptr.is_some(),
        files: sources.len() as u64,
        skipped_after: 0,
        untimed: 0,
        malformed: 0,
        lines_out: 0,
    };
    // The point's lines (filtered by time) in one temp file, folded as a
    // log is: memory stays with the live keys.
    let (tmp, len) = gather(&sources, time_ptr.as_ref(), at, &mut r)?;
    let plan = fold::fold(&spec, &tmp, len, crate::fold::scan_threads())
        .ctx("read a temp file in", std::env::temp_dir())?;
    r.malformed = plan.bad_lines;
    r.lines_out = plan.lines_out(spec.is_keyed());
    fold::copy_ranges_nl(&tmp, &plan.keep, &plan.newlines, out)
        .map_err(|e| Error::io("write to", "stdout", e))?;
    Ok(r)
}
