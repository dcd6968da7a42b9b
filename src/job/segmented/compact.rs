//! Keyed compaction of sealed segments, in the manner of Kafka's log
//! cleaner.
//!
//! The inputs are a prefix of the sealed segments in seq order (each
//! validated, not open for writing, older than `min_compaction_lag`), taken
//! only when no earlier merge's inputs still wait for deletion. Starting at
//! the oldest retained segment is what makes dropping a tombstone safe: no
//! older write of its key is left anywhere. Their lines are folded together: for each key only
//! its last write survives, a delete survives as a tombstone until its
//! segment is older than `delete_retention`, and lines without the key stay
//! in place. The survivors are written, in their original order and byte
//! for byte, into groups of consecutive inputs no larger than the largest
//! input; each group's result takes the name of its first input.
//!
//! Replacement of one group `[A, B, C]` (crash reasoning):
//! 1. the merged bytes go to a temp file beside `A` (mode of `A`, mtime of
//!    the group's newest input), fsynced;
//! 2. the state records `B` and `C` as pending deletion *after* `A` has the
//!    temp file's inode, and the state file is replaced atomically;
//! 3. the temp file is renamed over `A` (atomic), the directory fsynced;
//! 4. `B` and `C` are deleted later (`prune::delete_due`), once
//!    `file_delete_delay` has passed and only if `A` still has that inode
//!    (or a newer merge of it), oldest first with a directory fsync after
//!    each.
//!
//! A crash before 3 leaves the inputs as they were (the temp file is removed
//! by the next run, the pending entries dropped because `A`'s inode is not
//! the temp's). After 3, `A` holds every surviving event of `B` and `C`, so
//! their later deletion loses nothing. What a reader that lists the
//! directory sees at any instant: the smallest name never changes (the
//! result keeps the first input's name, deletions go oldest first), every
//! event that the fold keeps is present at least once, and an event may be
//! present twice (in `A` and still in `B`/`C`) until the inputs are deleted.
//! Folding the files in seq order gives the same state at every instant:
//! a line left in `B` is either also in `A` or an older write of a key
//! whose latest write is in `C` or later, which a seq-order fold applies
//! after it. That is why the inputs go oldest first: `C` deleted while `B`
//! stays would let `B`'s older write win. The delay protects a reader that
//! read the old `A` before step 3 and opens `B` after it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use chrono::Utc;

use crate::config::pattern::Segment;
use crate::error::{Error, IoContext, Result};
use crate::fold::spans::{Reopened, fold_source, locate_in};
use crate::fold::{self, FoldSpec, Range};
use crate::io::durable;
use crate::io::rewrite::{Like, Rewrite};
pub use crate::job::record::report::CompactionStats;
use crate::job::segmented::state::{FileId, Pending, SegState};

fn open_checked(seg: &Segment) -> Result<(File, std::fs::Metadata)> {
    let f = File::open(&seg.path).ctx("open segment", &seg.path)?;
    let m = f.metadata().ctx("stat segment", &seg.path)?;
    if m.ino() != seg.ino || m.len() != seg.size {
        return Err(Error::Sync(crate::error::SyncError::SegmentChanged {
            path: seg.path.clone(),
            what: "changed while it was being compacted (a writer appended to or replaced a file it had rolled away from)",
        }));
    }
    Ok((f, m))
}

/// Compact `inputs` (see the module doc). Updates `state` (clean outputs,
/// pending inputs) and saves it to `state_dir` before each replacement.
pub fn compact(
    inputs: &[Segment],
    spec: &FoldSpec,
    delete_retention: Duration,
    now: SystemTime,
    state: &mut SegState,
    state_dir: &Path,
) -> Result<CompactionStats> {
    let mut st = CompactionStats {
        inputs: inputs.len() as u64,
        ..Default::default()
    };
    let keep = fold_inputs(inputs, spec, delete_retention, now, &mut st)?;
    let kept: Vec<u64> = keep
        .iter()
        .map(|k| k.iter().map(Range::len).sum())
        .collect();
    // Groups of consecutive inputs, each no larger than the largest input.
    let sizes: Vec<u64> = inputs.iter().map(|s| s.size).collect();
    // Pass 2: write and replace, group by group in seq order.
    for g in crate::plan::segmented::groups(&sizes, &kept) {
        let first = &inputs[g.start];
        if g.len() == 1 && kept[g.start] == first.size {
            // Nothing to drop: already clean.
            state.clean.insert(first.name.clone(), first.ino);
            st.bytes_out += first.size;
            continue;
        }
        replace_group(&inputs[g.clone()], &keep[g], now, state, state_dir, &mut st)?;
    }
    Ok(st)
}

