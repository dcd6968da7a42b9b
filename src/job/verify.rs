//! Verify before every swap (issue 16 D): the new file's snapshot is read
//! back from disk and its fold checked against the planned fold before the
//! log is touched, so a defect of the fold or of the write path (a wrong
//! range, a lost or doubled line, a torn write, a bit flipped on its way to
//! the disk) fails the run instead of reaching the log.
//!
//! Both sides are the same digest: the lines in order, each hashed with its
//! offset, and (keyed stores) the fold's figures: live keys, and lines a
//! fold would drop. The *planned* side reads the plan's kept ranges from
//! the files the fold read, in output order with the plan's inserted
//! `\n`s, and takes the plan's live keys; the *on-disk* side reads the
//! temp file once, folding it with the same fold engine as the compaction
//! (`fold::spans`), whose scan also hashes each line as it reads it
//! ([`crate::fold::digest`]); a snapshot must be its own fold: every key
//! once, no delete, no malformed line. The two sides run in parallel.
//!
//! Invariants:
//! - Runs after the snapshot is written, beside its fsync (the caller
//!   waits for both), and before anything else changes (quarantine,
//!   writers' lock, rotated link, exchange): a mismatch leaves every file
//!   of the store as it was.
//! - On a mismatch the temp file is kept for diagnosis under the store's
//!   state dir, in `verify-failed/`, the newest [`KEEP_FAILED`] only.
//! - Covers the snapshot (the fold). The late writes and the tail, appended
//!   after it under the writers' lock, are byte copies of what writers
//!   wrote and are not part of the fold's plan.

use std::fs::File;

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use crate::error::{Digest, Verification};
use crate::error::{Error, IoContext, Result};
use crate::fold::digest::LineDigest;
use crate::fold::snapshot::own_fold;
use crate::fold::spans::{self, FileSpan};
use crate::fold::{FoldSpec, Range};

/// Diagnosis files kept after failed verifications (the oldest go first).
pub const KEEP_FAILED: usize = 3;

/// Bytes read per step on either side.
const CHUNK: usize = 1 << 20;

/// The new file is folded in parallel chunks of at least this much.
const MIN_CHUNK: u64 = 4 << 20;

/// A snapshot of up to this many keys is folded as its own fold, which
/// holds 8 bytes per key (the key maps' budget, [`crate::fold::MAP_BUDGET`],
/// at most); a bigger one by the engine, whose maps stay in that budget
/// by folding in passes.
const MAX_OWN_KEYS: usize = crate::fold::MAP_BUDGET / 8;

/// What the new file's snapshot should hold: the `keep` ranges (virtual,
/// see `fold::spans`) of `segs`, with a `\n` after each of `newlines`,
/// holding `keys` live keys of `spec`.
pub(crate) struct Planned<'a> {
    pub(crate) keys: u64,
    pub(crate) spec: &'a FoldSpec,
    pub(crate) segs: &'a [FileSpan<'a>],
    pub(crate) keep: &'a [Range],
    pub(crate) newlines: &'a [u64],
}

