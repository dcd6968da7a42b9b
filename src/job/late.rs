//! Late writes: bytes a writer appended to the old inode after a swap.
//!
//! After a rename-swap, a writer that keeps its fd (class A until it
//! notices, class B for ever, class C for the event in flight) goes on
//! appending to the old inode, which is now a rotated file. Those lines are
//! older than anything that writer later appends to the new live log, and
//! newer than what it wrote before the swap. So they belong at the *swap
//! point*: the offset `P` of the live log where that swap's new file ended.
//! Each compaction folds the logical stream
//! `live[0, P) ++ R₁[c₁, e₁) ++ … ++ Rₙ[cₙ, eₙ) ++ live[P, cut)`
//! (oldest rotated file first; `cᵢ` how far `Rᵢ` was carried, `eᵢ` its last
//! complete line when the run looked). Under the writers' lock, just before
//! the swap, each `Rᵢ`'s complete lines written since are copied between the
//! snapshot and the tail ([`carry_at_swap`]). Every writer only moves
//! forward through generations (old inode → new one), so each writer's lines
//! keep its write order.
//!
//! State: `<state>/stores/<name>/late-writes.json` holds the *committed*
//! [`LateWrites`] and, during a swap, the *prepared* one, which names the new
//! live file's inode. Crash reasoning (G2):
//! - the prepared state is written and fsynced (atomic replace) *before* the
//!   rename; after the rename and the directory fsync the run commits it;
//! - on load, the prepared state wins iff the live log is the inode it
//!   names (the swap happened), else the committed one (it did not); so the
//!   carried offsets advance exactly when the carried lines became durable in
//!   the live log: no line is carried twice, none is dropped.
//!
//! The old `rotated-watch.json` (a list of `{rotated, size}`) is still read
//! when no `late-writes.json` exists.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::fold::{self, Range};
use crate::io::durable;

/// One rotated file that may receive late writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    pub rotated: PathBuf,
    /// How far its bytes are in the live log (folded or copied). Bytes past
    /// this are late writes not carried yet.
    #[serde(alias = "size")]
    pub carried: u64,
    /// The inode, so a file replaced under the same name is not mistaken
    /// for it (0: unknown, from the old watch file).
    #[serde(default)]
    pub dev: u64,
    #[serde(default)]
    pub ino: u64,
    /// A fingerprint of its bytes below `carried` (`fold::fingerprint`; 0:
    /// unknown), so a rewrite in place of the carried bytes is noticed.
    #[serde(default)]
    pub print: u64,
}

/// The fingerprint a [`Watch`] keeps of `file`'s bytes below `carried` (0
/// when they cannot be read: the check is then skipped, never failed).
pub fn stamp(file: &File, carried: u64) -> u64 {
    if carried == 0 {
        return 0;
    }
    crate::fold::fingerprint(file, carried).unwrap_or(0)
}

/// The watched files that can no longer be trusted to hold every late line
/// (issue 16 A.3): one replaced by another inode under its name, one shorter
/// than what was carried (copytruncate), or one whose carried bytes changed.
/// Lines a writer appended after such a change may be lost, so the run must
/// fail loudly rather than unwatch the file. A file that is gone is not
/// listed (it was pruned, or removed by the user).
pub fn broken_watches(state: &LateWrites) -> Vec<(Watch, String)> {
    let mut out = Vec::new();
    for w in &state.watches {
        let Ok(file) = File::open(&w.rotated) else {
            continue;
        };
        let Ok(meta) = file.metadata() else { continue };
        let what = if w.ino != 0 && !same_inode(&meta, w.dev, w.ino) {
            "another file was put under its name".to_string()
        } else if meta.len() < w.carried {
            format!(
                "it shrank from {} to {} bytes (emptied or truncated by another program, e.g. logrotate's copytruncate)",
                w.carried,
                meta.len()
            )
        } else if w.print != 0 && stamp(&file, w.carried) != w.print {
            format!(
                "its first {} bytes, already carried into the log, were rewritten by another program",
                w.carried
            )
        } else {
            continue;
        };
        out.push((w.clone(), what));
    }
    out
}