/// Pass 1: fold the inputs in seq order with the fold engine (one span
/// per input, each opened only while read and checked to be the file that
/// was validated), keeping tombstones and leaving malformed lines whole.
/// Returns, per input, the ranges that survive: each key's last write
/// (a tombstone only while its input is younger than `delete_retention`),
/// keyless lines, and any malformed line (health keeps them out of
/// validated inputs; one it did not judge is kept in place).
fn fold_inputs(
    inputs: &[Segment],
    spec: &FoldSpec,
    delete_retention: Duration,
    now: SystemTime,
    st: &mut CompactionStats,
) -> Result<Vec<Vec<Range>>> {
    for seg in inputs {
        let (file, _) = open_checked(seg)?;
        st.bytes_in += seg.size;
        if fold::find_cut(&file, seg.size).ctx("read segment", &seg.path)? != seg.size {
            return Err(Error::Sync(crate::error::SyncError::SegmentChanged {
                path: seg.path.clone(),
                what: "ends in a torn line since it was checked",
            }));
        }
    }
    // The engine's errors are io errors: the typed one is kept aside.
    let failed = std::sync::Mutex::new(None);
    let src = Reopened {
        spans: inputs.iter().map(|s| (0, s.size)).collect(),
        open: |k: usize| {
            open_checked(&inputs[k]).map(|(f, _)| f).map_err(|e| {
                let io = std::io::Error::other(e.to_string());
                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                io
            })
        },
    };
    let opts = fold::Opts {
        tombs: true,
        salvage: false,
        ..fold::Opts::compaction(crate::fold::scan_threads(), 8 << 20)
    };
    let dir = inputs
        .first()
        .map_or(Path::new("."), |s| durable::parent_dir(&s.path));
    let plan = fold_source(spec, &src, opts).map_err(|e| {
        let typed = failed.lock().unwrap_or_else(|p| p.into_inner()).take();
        typed.unwrap_or_else(|| Error::io("read segments in", dir, e))
    })?;
    st.lines_in += plan.lines_in;
    st.keys_live += plan.keys_live;
    st.superseded += plan.keyed_lines - plan.keys_live - plan.tombs.len() as u64;
    let mut keep: Vec<Vec<Range>> = vec![Vec::new(); inputs.len()];
    let bad: Vec<Range> = plan.bad.iter().map(|b| b.range).collect();
    for (k, r) in locate_in(&src.spans, &plan.keep)
        .into_iter()
        .chain(locate_in(&src.spans, &bad))
    {
        keep[k].push(r);
    }
    for (k, r) in locate_in(&src.spans, &plan.tombs) {
        let age = now.duration_since(inputs[k].mtime).unwrap_or_default();
        if age > delete_retention {
            st.tombstones_dropped += 1;
        } else {
            st.tombstones_kept += 1;
            keep[k].push(r);
        }
    }
    st.lines_out += plan.keys_live + plan.keyless_kept + plan.bad_lines + st.tombstones_kept;
    for k in &mut keep {
        k.sort_unstable();
        k.dedup_by(|next, prev| {
            if prev.end == next.start {
                prev.end = next.end;
                true
            } else {
                false
            }
        });
    }
    Ok(keep)
}

