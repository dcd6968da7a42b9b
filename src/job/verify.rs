//! Verify before every swap (issue 16 D): the new file's snapshot is read
//! back from disk and its fold checked against the planned fold before the
//! log is touched, so a defect of the fold or of the write path (a wrong
//! range, a lost or doubled line, a torn write, a bit flipped on its way to
//! the disk) fails the run instead of reaching the log.
//!
//! Both sides are the same digest: the lines in order, each as (class, key,
//! bytes), hashed (for a store without a key, as bytes only: every line is
//! kept whole, so there is no class or key to compare). The *planned* side reads the plan's kept ranges from the
//! files the fold read, in output order with the plan's inserted `\n`s;
//! the *on-disk* side reads the temp file. The two run in parallel.
//!
//! Invariants:
//! - Runs after the snapshot is fsynced and before anything else changes
//!   (quarantine, writers' lock, rotated link, exchange): a mismatch leaves
//!   every file of the store as it was.
//! - On a mismatch the temp file is kept for diagnosis under the store's
//!   state dir, in `verify-failed/`, the newest [`KEEP_FAILED`] only.
//! - Covers the snapshot (the fold). The late writes and the tail, appended
//!   after it under the writers' lock, are byte copies of what writers
//!   wrote and are not part of the fold's plan.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::fold::spans::{self, FileSpan};
use crate::fold::{Class, Classifier, FoldSpec, Range};

/// Diagnosis files kept after failed verifications (the oldest go first).
pub const KEEP_FAILED: usize = 3;

/// Bytes read per step on either side.
const CHUNK: usize = 1 << 20;

/// The new file is folded in parallel chunks of at least this much.
const MIN_CHUNK: u64 = 4 << 20;

/// A digest of the snapshot: its lines in order (count, bytes and a 64-bit
/// sum of a hash of each line's offset and bytes) and its fold (live keys, and lines a fold of
/// it would drop: a key seen twice, a delete, a malformed line).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub lines: u64,
    pub bytes: u64,
    /// 16 hex digits.
    pub hash: String,
    /// Distinct live keys (keyed stores): of the plan, as the scan folded
    /// the log; on disk, as a fold of the new file finds them.
    pub keys: u64,
    /// Lines a fold of the file would drop or change (0 for a plan).
    pub unfolded: u64,
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} lines, {} bytes, {} keys, {} lines a fold would drop)",
            self.hash, self.lines, self.bytes, self.keys, self.unfolded
        )
    }
}

/// What the verification of one swap found (kept in the run record).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Of the plan: the kept lines as the fold chose them.
    pub planned: Digest,
    /// Of the new file's snapshot as read back from disk.
    pub on_disk: Digest,
    pub ms: f64,
    /// Where the new file was kept, on a mismatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<PathBuf>,
}

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
/// verification, or [`Error::VerifyFailed`] (the temp file copied to
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
        let on_disk = digest_file(plan.spec, tmp.as_file(), len);
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
    Err(Error::VerifyFailed {
        log: log.to_path_buf(),
        verification: Box::new(v),
    })
}

/// The digest of the plan: its kept pieces read in output order (runs of
/// pieces of one file with coalesced reads, as the snapshot was written).
fn planned(plan: &Planned) -> std::io::Result<Digest> {
    let mut d = LineDigest::new(None, 0);
    let mut group: Vec<Range> = Vec::new();
    let mut group_file = usize::MAX;
    for (piece, nl) in crate::fold::split_at_newlines(plan.keep, plan.newlines) {
        for (k, r) in spans::locate(plan.segs, std::slice::from_ref(&piece)) {
            if k != group_file && !group.is_empty() {
                crate::fold::copy_ranges(plan.segs[group_file].file, &group, &mut d)?;
                group.clear();
            }
            group_file = k;
            group.push(r);
        }
        if nl {
            crate::fold::copy_ranges(plan.segs[group_file].file, &group, &mut d)?;
            group.clear();
            d.feed(b"\n");
        }
    }
    if !group.is_empty() {
        crate::fold::copy_ranges(plan.segs[group_file].file, &group, &mut d)?;
    }
    let mut digest = d.finish();
    digest.keys = plan.keys;
    Ok(digest)
}