/// The live log generation the late writes are placed into.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub dev: u64,
    pub ino: u64,
    /// The new file's length at its swap: late writes fold in here.
    pub swap_point: u64,
}

/// The late-write bookkeeping of one store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateWrites {
    pub live: Option<Generation>,
    /// Oldest rotation first.
    pub watches: Vec<Watch>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    committed: LateWrites,
    #[serde(default)]
    prepared: Option<LateWrites>,
    #[serde(default)]
    carrying: Option<Carrying>,
}

/// A carry of the carry window in flight (`carry.rs`): written, with the
/// committed state already showing `rotated` carried to `to`, *before* the
/// bytes `[from, to)` are appended to the live log at `live_at`. On load the
/// append is checked: if the live log holds those bytes there, `to` stands,
/// else the watch goes back to `from` (the next fold carries them), so a
/// kill between the two steps neither loses nor repeats a line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carrying {
    pub rotated: PathBuf,
    pub from: u64,
    pub to: u64,
    pub live_at: u64,
    /// The live generation's swap point before this carry (restored with
    /// `from` when the append did not land).
    #[serde(default)]
    pub point: u64,
}

/// Where a store's late-write state is kept.
pub fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join("late-writes.json")
}

/// The file name used before `late-writes.json` (read for compatibility).
pub fn legacy_path(state_dir: &Path) -> PathBuf {
    state_dir.join("rotated-watch.json")
}

fn same_inode(m: &std::fs::Metadata, dev: u64, ino: u64) -> bool {
    m.dev() == dev && m.ino() == ino
}