/// Replace one group `[A, B, C]` (module doc, steps 1-3): the merged
/// bytes to a temp file beside `A`, `B` and `C` pending deletion in the
/// saved state, then the rename over `A`.
fn replace_group(
    group: &[Segment],
    keep: &[Vec<Range>],
    now: SystemTime,
    state: &mut SegState,
    state_dir: &Path,
    st: &mut CompactionStats,
) -> Result<()> {
    let first = &group[0];
    let (first_file, first_meta) = open_checked(first)?;
    let mut tmp = Rewrite::beside(&first.path, Like::File(&first_file, &first_meta))?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.file_mut());
        for (input, keep) in group.iter().zip(keep) {
            let (file, _) = open_checked(input)?;
            st.bytes_out +=
                fold::copy_ranges(&file, keep, &mut w).ctx("copy segment", &input.path)?;
        }
        w.flush().ctx("write", &first.path)?;
    }
    let newest = group.iter().map(|s| s.mtime).max().unwrap_or(now);
    tmp.file()
        .set_modified(newest)
        .ctx("set mtime of", tmp.path())?;
    tmp.sync().ctx("fsync", tmp.path())?;
    let new = tmp.file().metadata().ctx("stat", tmp.path())?;
    let since = Utc::now();
    let group_names: Vec<&str> = group.iter().map(|s| s.name.as_str()).collect();
    // Entries waiting on a file of this group now wait on its result,
    // which holds all of that file's surviving events.
    for p in &mut state.pending {
        if group_names.contains(&p.after.0.as_str()) {
            p.after = (first.name.clone(), new.ino());
        }
    }
    for s in &group[1..] {
        state.pending.push(Pending {
            name: s.name.clone(),
            ino: s.ino,
            since,
            after: (first.name.clone(), new.ino()),
        });
        state.clean.remove(&s.name);
        state.validated.remove(&s.name);
    }
    state.clean.insert(first.name.clone(), new.ino());
    state.validated.insert(
        first.name.clone(),
        FileId {
            ino: new.ino(),
            size: new.len(),
        },
    );
    state.save(state_dir)?;
    crate::failpoint::failpoint!(SegmentBeforeMergeRename);
    tmp.persist()?;
    st.outputs.push(first.path.clone());
    st.replaced
        .extend(group[1..].iter().map(|s| s.path.clone()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::pattern::{Pattern, list};
    use crate::job::segmented::prune::delete_due;

    fn spec() -> FoldSpec {
        FoldSpec::new(&["/k".into()], Some("/op"), &["DEL".into()]).unwrap()
    }

    /// Segments of the given lines, named by seq 1, 11, 21, ...; the last
    /// one is the active segment and is left out of the inputs.
    fn setup(files: &[&[&str]]) -> (tempfile::TempDir, Pattern, Vec<Segment>) {
        let d = tempfile::tempdir().unwrap();
        let p = Pattern::parse(&d.path().join("e-{seq}.jsonl")).unwrap();
        for (i, lines) in files.iter().enumerate() {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(d.path().join(p.name_for(1 + 10 * i as u64)), text).unwrap();
        }
        let l = list(&p, "s").unwrap();
        let inputs = l.sealed().to_vec();
        (d, p, inputs)
    }

    #[test]
    fn latest_write_per_key_survives_under_the_first_name_and_tombstones_age_out() {
        let (d, p, inputs) = setup(&[
            &[
                r#"{"k":1,"v":1,"pad":"a write that a later one supersedes"}"#,
                r#"{"k":2,"v":1}"#,
                r#"{"x":"keyless"}"#,
            ],
            &[r#"{"k":1,"v":2}"#, r#"{"k":2,"op":"DEL"}"#],
            &[r#"{"k":3,"v":1}"#],
        ]);
        let state_dir = d.path().join("state");
        let mut st = SegState::default();
        // Within delete_retention: the tombstone stays.
        let c = compact(
            &inputs,
            &spec(),
            Duration::from_secs(3600),
            SystemTime::now(),
            &mut st,
            &state_dir,
        )
        .unwrap();
        assert_eq!(
            (c.keys_live, c.tombstones_kept, c.tombstones_dropped),
            (1, 1, 0)
        );
        assert_eq!(c.outputs, [d.path().join(p.name_for(1))]);
        let merged = std::fs::read_to_string(d.path().join(p.name_for(1))).unwrap();
        assert_eq!(
            merged,
            "{\"x\":\"keyless\"}\n{\"k\":1,\"v\":2}\n{\"k\":2,\"op\":\"DEL\"}\n"
        );
        // The second input waits for deletion behind the merged file.
        assert_eq!(st.pending.len(), 1);
        assert_eq!(st.pending[0].name, p.name_for(11));
        let deleted = delete_due(
            d.path(),
            &|n| p.seq_of(n),
            &mut st,
            Duration::ZERO,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(deleted, [d.path().join(p.name_for(11))]);

        // Past delete_retention: the tombstone goes too.
        let l = list(&p, "s").unwrap();
        let inputs = l.sealed().to_vec();
        let later = SystemTime::now() + Duration::from_secs(7200);
        let c = compact(
            &inputs,
            &spec(),
            Duration::from_secs(3600),
            later,
            &mut st,
            &state_dir,
        )
        .unwrap();
        assert_eq!(
            (c.keys_live, c.tombstones_kept, c.tombstones_dropped),
            (1, 0, 1)
        );
        let merged = std::fs::read_to_string(d.path().join(p.name_for(1))).unwrap();
        assert_eq!(merged, "{\"x\":\"keyless\"}\n{\"k\":1,\"v\":2}\n");
    }

    #[test]
    fn pending_inputs_go_only_after_their_merge_and_oldest_first() {
        let (d, p, inputs) = setup(&[
            &[r#"{"k":1,"v":1}"#],
            &[r#"{"k":1,"v":2}"#],
            &[r#"{"k":1,"v":3}"#],
            &[r#"{"k":9}"#],
        ]);
        let mut st = SegState::default();
        compact(
            &inputs,
            &spec(),
            Duration::ZERO,
            SystemTime::now(),
            &mut st,
            &d.path().join("state"),
        )
        .unwrap();
        assert_eq!(st.pending.len(), 2);
        // Not due yet: nothing goes.
        let none = delete_due(
            d.path(),
            &|n| p.seq_of(n),
            &mut st,
            Duration::from_secs(60),
            Utc::now(),
        )
        .unwrap();
        assert!(none.is_empty());
        // A merge that never happened (the first input's inode is not the
        // merged file's): the entries are dropped, the inputs stay.
        let mut undone = st.clone();
        for x in &mut undone.pending {
            x.after.1 += 1;
        }
        assert!(
            delete_due(
                d.path(),
                &|n| p.seq_of(n),
                &mut undone,
                Duration::ZERO,
                Utc::now()
            )
            .unwrap()
            .is_empty()
        );
        assert!(undone.pending.is_empty());
        let gone = delete_due(
            d.path(),
            &|n| p.seq_of(n),
            &mut st,
            Duration::ZERO,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            gone,
            [d.path().join(p.name_for(11)), d.path().join(p.name_for(21))]
        );
    }
}