/// The digest of `[0, len)` of `file`, folded by `spec`: in chunks that
/// start at line starts, one thread each (the line hashes are keyed by
/// offset, so the chunking does not change the digest), their keys merged
/// at the end.
fn digest_file(spec: &FoldSpec, file: &File, len: u64) -> std::io::Result<Digest> {
    let n = crate::job::compact::scan_threads().min((len / MIN_CHUNK).max(1) as usize);
    let mut bounds = vec![0u64];
    for i in 1..n {
        let b = crate::fold::next_line_start(file, len * i as u64 / n as u64, len)?;
        if b > *bounds.last().unwrap() && b < len {
            bounds.push(b);
        }
    }
    bounds.push(len);
    let chunk = |start: u64, end: u64| -> std::io::Result<LineDigest> {
        let mut d = LineDigest::new(spec.is_keyed().then(|| FoldCheck::new(spec)), start);
        let mut buf = vec![0u8; CHUNK];
        read_range(file, Range { start, end }, &mut buf, |b| d.feed(b))?;
        Ok(d)
    };
    let parts = std::thread::scope(|s| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| s.spawn(move || chunk(w[0], w[1])))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("verify thread panicked"))
            .collect::<std::io::Result<Vec<_>>>()
    })?;
    let mut all = LineDigest::new(spec.is_keyed().then(|| FoldCheck::new(spec)), 0);
    for p in parts {
        all.absorb(p);
    }
    Ok(all.finish())
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

/// The fold of a snapshot, checked line by line: a snapshot is its own
/// fold, so every line is a live event of a key not seen before, or a
/// valid line without the key. Keys are remembered as 128-bit hashes
/// (memory grows with live keys, as the scan's does; a collision could
/// only fail a run, never pass a bad file).
struct FoldCheck<'s> {
    cls: Classifier<'s>,
    /// Hashes of the live keys seen, in no order (sorted at the end).
    keys: Vec<u128>,
    unfolded: u64,
}

impl<'s> FoldCheck<'s> {
    fn new(spec: &'s FoldSpec) -> Self {
        FoldCheck {
            cls: Classifier::new(spec),
            keys: Vec::new(),
            unfolded: 0,
        }
    }

    fn line(&mut self, line: &[u8]) {
        match self.cls.classify(line) {
            Class::Keyed { delete: false } => {
                let h = |seed: u64| {
                    foldhash::quality::FixedState::with_seed(seed).hash_one(&self.cls.key[..])
                };
                self.keys.push((h(1) as u128) << 64 | h(2) as u128);
            }
            Class::Keyless => {}
            Class::Keyed { delete: true } | Class::Malformed(_) => self.unfolded += 1,
        }
    }

    /// (distinct keys, lines a fold would drop: those counted so far and
    /// every repeat of a key).
    fn finish(&mut self) -> (u64, u64) {
        self.keys.sort_unstable();
        let all = self.keys.len();
        self.keys.dedup();
        let distinct = self.keys.len() as u64;
        (distinct, self.unfolded + (all as u64 - distinct))
    }
}

/// Lines fed in pieces, each hashed (and, on disk, folded) as it
/// completes. The digest is the wrapping sum of one hash per line of
/// (offset in the output, bytes): order-sensitive through the offset, and
/// the same whether the stream is digested whole or in chunks.
struct LineDigest<'s> {
    fold: Option<FoldCheck<'s>>,
    pending: Vec<u8>,
    /// The output offset of the next line's first byte.
    at: u64,
    sum: u64,
    lines: u64,
    bytes: u64,
}

const SEED: u64 = 0x6c6b_7665_7269_6679;

impl<'s> LineDigest<'s> {
    fn new(fold: Option<FoldCheck<'s>>, at: u64) -> Self {
        LineDigest {
            fold,
            pending: Vec::new(),
            at,
            sum: 0,
            lines: 0,
            bytes: 0,
        }
    }

    fn feed(&mut self, mut b: &[u8]) {
        self.bytes += b.len() as u64;
        while let Some(i) = memchr::memchr(b'\n', b) {
            if self.pending.is_empty() {
                self.line(&b[..i], true);
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(&b[..i]);
                self.line(&line, true);
                line.clear();
                self.pending = line;
            }
            b = &b[i + 1..];
        }
        self.pending.extend_from_slice(b);
    }

    fn line(&mut self, line: &[u8], ended: bool) {
        let mut h = foldhash::fast::FixedState::with_seed(SEED).build_hasher();
        h.write_u64(self.at);
        h.write(line);
        h.write_u8(ended as u8);
        self.sum = self.sum.wrapping_add(h.finish());
        self.lines += 1;
        self.at += line.len() as u64 + 1;
        if let Some(f) = self.fold.as_mut() {
            f.line(line);
        }
    }

