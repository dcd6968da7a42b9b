//! Named crash points for the fault-tolerance tests.
//!
//! Compiled in only with the `failpoints` feature; without it the macros
//! expand to nothing (but still check that the point exists). When the
//! environment variable `LOGKEEPER_FAILPOINT` names a point, the process
//! kills itself with SIGKILL there, exactly as a `kill -9` or a power cut
//! would stop it: no destructors, no cleanup. Every point is one variant of
//! [`Failpoint`], listed once below with its spelling in the environment;
//! [`Failpoint::ALL`] is what the crash tests loop over.

/// What a failpoint does when `LOGKEEPER_FAILPOINT` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `LOGKEEPER_FAILPOINT=name` kills the run there (SIGKILL);
    /// `LOGKEEPER_PAUSE=name` pauses it there (see `hit`).
    Crash,
    /// `LOGKEEPER_FAILPOINT=name:ERRNO` (e.g. `snapshot-write:ENOSPC`)
    /// fails the I/O there with that errno.
    Io,
    /// `LOGKEEPER_FAILPOINT=name` damages the bytes written there, as a bad
    /// disk would.
    Corrupt,
}

/// Which run a crash point belongs to, so that each crash test loops over
/// the points its scenario passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipeline {
    /// A single-log run that swaps in a new file (and records it).
    Log,
    /// A single-log run that rewrites the log in place.
    InPlace,
    /// A single-log run carrying a lock-less writer's late lines.
    Carry,
    /// A segmented store's run.
    Segmented,
    /// Steps that both a single-log and a segmented run pass.
    Shared,
    /// Taking the store lock when it must be replaced (a lock file this
    /// user cannot write, left by another user): only such a run passes.
    Lock,
}

macro_rules! failpoints {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal, $kind:ident, $pipeline:ident;)*) => {
        /// A named point in a run where a test can kill, pause or fail it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Failpoint {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Failpoint {
            /// Every failpoint, in pipeline order.
            pub const ALL: &[Failpoint] = &[$(Failpoint::$variant),*];

            /// The spelling in `LOGKEEPER_FAILPOINT` / `LOGKEEPER_PAUSE`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Failpoint::$variant => $name,)*
                }
            }

            /// What the point does when named.
            pub fn kind(self) -> Kind {
                match self {
                    $(Failpoint::$variant => Kind::$kind,)*
                }
            }

            /// Which run passes the point.
            pub fn pipeline(self) -> Pipeline {
                match self {
                    $(Failpoint::$variant => Pipeline::$pipeline,)*
                }
            }
        }
    };
}

failpoints! {
    /// Before the run recovers what a crashed run left (`job/recover.rs`).
    BeforeRecover = "before-recover", Crash, Log;
    /// Before malformed lines are appended to the quarantine file.
    BeforeQuarantineWrite = "before-quarantine-write", Crash, Shared;
    /// The quarantine write itself.
    QuarantineWrite = "quarantine-write", Io, Shared;
    /// Between two quarantined lines.
    MidQuarantineWrite = "mid-quarantine-write", Crash, Shared;
    /// `statvfs` reports no total size (an unknown filesystem).
    StatvfsNoTotal = "statvfs-no-total", Io, Log;
    /// The free-space check before the snapshot.
    FreeSpace = "free-space", Io, Log;
    /// Writing the snapshot (the new log's temp file).
    SnapshotWrite = "snapshot-write", Io, Log;
    /// After the snapshot is written, before its fsync.
    AfterSnapshotWrite = "after-snapshot-write", Crash, Log;
    /// The snapshot's fsync.
    SnapshotFsync = "snapshot-fsync", Io, Log;
    /// After the snapshot's fsync.
    AfterSnapshotFsync = "after-snapshot-fsync", Crash, Log;
    /// The snapshot is damaged after it is written, before it is verified.
    CorruptSnapshot = "corrupt-snapshot", Corrupt, Log;
    /// Before the writers' lock is taken for the tail copy and swap.
    BeforeSwapLock = "before-swap-lock", Crash, Log;
    /// Writing the late-write state the swap is about to make true.
    LatePrepare = "late-prepare", Io, Log;
    /// After the late-write state is prepared, before the swap.
    AfterLatePrepare = "after-late-prepare", Crash, Log;
    /// After the old log is linked under its rotated name.
    AfterRotateLink = "after-rotate-link", Crash, Log;
    /// The rename (or exchange) of the new log over the old.
    Rename = "rename", Io, Log;
    /// After the rename, before the directory fsync.
    AfterRename = "after-rename", Crash, Log;
    /// Unlinking the old log's temp name after an exchange.
    UnlinkOldTemp = "unlink-old-temp", Io, Log;
    /// The directory fsync after the swap.
    DirFsyncAfterSwap = "dir-fsync-after-swap", Io, Log;
    /// After the directory fsync.
    AfterDirFsync = "after-dir-fsync", Crash, Log;
    /// Between two rotated files being pruned.
    MidPrune = "mid-prune", Crash, Log;
    /// Before an atomic file write (records, state) renames its temp file.
    AtomicWriteBeforeRename = "atomic-write-before-rename", Crash, Shared;
    /// Before the run is recorded.
    BeforeRecord = "before-record", Crash, Shared;
    /// In place: before the fold is appended to the log.
    BeforeInplaceAppend = "before-inplace-append", Crash, InPlace;
    /// In place: the append of the fold.
    InplaceAppend = "inplace-append", Io, InPlace;
    /// In place: after the fold is appended.
    AfterInplaceAppend = "after-inplace-append", Crash, InPlace;
    /// In place: after the fold is copied down to the start.
    AfterInplaceCopyDown = "after-inplace-copy-down", Crash, InPlace;
    /// In place: after the log is truncated to the fold.
    AfterInplaceTruncate = "after-inplace-truncate", Crash, InPlace;
    /// Carry: after a carry's journal entry, before its append.
    AfterCarryJournal = "after-carry-journal", Crash, Carry;
    /// Carry: after a carry's append.
    AfterCarryAppend = "after-carry-append", Crash, Carry;
    /// Carry: after the window's fsync of the carried lines, before the run
    /// commits.
    AfterCarryFsync = "after-carry-fsync", Crash, Carry;
    /// Segmented: between two sealed files dropped by retention.
    SegmentPrune = "segment-prune", Crash, Segmented;
    /// Segmented: before a damaged sealed file is repaired.
    SegmentBeforeRepair = "segment-before-repair", Crash, Segmented;
    /// Segmented: before the merged file is renamed over its first input.
    SegmentBeforeMergeRename = "segment-before-merge-rename", Crash, Segmented;
    /// Segmented: between two merged inputs being deleted.
    SegmentDeleteInput = "segment-delete-input", Crash, Segmented;
    /// Replacing a lock file this user cannot write: the fresh one is
    /// locked under its temp name, not yet renamed over the old one.
    LockReplaceBeforeRename = "lock-replace-before-rename", Crash, Lock;
}

