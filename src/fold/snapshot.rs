//! The fold of a file that should already be its own fold: the new
//! snapshot, read back by the verification before a swap (`job::verify`).
//!
//! A snapshot holds every live key exactly once, no delete and no
//! malformed line. So instead of the engine's key maps (each key's bytes
//! stored and looked up, the threads' maps merged, the survivors sorted),
//! each thread classifies its share's lines as the engine does, hashes
//! them into the line digest, and keeps only the 64-bit hash of each
//! keyed line's key; the hashes are then sorted and checked distinct.
//!
//! Invariants:
//! - Exact, not probabilistic: equal keys have equal hashes, so distinct
//!   hashes prove distinct keys. When two hashes are equal (the same key
//!   twice, or two keys that collide) this fold gives no answer (`None`),
//!   and the caller folds the file with the engine, which compares keys
//!   byte for byte.
//! - When it answers, its figures are those the engine's fold would give:
//!   every key once, so the live keys are the keyed lines that do not
//!   delete, and no line is superseded.
//! - Memory: 8 bytes per keyed line, at most `max_keys` in all; a share
//!   that would hold more than its part gives up (`None`).

use std::fs::File;
use std::io;
use std::path::Path;

use super::digest::LineDigest;
use super::lines::{Line, for_each_line_indexed};
use super::spans::{self, FileSpan};
use super::{Class, Classifier, FoldSpec};

/// What a file that is its own fold holds (see the module doc).
#[derive(Debug)]
pub(crate) struct OwnFold {
    /// Every line hashed, keyed by its offset (as the engine's digest).
    pub(crate) digest: LineDigest,
    pub(crate) keyed: u64,
    pub(crate) deletes: u64,
    pub(crate) bad_lines: u64,
}

impl OwnFold {
    /// The live keys: each key appears once, so every keyed line that does
    /// not delete is one.
    pub(crate) fn keys_live(&self) -> u64 {
        self.keyed - self.deletes
    }
}

/// One share's findings, its key hashes sorted.
struct Share {
    fold: OwnFold,
    hashes: Vec<u64>,
}

/// Fold `[0, cut)` of `file` (`cut` 0 or just after a `\n`) in the
/// engine's shares of at least `min_chunk` bytes, one thread each, if its
/// keys are distinct and at most `max_keys`; `None` otherwise (see the
/// module doc).
pub(crate) fn own_fold(
    spec: &FoldSpec,
    file: &File,
    cut: u64,
    threads: usize,
    min_chunk: u64,
    max_keys: usize,
) -> io::Result<Option<OwnFold>> {
    own_fold_by(spec, file, cut, threads, min_chunk, max_keys, |k| {
        super::keymap::hash_key(k)
    })
}

/// [`own_fold`] with the key hash `hash` (tests force collisions with it).
pub(crate) fn own_fold_by(
    spec: &FoldSpec,
    file: &File,
    cut: u64,
    threads: usize,
    min_chunk: u64,
    max_keys: usize,
    hash: impl Fn(&[u8]) -> u64 + Sync,
) -> io::Result<Option<OwnFold>> {
    let span = [FileSpan {
        file,
        path: Path::new(""),
        start: 0,
        end: cut,
    }];
    let shares = spans::split(&span[..], threads, min_chunk)?;
    let cap = max_keys / shares.len().max(1);
    let found = spans::for_shares(&shares, |_, pieces| {
        let mut share = Share {
            fold: OwnFold {
                digest: LineDigest::new(0),
                keyed: 0,
                deletes: 0,
                bad_lines: 0,
            },
            // Reserved whole (not touched until used): no copy as it grows.
            hashes: Vec::with_capacity(cap + 1),
        };
        let mut cls = Classifier::new(spec);
        for p in pieces {
            if !scan(&mut cls, file, p.start, p.end, &mut share, cap, &hash)? {
                return Ok(None);
            }
        }
        share.hashes.sort_unstable();
        Ok(distinct(&[&share.hashes]).then_some(share))
    })?;
    let Some(found) = found.into_iter().collect::<Option<Vec<Share>>>() else {
        return Ok(None);
    };
    let sorted: Vec<&[u64]> = found.iter().map(|s| &s.hashes[..]).collect();
    if !distinct(&sorted) {
        return Ok(None);
    }
    let mut all = OwnFold {
        digest: LineDigest::new(0),
        keyed: 0,
        deletes: 0,
        bad_lines: 0,
    };
    for s in &found {
        all.digest.absorb_digest(&s.fold.digest);
        all.keyed += s.fold.keyed;
        all.deletes += s.fold.deletes;
        all.bad_lines += s.fold.bad_lines;
    }
    Ok(Some(all))
}

