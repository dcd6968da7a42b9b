//! The writer census: which processes hold a file open for writing.
//!
//! A maintenance job cannot ask an app how it writes; it can look. Before it
//! touches a log (and after a swap, to know when an old inode is let go),
//! a run lists every open file descriptor on the machine that refers to one
//! of the files it cares about and was opened for writing.
//!
//! How:
//! - Linux: `/proc/<pid>/fd/<n>` is stat'ed (it follows to the open file,
//!   even one already unlinked or renamed) and matched by `(dev, ino)`, so a
//!   writer is found on the inode it really writes to, whatever name that
//!   inode has now. The access mode and `O_APPEND` come from
//!   `/proc/<pid>/fdinfo/<n>` (`flags:` in octal), the program name from
//!   `/proc/<pid>/comm`.
//! - macOS has no `/proc`: the census there would use libproc
//!   (`proc_listpids` + `proc_pidinfo(PROC_PIDLISTFDS)` +
//!   `proc_pidfdinfo(PROC_PIDFDVNODEPATHINFO)`, what `lsof` does). It is not
//!   built yet: [`Census::supported`] is false and the run says so.
//!
//! Invariants:
//! - Read-only and best effort: a process that exits mid-walk, or whose
//!   `/proc` entries this user may not read, never makes the census fail;
//!   the latter is counted in [`Census::unreadable`] so a report can say
//!   the census may be incomplete.
//! - The calling process itself is never listed (a run holds the log open
//!   for its own reasons).
//! - A census is a snapshot: a writer may open the file right after it.
//!   Callers use it to choose a strategy and to report, and must not rely on
//!   it alone for exclusion (that is what the locks are for).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use crate::job::record::report::{Census, Opener};

impl Census {
    /// The openers of one watched file.
    pub fn of<'a>(&'a self, file: &'a Path) -> impl Iterator<Item = &'a Opener> + 'a {
        self.openers.iter().filter(move |o| o.file == file)
    }

    pub fn is_empty(&self) -> bool {
        self.openers.is_empty()
    }

    /// Whether every process that could write is in view. When not, an
    /// empty census proves nothing: a run keeps every rotated file that
    /// may still be written until it has been quiet for `blind_grace`,
    /// copies a torn tail only to its last `\n`, and cannot check writers
    /// for `O_APPEND`.
    pub fn complete(&self) -> bool {
        self.supported && self.blind.is_empty()
    }

    /// What to do about an incomplete census, for `status`.
    pub const FIX: &'static str = "only a run as root in the host's PID namespace sees every writer (docs/deployment.md); until then a rotated file is kept until it has been quiet for blind_grace, a torn tail is copied only to its last newline, and a writer without O_APPEND cannot be detected";
}

/// The census of write-mode descriptors on `files` (each stat'ed now and
/// matched by inode). Files that do not exist are ignored.
pub fn take(files: &[&Path]) -> Census {
    let mut targets = HashMap::new();
    for f in files {
        if let Ok(m) = std::fs::metadata(f) {
            use std::os::unix::fs::MetadataExt;
            targets
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| f.to_path_buf());
        }
    }
    take_inodes(&targets)
}

/// The census of `files` among the processes `pids` only: cheap enough to
/// repeat every few milliseconds (the carry window asks whether the writers
/// that held the old inode still do).
pub fn take_among(files: &[&Path], pids: &[u32]) -> Census {
    let mut targets = HashMap::new();
    for f in files {
        if let Ok(m) = std::fs::metadata(f) {
            use std::os::unix::fs::MetadataExt;
            targets
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| f.to_path_buf());
        }
    }
    #[cfg(target_os = "linux")]
    {
        linux::take(&targets, Some(pids))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (targets, pids);
        Census::default()
    }
}

