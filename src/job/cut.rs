//! The prelude shared by compaction and `replay`: open the live log, cut it
//! at its last complete line, lay out the logical stream (with late writes
//! at the swap point, see [`late`]) and fold it.
//!
//! Read-only: nothing here changes a file, so a crash at any point of it
//! changes nothing (G2).
//!
//! Invariant: the live log's size is read *before* the watched rotated
//! files' ends, so every late line of a writer that had already moved on to
//! the live log is inside the fold (see `late::open_watched`).

use std::fs::{self, File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::path::PathBuf;

use crate::config::StoreConfig;
use crate::error::{Error, IoContext, Result};
use crate::fold::spans::{self, FileSpan};
use crate::fold::{self, FoldSpec, Plan};
use crate::io::durable;
use crate::job::late::{self, LateWrites};

/// A cut and folded live log.
pub struct Cut {
    pub log: PathBuf,
    pub file: File,
    pub meta: Metadata,
    /// The live log's size when it was cut.
    pub size: u64,
    /// Just after its last complete line.
    pub cut: u64,
    /// Where the late writes fold in (a line start in `[0, cut]`: the start
    /// of the line holding the recorded swap point).
    pub swap_point: u64,
    /// Watched rotated files, with their uncarried complete lines.
    pub late: Vec<late::Open>,
    pub plan: Plan,
    /// A fingerprint of the bytes before the cut (see [`fingerprint`]).
    pub fingerprint: u64,
}

impl Cut {
    /// Open, cut and fold the store's live log; with `state`, the late
    /// writes it records are folded in at the swap point.
    pub fn take(store: &StoreConfig, state: Option<&LateWrites>) -> Result<Cut> {
        Cut::take_presized(store, state, 0)
    }

    /// [`Cut::take`], the fold's key maps starting with room for `keys`
    /// keys each (what the last fold of this log held, `Plan::map_keys`;
    /// capped by the bytes to read, at 8 a keyed line at least).
    pub fn take_presized(
        store: &StoreConfig,
        state: Option<&LateWrites>,
        keys: u64,
    ) -> Result<Cut> {
        let log = resolve_log(store.path())?;
        let file = crate::io::safe::open_beside(&log, crate::io::safe::Access::Read)
            .map_err(|e| crate::io::safe::access_hint(&log, e))
            .ctx("open log", &log)?;
        let meta = file.metadata().ctx("stat log", &log)?;
        let size = meta.len();
        let cut = fold::find_cut(&file, size).ctx("read log", &log)?;
        let late = match state {
            Some(s) => late::open_watched(s)?,
            None => Vec::new(),
        };
        let point = state
            .and_then(|s| s.live.as_ref())
            .filter(|g| g.dev == meta.dev() && g.ino == meta.ino())
            .map_or(cut, |g| g.swap_point.min(cut));
        // A swap point inside a line (the new file ended in a dead writer's
        // torn line, completed after the swap): that line was written after
        // the swap, so the late writes go before it.
        let swap_point = fold::find_cut(&file, point).ctx("read log", &log)?;
        let fingerprint = fold::fingerprint(&file, cut).ctx("read log", &log)?;
        let mut c = Cut {
            log,
            file,
            meta,
            size,
            cut,
            swap_point,
            late,
            plan: Plan::default(),
            fingerprint,
        };
        let spec = FoldSpec::for_store(store)?;
        let bytes: u64 = c.spans().iter().map(FileSpan::len).sum();
        let opts = fold::Opts {
            presize: keys.min(bytes / 8),
            ..fold::Opts::compaction(fold::scan_threads(), 8 << 20)
        };
        c.plan = spans::fold_source(&spec, c.spans().as_slice(), opts).ctx("read log", &c.log)?;
        Ok(c)
    }

    /// The logical stream: `live[0, P) ++ late… ++ live[P, cut)`.
    pub fn spans(&self) -> Vec<FileSpan<'_>> {
        if self.late_bytes() == 0 {
            return vec![FileSpan {
                file: &self.file,
                path: &self.log,
                start: 0,
                end: self.cut,
            }];
        }
        let mut v = vec![FileSpan {
            file: &self.file,
            path: &self.log,
            start: 0,
            end: self.swap_point,
        }];
        v.extend(
            self.late
                .iter()
                .filter(|o| o.end > o.watch.carried)
                .map(|o| FileSpan {
                    file: &o.file,
                    path: &o.watch.rotated,
                    start: o.watch.carried,
                    end: o.end,
                }),
        );
        v.push(FileSpan {
            file: &self.file,
            path: &self.log,
            start: self.swap_point,
            end: self.cut,
        });
        v.retain(|s| !s.is_empty());
        v
    }

    /// Bytes of late writes inside the fold.
    pub fn late_bytes(&self) -> u64 {
        self.late.iter().map(|o| o.end - o.watch.carried).sum()
    }
}

/// The file to operate on: the log itself, or the file a symlinked log points
/// to (the swap happens in the target's directory, so the link stays valid).
///
/// The link is resolved once, here. A link that another user made to a
/// file that is not theirs is refused (it could point a run at any file
/// the running user may read), and run by root, the target's directory
/// gets the same check as the log's (G8).
pub fn resolve_log(log: &Path) -> Result<PathBuf> {
    let link = fs::symlink_metadata(log).ctx("stat log", log)?;
    let real = if link.file_type().is_symlink() {
        fs::canonicalize(log)
            .map_err(|e| dangling_hint(log, e))
            .ctx("follow symlinked log", log)?
    } else {
        log.to_path_buf()
    };
    let meta = fs::metadata(&real).ctx("stat log", &real)?;
    if !meta.is_file() {
        return Err(Error::Sync(crate::error::SyncError::NotAFile {
            path: real,
            is_dir: meta.is_dir(),
        }));
    }
    if link.file_type().is_symlink() {
        check_link(log, &link, &real, &meta)?;
    }
    Ok(real)
}

/// A symlinked log is trusted if the link's owner is root, the running
/// user or the target's owner, and (run by root) no other user can write
/// the target's directory.
fn check_link(log: &Path, link: &fs::Metadata, real: &Path, meta: &fs::Metadata) -> Result<()> {
    use crate::io::safe;
    if ![0, safe::euid(), meta.uid()].contains(&link.uid()) {
        return Err(Error::Unsafe {
            path: log.to_path_buf(),
            msg: format!(
                "is a symlink made by {} to {}, a file of {}: a link another user planted is never followed; nothing was changed: remove the link, or point the store's `log` at the file itself",
                safe::user_name(link.uid()),
                real.display(),
                safe::user_name(meta.uid())
            ),
        });
    }
    let dir = durable::parent_dir(real);
    let dmeta = fs::metadata(dir).ctx("stat directory", dir)?;
    match safe::untrusted_dir(&dmeta) {
        Some(why) => Err(Error::Unsafe {
            path: dir.to_path_buf(),
            msg: safe::root_refusal(&why, &dmeta),
        }),
        None => Ok(()),
    }
}

/// Say what to do about a symlinked log whose target is missing.
fn dangling_hint(log: &Path, e: std::io::Error) -> std::io::Error {
    if e.kind() != std::io::ErrorKind::NotFound {
        return e;
    }
    let target = fs::read_link(log).map_or_else(|_| "?".into(), |t| t.display().to_string());
    std::io::Error::new(
        e.kind(),
        format!(
            "{e}: the link points at {target}, which does not exist; create it (or its directory), fix the link (ln -sfn TARGET {}), or point the store's `log` at the real file",
            log.display()
        ),
    )
}