impl Failpoint {
    /// The failpoint spelled `name` in the environment, if any.
    pub fn from_name(name: &str) -> Option<Failpoint> {
        Failpoint::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// Whether `LOGKEEPER_FAILPOINT` names this point (the whole value for
    /// a crash or corrupt point).
    #[cfg(feature = "failpoints")]
    pub(crate) fn armed(self) -> bool {
        std::env::var("LOGKEEPER_FAILPOINT").is_ok_and(|v| v == self.name())
    }
}

/// Die (or pause) here if the environment names this crash point (tests
/// only).
macro_rules! failpoint {
    ($point:ident) => {
        #[cfg(feature = "failpoints")]
        $crate::failpoint::hit($crate::failpoint::Failpoint::$point);
        #[cfg(not(feature = "failpoints"))]
        let _ = $crate::failpoint::Failpoint::$point;
    };
}

/// `Err(errno)` here if `LOGKEEPER_FAILPOINT` is `NAME:ERRNO` for this
/// point, else `Ok(())`. Tests only; `Ok(())` otherwise.
macro_rules! fail_io {
    ($point:ident) => {{
        #[cfg(feature = "failpoints")]
        let r = match $crate::failpoint::io_error($crate::failpoint::Failpoint::$point) {
            Some(e) => Err(e),
            None => Ok(()),
        };
        #[cfg(not(feature = "failpoints"))]
        let r: std::io::Result<()> = {
            let _ = $crate::failpoint::Failpoint::$point;
            Ok(())
        };
        r
    }};
}

pub(crate) use {fail_io, failpoint};

/// A failpoint kills the run (`LOGKEEPER_FAILPOINT=name`) or pauses it
/// (`LOGKEEPER_PAUSE=name`: the run creates the file `LOGKEEPER_PAUSE_FILE`
/// and waits until the test removes it, or until the test process that
/// started it is gone), so a test can act between two steps. No time
/// limit: a run that went on by itself after a while would race the test
/// on a loaded machine.
#[cfg(feature = "failpoints")]
pub(crate) fn hit(point: Failpoint) {
    debug_assert_eq!(point.kind(), Kind::Crash, "{point:?}");
    if std::env::var("LOGKEEPER_PAUSE").is_ok_and(|v| v == point.name())
        && let Some(flag) = std::env::var_os("LOGKEEPER_PAUSE_FILE")
    {
        // SAFETY: getppid cannot fail.
        let parent = unsafe { libc::getppid() };
        let _ = std::fs::write(&flag, b"");
        while std::path::Path::new(&flag).exists() && unsafe { libc::getppid() } == parent {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    if point.armed() {
        // SAFETY: raising a signal on ourselves.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// The error `LOGKEEPER_FAILPOINT=NAME:ERRNO` injects at `point`, if it
/// names it.
#[cfg(feature = "failpoints")]
pub(crate) fn io_error(point: Failpoint) -> Option<std::io::Error> {
    debug_assert_eq!(point.kind(), Kind::Io, "{point:?}");
    let v = std::env::var("LOGKEEPER_FAILPOINT").ok()?;
    let (name, errno) = v.split_once(':')?;
    if name != point.name() {
        return None;
    }
    let code = match errno {
        "ENOSPC" => libc::ENOSPC,
        "EIO" => libc::EIO,
        "EFBIG" => libc::EFBIG,
        "EROFS" => libc::EROFS,
        "EDQUOT" => libc::EDQUOT,
        _ => libc::EIO,
    };
    Some(std::io::Error::from_raw_os_error(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for &f in Failpoint::ALL {
            assert_eq!(Failpoint::from_name(f.name()), Some(f));
        }
        assert_eq!(Failpoint::from_name("no-such-point"), None);
    }

    /// Every point is placed in the code, by the macro of its kind: a
    /// point listed but never hit would be a crash test that tests nothing.
    #[test]
    fn every_failpoint_is_placed_once_or_more() {
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut text = String::new();
        let mut dirs = vec![std::path::PathBuf::from(src)];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    text += &std::fs::read_to_string(&p).unwrap();
                }
            }
        }
        for &f in Failpoint::ALL {
            let call = match f.kind() {
                Kind::Crash => format!("failpoint!({f:?})"),
                Kind::Io => format!("fail_io!({f:?})"),
                Kind::Corrupt => format!("Failpoint::{f:?}.armed()"),
            };
            assert!(text.contains(&call), "{} is never placed", f.name());
        }
    }
}