/// Check the snapshot `[0, len)` of `tmp` against `plan`. Returns the
/// verification, or [`SyncError::VerifyFailed`](crate::error::SyncError::VerifyFailed) (the temp file copied to
/// `state_dir`'s `verify-failed/`).
pub(crate) fn snapshot(
    plan: &Planned,
    tmp: &tempfile::NamedTempFile,
    len: u64,
    log: &Path,
    state_dir: &Path,
) -> Result<Verification> {
    let t = Instant::now();
    corrupt_for_tests(tmp.as_file(), len);
    let (planned, on_disk) = std::thread::scope(|s| {
        let planned = s.spawn(|| planned(plan));
        let on_disk = digest_file(plan.spec, tmp.as_file(), len, plan.keys);
        (planned.join().expect("verify thread panicked"), on_disk)
    });
    let mut v = Verification {
        planned: planned.ctx("verify: read the log", log)?,
        on_disk: on_disk.ctx("verify: read back", tmp.path())?,
        ms: (t.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        kept: None,
    };
    if v.planned == v.on_disk {
        return Ok(v);
    }
    v.kept = keep_for_diagnosis(tmp.as_file(), len, state_dir)
        .inspect_err(|e| tracing::warn!("verify: could not keep the new file: {e}"))
        .ok();
    Err(Error::Sync(crate::error::SyncError::VerifyFailed {
        log: log.to_path_buf(),
        verification: Box::new(v),
    }))
}

/// Pieces of the plan hashed per batch at most: the batch, and where its
/// pieces lie, are the planned side's only memory (a batch of the whole
/// plan was 40 MiB at 10M live keys, on top of the on-disk side's maps).
const PLANNED_BATCH: usize = 1 << 14;

/// The digest of the plan: its kept pieces read in output order, with the
/// plan's `\n`s between them (runs of pieces of one file with coalesced
/// reads, as the snapshot was written), in batches of [`PLANNED_BATCH`].
fn planned(plan: &Planned) -> std::io::Result<Digest> {
    let mut d = LineDigest::new(0);
    let mut batch: Vec<Range> = Vec::with_capacity(PLANNED_BATCH);
    for (piece, nl) in crate::fold::split_at_newlines(plan.keep, plan.newlines) {
        batch.push(piece);
        if nl || batch.len() == PLANNED_BATCH {
            feed_ranges(plan.segs, &batch, &mut d)?;
            batch.clear();
        }
        if nl {
            d.feed(b"\n");
        }
    }
    feed_ranges(plan.segs, &batch, &mut d)?;
    let mut digest = finished(d);
    digest.keys = plan.keys;
    Ok(digest)
}

/// Feed `d` the bytes of the virtual `ranges` of `segs`, in order: located
/// in one pass (not one allocation per piece), each run of one file's
/// ranges hashed straight from read-only maps of that file.
fn feed_ranges(segs: &[FileSpan], ranges: &[Range], d: &mut LineDigest) -> std::io::Result<()> {
    let located = spans::locate(segs, ranges);
    let mut run: Vec<Range> = Vec::new();
    for same_file in located.chunk_by(|a, b| a.0 == b.0) {
        run.clear();
        run.extend(same_file.iter().map(|&(_, r)| r));
        crate::io::ranges::copy_ranges_mapped(segs[same_file[0].0].file, &run, d)?;
    }
    Ok(())
}

/// The digest of `[0, len)` of `file`, folded by `spec`, each line hashed
/// as the fold reads it (one read of the file; the line hashes are keyed
/// by offset, so the shares do not change the digest). A keyed store's
/// file is first folded as its own fold ([`own_fold`]: the keys' hashes
/// checked distinct, no key map), then, if that gives no answer (a key
/// hash repeats) or the plan has more than [`MAX_OWN_KEYS`] keys (`keys`
/// only picks the method: both are exact), by the fold engine, which
/// compares keys byte for byte. An append-only store's file is only
/// hashed, in the same shares.
fn digest_file(spec: &FoldSpec, file: &File, len: u64, keys: u64) -> std::io::Result<Digest> {
    let max_own = if keys <= MAX_OWN_KEYS as u64 {
        MAX_OWN_KEYS
    } else {
        0
    };
    digest_file_in(spec, file, len, MIN_CHUNK, max_own)
}

/// [`digest_file`] in shares of at least `min_chunk` bytes, trying the
/// own fold with up to `max_own` keys first (0: the engine only).
fn digest_file_in(
    spec: &FoldSpec,
    file: &File,
    len: u64,
    min_chunk: u64,
    max_own: usize,
) -> std::io::Result<Digest> {
    let threads = crate::fold::scan_threads();
    // A snapshot ends in a `\n`; a damaged one may not: its last piece is
    // hashed as an unended line and counted as a line a fold would drop.
    let cut = crate::fold::find_cut(file, len)?;
    let span = [FileSpan {
        file,
        path: Path::new(""),
        start: 0,
        end: cut,
    }];
    let torn = u64::from(cut < len);
    let own = match spec.is_keyed() && max_own > 0 {
        true => own_fold(spec, file, cut, threads, min_chunk, max_own)?,
        false => None,
    };
    let (mut all, mut digest) = if let Some(own) = own {
        let digest = Digest {
            keys: own.keys_live(),
            // Every key once: only deletes and malformed lines are unfolded.
            unfolded: own.deletes + own.bad_lines + torn,
            ..Digest::default()
        };
        (own.digest, digest)
    } else if spec.is_keyed() {
        let opts = crate::fold::Opts {
            tombs: false,
            salvage: false,
            digest: true,
            count_only: true,
            ..crate::fold::Opts::compaction(threads, min_chunk)
        };
        let plan = spans::fold_source(spec, &span[..], opts)?;
        let digest = Digest {
            keys: plan.keys_live,
            // Every repeat of a key, every delete, every malformed line.
            unfolded: plan.keyed_lines - plan.keys_live + plan.bad_lines + torn,
            ..Digest::default()
        };
        (plan.digest.unwrap_or_else(|| LineDigest::new(0)), digest)
    } else {
        (hash_lines(&span, threads, min_chunk)?, Digest::default())
    };
    let mut buf = vec![0u8; CHUNK];
    all.set_at(cut);
    read_range(
        file,
        Range {
            start: cut,
            end: len,
        },
        &mut buf,
        |b| all.feed(b),
    )?;
    let lines = finished(all);
    (digest.lines, digest.bytes, digest.hash) = (lines.lines, lines.bytes, lines.hash);
    Ok(digest)
}

/// The lines' part of a [`Digest`] (a last line without its `\n` is
/// hashed as unended: never in a plan).
fn finished(mut d: LineDigest) -> Digest {
    d.finish();
    Digest {
        lines: d.lines,
        bytes: d.bytes,
        hash: format!("{:016x}", d.sum),
        keys: 0,
        unfolded: 0,
    }
}

/// The lines of `span` hashed in the engine's shares, one thread each.
fn hash_lines(span: &[FileSpan], threads: usize, min_chunk: u64) -> std::io::Result<LineDigest> {
    let shares = spans::split(span, threads, min_chunk)?;
    let parts = spans::for_shares(&shares, |_, pieces| {
        let mut d = LineDigest::new(pieces.first().map_or(0, |p| p.start));
        let mut buf = vec![0u8; CHUNK];
        for p in pieces {
            let r = Range {
                start: p.start,
                end: p.end,
            };
            read_range(span[p.span].file, r, &mut buf, |b| d.feed(b))?;
        }
        Ok(d)
    })?;
    let mut all = LineDigest::new(0);
    for p in &parts {
        all.absorb_digest(p);
    }
    Ok(all)
}

fn read_range(
    file: &File,
    r: Range,
    buf: &mut [u8],
    mut f: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    let mut at = r.start;
    while at < r.end {
        let n = ((r.end - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at)?;
        f(&buf[..n]);
        at += n as u64;
    }
    Ok(())
}

/// Copy the snapshot into `<state_dir>/verify-failed/<stamp>.jsonl`
/// (private), then delete all but the newest [`KEEP_FAILED`] there.
fn keep_for_diagnosis(tmp: &File, len: u64, state_dir: &Path) -> Result<PathBuf> {
    let dir = state_dir.join("verify-failed");
    crate::io::durable::ensure_private_dir(&dir)?;
    let name = format!("{}.jsonl", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"));
    let path = dir.join(name);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .ctx("create", &path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut res = Ok(());
    read_range(tmp, Range { start: 0, end: len }, &mut buf, |b| {
        if res.is_ok() {
            res = std::io::Write::write_all(&mut out, b);
        }
    })
    .and(res)
    .ctx("write", &path)?;
    let mut kept: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ctx("list directory", &dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    kept.sort();
    for old in &kept[..kept.len().saturating_sub(KEEP_FAILED)] {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

/// `LOGKEEPER_FAILPOINT=corrupt-snapshot` (tests only): flip one byte in
/// the middle of the snapshot, as a bad write path or disk would.
fn corrupt_for_tests(_file: &File, _len: u64) {
    #[cfg(feature = "failpoints")]
    if _len > 0 && crate::failpoint::Failpoint::CorruptSnapshot.armed() {
        let mut b = [0u8; 1];
        let at = _len / 2;
        if _file.read_exact_at(&mut b, at).is_ok() {
            let _ = _file.write_all_at(&[b[0] ^ 0x01], at);
        }
    }
}

#[cfg(test)]
mod tests;