/// The state that holds for the live log `live` now: the prepared one if
/// its swap happened, else the committed one. The flag says a prepared
/// state was left (by a killed run): the caller commits the resolved state,
/// so a stale prepared one never outlives the next run (an inode number can
/// be reused).
pub fn load(state_dir: &Path, log: &Path, live: &std::fs::Metadata) -> (LateWrites, bool) {
    if let Some(sf) = std::fs::read(state_path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice::<StateFile>(&b).ok())
    {
        if let Some(cr) = &sf.carrying {
            let mut state = sf.committed.clone();
            if !carry_landed(log, cr)
                && let Some(w) = state
                    .watches
                    .iter_mut()
                    .find(|w| w.rotated == cr.rotated && w.carried == cr.to)
            {
                w.carried = cr.from;
                w.print = File::open(&w.rotated).map_or(0, |f| stamp(&f, cr.from));
                if let Some(g) = state.live.as_mut() {
                    g.swap_point = cr.point;
                }
            }
            return (state, true);
        }
        let left = sf.prepared.is_some();
        let won = sf
            .prepared
            .as_ref()
            .and_then(|p| p.live.as_ref())
            .is_some_and(|g| same_inode(live, g.dev, g.ino));
        let state = match sf.prepared {
            Some(p) if won => after_first_carry(log, p),
            _ => sf.committed,
        };
        return (state, left);
    }
    let watches: Vec<Watch> = std::fs::read(legacy_path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    (
        LateWrites {
            live: None,
            watches,
        },
        false,
    )
}

/// A prepared state that won, with the swap's first carry (`carry::first`,
/// appended right after the rename and journalled only after the
/// directory fsync) accounted for: the live log's bytes from the swap point
/// that repeat a watched file's uncarried bytes, up to a line end, are that
/// carry. Without this a kill between the two would place those lines, and
/// the old inode's later ones, before their carried copies.
fn after_first_carry(log: &Path, mut state: LateWrites) -> LateWrites {
    use std::os::unix::fs::FileExt;
    let Some(g) = state.live.as_mut() else {
        return state;
    };
    let Ok(live) = File::open(log) else {
        return state;
    };
    for w in state.watches.iter_mut() {
        let Ok(rot) = File::open(&w.rotated) else {
            continue;
        };
        let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let (Ok(na), Ok(nb)) = (
            live.read_at(&mut a, g.swap_point),
            rot.read_at(&mut b, w.carried),
        ) else {
            continue;
        };
        let same = a[..na]
            .iter()
            .zip(&b[..nb])
            .take_while(|(x, y)| x == y)
            .count();
        let Some(end) = a[..same].iter().rposition(|&c| c == b'\n') else {
            continue;
        };
        let n = end as u64 + 1;
        w.carried += n;
        w.print = stamp(&rot, w.carried);
        g.swap_point += n;
        break;
    }
    state
}

/// Whether the live log holds the bytes of `cr` at `cr.live_at`.
fn carry_landed(log: &Path, cr: &Carrying) -> bool {
    use std::os::unix::fs::FileExt;
    let len = (cr.to - cr.from) as usize;
    let (Ok(live), Ok(rot)) = (File::open(log), File::open(&cr.rotated)) else {
        return false;
    };
    let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
    live.read_exact_at(&mut a, cr.live_at).is_ok()
        && rot.read_exact_at(&mut b, cr.from).is_ok()
        && a == b
}

/// Record a carry before its append (see [`Carrying`]): `state` already
/// shows the watch carried to `cr.to`. Durable (file fsync, rename,
/// directory fsync) before the append, and the carry's append is
/// fdatasynced before the next journal (`carry.rs`): after a kill or a
/// power cut, at most the carry this journal names is in doubt, and the
/// check on load settles it. The run ends with an fsynced [`commit`].
pub fn journal_carry(state_dir: &Path, state: &LateWrites, cr: &Carrying) -> Result<()> {
    #[derive(Serialize)]
    struct StateFile<'a> {
        committed: &'a LateWrites,
        prepared: Option<&'a LateWrites>,
        carrying: &'a Carrying,
    }
    let path = state_path(state_dir);
    let json = serde_json::to_vec(&StateFile {
        committed: state,
        prepared: None,
        carrying: cr,
    })
    .map_err(|source| crate::Error::Encode {
        what: "the late-write state",
        path: path.clone(),
        source,
    })?;
    durable::atomic_write(&path, &json, 0o600)
}

/// Write `committed` and `prepared` (atomic replace, fsynced).
fn write(state_dir: &Path, committed: &LateWrites, prepared: Option<&LateWrites>) -> Result<()> {
    write_full(state_dir, committed, prepared, None)
}

fn write_full(
    state_dir: &Path,
    committed: &LateWrites,
    prepared: Option<&LateWrites>,
    carrying: Option<&Carrying>,
) -> Result<()> {
    #[derive(Serialize)]
    struct StateFile<'a> {
        committed: &'a LateWrites,
        prepared: Option<&'a LateWrites>,
        carrying: Option<&'a Carrying>,
    }
    durable::ensure_private_dir(state_dir)?;
    let path = state_path(state_dir);
    // A rotated file's name that is not UTF-8 cannot be said in JSON: an
    // error for this run, not a panic.
    let json = serde_json::to_vec_pretty(&StateFile {
        committed,
        prepared,
        carrying,
    })
    .map_err(|source| crate::Error::Encode {
        what: "the late-write state",
        path: path.clone(),
        source,
    })?;
    durable::atomic_write(&path, &json, 0o600)
}

/// Record the state a swap is about to make true, before the rename.
pub fn prepare(state_dir: &Path, committed: &LateWrites, next: &LateWrites) -> Result<()> {
    crate::failpoint::fail_io!(LatePrepare).ctx("write", state_path(state_dir))?;
    write(state_dir, committed, Some(next))
}

/// Make `state` the committed one (after a swap, or after pruning).
pub fn commit(state_dir: &Path, state: &LateWrites) -> Result<()> {
    write(state_dir, state, None)
}