/// Scan `[start, end)` of `file` into `share`, as the engine's scan
/// classifies and hashes lines (`fold::scan`, without salvage). Returns
/// false once the share holds more than `cap` keys.
fn scan(
    cls: &mut Classifier,
    file: &File,
    start: u64,
    end: u64,
    share: &mut Share,
    cap: usize,
    hash: &impl Fn(&[u8]) -> u64,
) -> io::Result<bool> {
    let ptrs = &cls.spec().ptrs;
    let mut read_err = None;
    let mut over = false;
    // One piece per share as a rule: a batch of its own costs nothing.
    let batch = Some(&mut super::json::Batch::default());
    for_each_line_indexed(file, start, end, Some(ptrs), batch, |off, line, ix| {
        if over {
            return;
        }
        let d = &mut share.fold.digest;
        let class = match line {
            Line::Whole(b) => {
                d.line(off, b);
                match ix {
                    Some(ix) => cls.classify_indexed(b, ix),
                    None => cls.classify(b),
                }
            }
            Line::Long { len, verdict } => {
                if let Err(e) = d.line_in_file(file, off, len, off) {
                    read_err.get_or_insert(e);
                }
                match verdict {
                    Ok(spans) => cls
                        .classify_spans(&spans, |s| super::read_span(file, off, s))
                        .unwrap_or_else(|e| {
                            read_err.get_or_insert(e);
                            Class::Keyless
                        }),
                    Err(reason) => Class::Malformed(reason),
                }
            }
        };
        match class {
            Class::Keyed { delete } => {
                share.fold.keyed += 1;
                share.fold.deletes += u64::from(delete);
                share.hashes.push(hash(&cls.key));
                over = share.hashes.len() > cap;
            }
            Class::Malformed(_) => share.fold.bad_lines += 1,
            Class::Keyless => {}
        }
    })?;
    read_err.map_or(Ok(!over), Err)
}

/// Whether no value repeats within or across `sorted` (each sorted): each
/// run has no two equal neighbours, and no two runs share a value (one
/// linear walk per pair of runs; there are a few, one per thread).
fn distinct(sorted: &[&[u64]]) -> bool {
    if sorted.iter().any(|s| s.windows(2).any(|w| w[0] == w[1])) {
        return false;
    }
    for (i, a) in sorted.iter().enumerate() {
        for b in &sorted[i + 1..] {
            if share_a_value(a, b) {
                return false;
            }
        }
    }
    true
}

/// Whether two sorted runs have a value in common.
fn share_a_value(a: &[u64], b: &[u64]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn spec() -> FoldSpec {
        FoldSpec::new(&["/t".into(), "/id".into()], Some("/op"), &["DEL".into()]).unwrap()
    }

    fn file(text: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text).unwrap();
        f
    }

    #[test]
    fn repeats_are_found_within_and_across_runs() {
        assert!(distinct(&[&[1, 2, 5], &[3, 4], &[], &[6]]));
        assert!(!distinct(&[&[1, 2, 2]]));
        assert!(!distinct(&[&[1, 3, 5], &[2, 5]]));
        assert!(!distinct(&[&[1], &[2], &[1]]));
    }

    /// Distinct keys answer; the same key twice (in one share or across
    /// shares) and two keys with one hash do not: the engine must decide.
    #[test]
    fn only_distinct_key_hashes_give_an_answer() {
        let text: &[u8] =
            b"{\"t\":1,\"id\":1}\n{\"t\":1,\"id\":2,\"op\":\"DEL\"}\nnope\n{\"x\":1}\n{\"t\":1,\"id\":3}\n";
        let f = file(text);
        let n = text.len() as u64;
        for min_chunk in [1, 1 << 20] {
            let own = own_fold(&spec(), &f, n, 4, min_chunk, 1 << 20)
                .unwrap()
                .unwrap();
            assert_eq!(
                (own.keyed, own.deletes, own.bad_lines, own.keys_live()),
                (3, 1, 1, 2)
            );
            assert_eq!(own.digest.lines, 5);
            let same = |_: &[u8]| 7;
            assert!(
                own_fold_by(&spec(), &f, n, 4, min_chunk, 1 << 20, same)
                    .unwrap()
                    .is_none(),
                "a collision"
            );
        }
        let twice: &[u8] = b"{\"t\":1,\"id\":1}\n{\"x\":1}\n{\"id\":1,\"t\":1,\"v\":2}\n";
        for min_chunk in [1, 1 << 20] {
            let r = own_fold(&spec(), &file(twice), twice.len() as u64, 4, min_chunk, 100);
            assert!(r.unwrap().is_none(), "a key twice, shares of {min_chunk}");
        }
    }

    #[test]
    fn more_keys_than_allowed_give_no_answer() {
        let text: &[u8] = b"{\"t\":1,\"id\":1}\n{\"t\":1,\"id\":2}\n{\"t\":1,\"id\":3}\n";
        let n = text.len() as u64;
        let f = file(text);
        assert!(own_fold(&spec(), &f, n, 1, 1, 3).unwrap().is_some());
        assert!(own_fold(&spec(), &f, n, 1, 1, 2).unwrap().is_none());
    }
}