    /// Add a later chunk's lines (its partial last line, if any, ends the
    /// stream).
    fn absorb(&mut self, mut other: LineDigest) {
        if !other.pending.is_empty() {
            let rest = std::mem::take(&mut other.pending);
            other.line(&rest, false);
        }
        self.sum = self.sum.wrapping_add(other.sum);
        self.lines += other.lines;
        self.bytes += other.bytes;
        if let (Some(f), Some(o)) = (self.fold.as_mut(), other.fold) {
            f.keys.extend(o.keys);
            f.unfolded += o.unfolded;
        }
    }

    fn finish(mut self) -> Digest {
        if !self.pending.is_empty() {
            // A last line without its `\n`: never in a plan.
            let rest = std::mem::take(&mut self.pending);
            self.line(&rest, false);
        }
        let (keys, unfolded) = self.fold.as_mut().map_or((0, 0), FoldCheck::finish);
        Digest {
            lines: self.lines,
            bytes: self.bytes,
            hash: format!("{:016x}", self.sum),
            keys,
            unfolded,
        }
    }
}

/// The plan's side is read through [`crate::fold::copy_ranges`].
impl std::io::Write for LineDigest<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.feed(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
    if _len > 0 && std::env::var("LOGKEEPER_FAILPOINT").is_ok_and(|v| v == "corrupt-snapshot") {
        let mut b = [0u8; 1];
        let at = _len / 2;
        if _file.read_exact_at(&mut b, at).is_ok() {
            let _ = _file.write_all_at(&[b[0] ^ 0x01], at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FoldSpec {
        FoldSpec::new(&["/t".into(), "/id".into()], Some("/op"), &["DEL".into()]).unwrap()
    }

    fn digest(pieces: &[&[u8]]) -> Digest {
        let s = spec();
        let mut d = LineDigest::new(Some(FoldCheck::new(&s)), 0);
        for p in pieces {
            d.feed(p);
        }
        d.finish()
    }

    #[test]
    fn the_digest_is_of_lines_not_of_how_they_were_cut() {
        let whole = digest(&[b"{\"t\":1,\"id\":2}\n{\"t\":1,\"id\":3}\n"]);
        let pieces = digest(&[b"{\"t\":1,", b"\"id\":2}\n{\"t\"", b":1,\"id\":3}\n"]);
        assert_eq!(whole, pieces);
        assert_eq!(
            (whole.lines, whole.bytes, whole.keys, whole.unfolded),
            (2, 30, 2, 0)
        );
    }

    #[test]
    fn chunks_digested_apart_add_up_to_the_whole() {
        let s = spec();
        let text: &[u8] = b"{\"t\":1,\"id\":2}\n{\"t\":1,\"id\":3}\n{\"t\":1,\"id\":2}\n";
        let whole = digest(&[text]);
        let mut first = LineDigest::new(Some(FoldCheck::new(&s)), 0);
        first.feed(&text[..15]);
        let mut rest = LineDigest::new(Some(FoldCheck::new(&s)), 15);
        rest.feed(&text[15..]);
        first.absorb(rest);
        assert_eq!(first.finish(), whole);
        assert_eq!(
            (whole.keys, whole.unfolded),
            (2, 1),
            "a key twice across chunks"
        );
    }

    #[test]
    fn order_bytes_and_the_fold_all_count() {
        let a = digest(&[b"{\"t\":1,\"id\":2}\n{\"t\":1,\"id\":3}\n"]);
        let swapped = digest(&[b"{\"t\":1,\"id\":3}\n{\"t\":1,\"id\":2}\n"]);
        let glued = digest(&[b"{\"t\":1,\"id\":2}{\"t\":1,\"id\":3}\n\n"]);
        assert_ne!(a.hash, swapped.hash);
        assert_ne!(a.hash, glued.hash);
        // A key twice, a delete, a malformed line: a fold would drop them.
        let twice = digest(&[b"{\"t\":1,\"id\":2}\n{\"t\":1,\"id\":2,\"v\":1}\n"]);
        assert_eq!((twice.keys, twice.unfolded), (1, 1));
        let del = digest(&[b"{\"t\":1,\"id\":2,\"op\":\"DEL\"}\nnope\n{\"x\":1}\n"]);
        assert_eq!((del.keys, del.unfolded), (0, 2));
    }
}