/// A watched rotated file opened for this run, with the complete lines not
/// carried yet: `[carried, end)`.
pub struct Open {
    pub watch: Watch,
    pub file: File,
    /// Just after its last complete line when the run looked.
    pub end: u64,
}

/// Open the watched files that still exist (and are the inode watched),
/// and find their uncarried complete lines. Call after the live log's size
/// was read: a writer that wrote to the live log before that had finished
/// with its rotated file, so all its late lines are before `end`.
pub fn open_watched(state: &LateWrites) -> Result<Vec<Open>> {
    let mut out = Vec::new();
    for w in &state.watches {
        let Ok(file) = crate::io::safe::open_beside(&w.rotated, crate::io::safe::Access::Read)
        else {
            continue; // pruned or moved away by someone else
        };
        let meta = file.metadata().ctx("stat", &w.rotated)?;
        if w.ino != 0 && !same_inode(&meta, w.dev, w.ino) {
            continue;
        }
        let size = meta.len();
        let end = if size > w.carried {
            fold::find_cut(&file, size).ctx("read late writes in", &w.rotated)?
        } else {
            w.carried
        };
        let mut watch = w.clone();
        (watch.dev, watch.ino) = (meta.dev(), meta.ino());
        if watch.print == 0 {
            watch.print = stamp(&file, watch.carried);
        }
        out.push(Open {
            watch,
            file,
            end: end.max(w.carried),
        });
    }
    Ok(out)
}

/// Copy the complete lines appended to each watched file since it was
/// opened for the fold (`[o.end, last \n)`) to `dst`, in order, streaming.
/// Called under the writers' lock after the live log's tail end was read,
/// for the same reason as [`open_watched`]. Returns the bytes copied and
/// advances each `o.end`.
pub fn carry_at_swap(opened: &mut [Open], dst: &mut impl Write) -> Result<u64> {
    let mut total = 0;
    for o in opened.iter_mut() {
        let size = o.file.metadata().ctx("stat", &o.watch.rotated)?.len();
        if size <= o.end {
            continue;
        }
        let last = fold::find_cut(&o.file, size).ctx("read late writes in", &o.watch.rotated)?;
        if last <= o.end {
            continue;
        }
        let r = Range {
            start: o.end,
            end: last,
        };
        total +=
            fold::copy_ranges(&o.file, &[r], dst).ctx("copy late writes from", &o.watch.rotated)?;
        o.end = last;
    }
    Ok(total)
}

/// Lines carried, for the record.
pub fn count_lines(opened: &[Open]) -> Result<u64> {
    let mut n = 0;
    for o in opened {
        if o.end > o.watch.carried {
            fold::count_lines_in(
                &o.file,
                fold::Range {
                    start: o.watch.carried,
                    end: o.end,
                },
            )
            .map(|c| n += c)
            .ctx("read late writes in", &o.watch.rotated)?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(swap_point: u64, m: &std::fs::Metadata) -> LateWrites {
        LateWrites {
            live: Some(Generation {
                dev: m.dev(),
                ino: m.ino(),
                swap_point,
            }),
            watches: vec![],
        }
    }

    /// A killed swap leaves a prepared state: it holds iff the live log is
    /// the inode it names, and either way it is reported as left over.
    #[test]
    fn the_prepared_state_holds_only_if_its_swap_happened() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("old"), dir.path().join("new"));
        std::fs::write(&old, b"").unwrap();
        std::fs::write(&new, b"").unwrap();
        let (mo, mn) = (
            std::fs::metadata(&old).unwrap(),
            std::fs::metadata(&new).unwrap(),
        );
        let committed = state(1, &mo);
        prepare(dir.path(), &committed, &state(2, &mn)).unwrap();
        assert_eq!(load(dir.path(), &new, &mn), (state(2, &mn), true));
        assert_eq!(load(dir.path(), &old, &mo), (committed.clone(), true));
        commit(dir.path(), &committed).unwrap();
        assert_eq!(load(dir.path(), &new, &mn), (committed, false));
    }
}