/// The census of write-mode descriptors on the given inodes, each reported
/// under the path it maps to (useful for an inode that no longer has the
/// name it was known by).
pub fn take_inodes(targets: &HashMap<(u64, u64), PathBuf>) -> Census {
    #[cfg(target_os = "linux")]
    {
        linux::take(targets, None)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = targets;
        Census::default()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// The inode of the initial PID namespace (PROC_PID_INIT_INO, fixed
    /// since Linux 3.8): any other means processes outside are hidden.
    const INIT_PID_NS: u64 = 0xEFFF_FFFC;

    /// Why this process cannot see every process on the machine, apart
    /// from unreadable `/proc` entries (counted during the walk).
    fn hidden() -> Vec<String> {
        let mut why = Vec::new();
        let ns = std::fs::metadata("/proc/self/ns/pid").map(|m| m.ino());
        let nested = match ns {
            Ok(ino) => ino != INIT_PID_NS,
            Err(_) => true,
        };
        if nested {
            why.push(
                "logkeeper runs in a PID namespace of its own (a container?): writers outside it cannot be seen".to_string(),
            );
        }
        let hidepid = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some("/proc"))
            .any(|l| {
                l.split([' ', ',']).any(|o| {
                    o.strip_prefix("hidepid=")
                        .is_some_and(|v| !matches!(v, "0" | "off"))
                })
            });
        if hidepid {
            why.push("/proc is mounted with hidepid: other users' processes cannot be seen".into());
        }
        why
    }

    pub(super) fn take(targets: &HashMap<(u64, u64), PathBuf>, only: Option<&[u32]>) -> Census {
        let mut census = Census {
            supported: true,
            blind: hidden(),
            ..Census::default()
        };
        if targets.is_empty() {
            return census;
        }
        let me = std::process::id();
        // Owner, group and mode of each file (None: unknown, any may write).
        let owners: Vec<Option<(u32, u32, u32)>> = targets
            .values()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (m.uid(), m.gid(), m.mode()))
            })
            .collect();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            census.supported = false;
            return census;
        };
        for entry in procs.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me || only.is_some_and(|o| !o.contains(&pid)) {
                continue;
            }
            openers_of(pid, targets, &owners, &mut census);
        }
        census.openers.sort_by_key(|o| (o.pid, o.fd));
        if census.unreadable > 0 {
            census.blind.push(format!(
                "{} process(es) could not be inspected (other users', or not dumpable after a change of user)",
                census.unreadable
            ));
        }
        census
    }

    /// Add `pid`'s write-mode descriptors on `targets` to `census`.
    pub(super) fn openers_of(
        pid: u32,
        targets: &HashMap<(u64, u64), PathBuf>,
        owners: &[Option<(u32, u32, u32)>],
        census: &mut Census,
    ) {
        let fds = match read_fd_dir(pid) {
            Ok(fds) => fds,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                if may_write(pid, owners) {
                    census.unreadable += 1;
                }
                return;
            }
            // Exited mid-walk, or a kernel thread.
            Err(_) => return,
        };
        let mut program = None;
        for fd in fds.flatten() {
            // stat (not lstat) follows the magic link to the open file.
            let Ok(m) = std::fs::metadata(fd.path()) else {
                continue;
            };
            let Some(file) = targets.get(&(m.dev(), m.ino())) else {
                continue;
            };
            let Some(n) = fd.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Some(flags) = fd_flags(pid, n, (m.dev(), m.ino())) else {
                continue;
            };
            let access = flags & libc::O_ACCMODE as u32;
            if access != libc::O_WRONLY as u32 && access != libc::O_RDWR as u32 {
                continue;
            }
            let program = program
                .get_or_insert_with(|| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .map(|s| s.trim_end().to_string())
                        .unwrap_or_else(|_| "?".into())
                })
                .clone();
            census.openers.push(Opener {
                pid,
                program,
                file: file.clone(),
                fd: n,
                flags: describe(flags),
                append: flags & libc::O_APPEND as u32 != 0,
            });
        }
    }

    /// `/proc/<pid>/fd`. A process of our own user is unreadable while it
    /// is not dumpable: for a moment after it switched to this user (`sudo
    /// -u`, `setpriv`, cron and systemd `User=` all do) until it execs, or
    /// for good if it dropped privileges without exec. Counted unreadable at
    /// that moment, it made one run of a class-B store swap (an incomplete
    /// census), which detached the writer for its life; so one that just
    /// started is read again, 5 ms apart, up to [`REREADS`] times, before
    /// it counts as unreadable.
    fn read_fd_dir(pid: u32) -> std::io::Result<std::fs::ReadDir> {
        let fd_dir = format!("/proc/{pid}/fd");
        let mut tries = 0;
        loop {
            match std::fs::read_dir(&fd_dir) {
                Err(e)
                    if e.kind() == std::io::ErrorKind::PermissionDenied
                        && tries < REREADS
                        && ours(pid)
                        && just_started(pid) =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                r => return r,
            }
        }
    }

    /// How many times [`read_fd_dir`] reads a just-started, undumpable
    /// process of our own user again, 5 ms apart. 3 (15 ms) was not
    /// enough on a loaded 2-core machine: a fresh CI run with builds
    /// beside it counted a test's just-switched writer unreadable, and a
    /// class-B store swapped. The switch to exec takes longer under
    /// load; 40 (200 ms at most) is paid only while such a process exists.
    const REREADS: u32 = 40;

    /// Whether `pid` started less than 2 s ago (`starttime`, field 22 of
    /// `/proc/<pid>/stat`, against `/proc/uptime`): one that has been
    /// unreadable longer dropped privileges without `exec` (a prefork
    /// server, an agent that made itself undumpable) and stays so, and
    /// re-reading it would cost every census 15 ms.
    pub(super) fn just_started(pid: u32) -> bool {
        // SAFETY: sysconf has no preconditions.
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let start = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 1..];
                rest.split_whitespace().nth(19)?.parse::<f64>().ok()
            });
        let up = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok());
        match (start, up) {
            (Some(start), Some(up)) => up - start / tick < 2.0,
            _ => false,
        }
    }

    /// Whether `pid` runs as this process's effective user (the second
    /// field of `Uid:` in `/proc/<pid>/status`, readable by anyone).
    fn ours(pid: u32) -> bool {
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(me)
        })
    }

    /// The open flags of `pid`'s descriptor `fd`, which was just seen to
    /// name the inode `target`: the `flags:` line of `/proc/<pid>/fdinfo/<fd>`
    /// (octal). The process may close the fd and reuse its number for
    /// another file between the stat and this read (bash's `>> log` on fd 1
    /// does, many times a second; issue 16 B.6), so the flags count only if
    /// the same read's `ino:` (Linux 5.14+) is the target's and the fd still
    /// names the target after it; otherwise the fd is read again, a few
    /// times, and then skipped (it no longer names the file).
    fn fd_flags(pid: u32, fd: u32, target: (u64, u64)) -> Option<u32> {
        let link = format!("/proc/{pid}/fd/{fd}");
        let names_target = || std::fs::metadata(&link).is_ok_and(|m| (m.dev(), m.ino()) == target);
        for _ in 0..8 {
            if !names_target() {
                return None;
            }
            let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
            };
            let flags = u32::from_str_radix(field("flags:")?, 8).ok()?;
            let same_ino = field("ino:").is_none_or(|i| i.parse() == Ok(target.1));
            if same_ino && names_target() {
                return Some(flags);
            }
        }
        None
    }

    /// Whether a process whose descriptors cannot be read might write one
    /// of the files, judged by its ids (`/proc/<pid>/status` is readable by
    /// all) against each file's owner, group and mode, so that the census
    /// says it may be incomplete only when it may be (C.12). Root's
    /// processes count only for a file owned by root: a root process that
    /// writes into another user's log is not the setup this looks for, and
    /// counting root's daemons made every non-root census "incomplete".
    fn may_write(pid: u32, owners: &[Option<(u32, u32, u32)>]) -> bool {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return true;
        };
        let ids = |key: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let uids = ids("Uid:");
        let mut gids = ids("Gid:");
        gids.extend(ids("Groups:"));
        owners.iter().any(|o| match *o {
            None => true,
            Some((uid, gid, mode)) => {
                (uids.contains(&uid) && mode & 0o200 != 0)
                    || (gids.contains(&gid) && mode & 0o020 != 0)
                    || mode & 0o002 != 0
            }
        })
    }

    fn describe(flags: u32) -> String {
        let access = flags & libc::O_ACCMODE as u32;
        let mut parts = vec![if access == libc::O_RDWR as u32 {
            "O_RDWR"
        } else {
            "O_WRONLY"
        }];
        for (bit, name) in [
            (libc::O_APPEND, "O_APPEND"),
            (libc::O_CREAT, "O_CREAT"),
            (libc::O_SYNC, "O_SYNC"),
            (libc::O_DSYNC, "O_DSYNC"),
        ] {
            // O_SYNC includes O_DSYNC's bit: name only the stronger one.
            if flags & bit as u32 == bit as u32
                && !(name == "O_DSYNC" && flags & libc::O_SYNC as u32 == libc::O_SYNC as u32)
            {
                parts.push(name);
            }
        }
        parts.join("|")
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests;
