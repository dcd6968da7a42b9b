//! Opening files where another user may have planted a name (G8 in
//! docs/design.md; docs/deployment.md says what each deployment needs).
//!
//! Every file logkeeper opens beside the log (lock, quarantine, rotated
//! files) is opened with [`Dir::open_file`]: relative to a directory fd
//! (so the directory is resolved once), with `O_NOFOLLOW | O_NONBLOCK |
//! O_CLOEXEC`, and checked with `fstat` on the opened fd.
//!
//! Invariants:
//! - A symlink, FIFO, socket, device or directory at such a name is refused
//!   with an error that says what it is and what to do; it is never
//!   followed, never written through, and opening it never blocks (a FIFO
//!   is refused by `fstatat` before any open, and `O_NONBLOCK` covers the
//!   race where it appears between the two).
//! - Run by root, a directory that a user other than root can write is
//!   never trusted ([`untrusted_dir`]): that user could plant a name
//!   between any check and any use. Such a store runs as the log's owner.
//! - A state dir is trusted only if it, and every directory above it, is
//!   owned by the running user or root and writable by no one else
//!   ([`check_private_dir`]).

use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process may give files away (root, or CAP_CHOWN).
pub fn is_root() -> bool {
    euid() == 0
}

/// Whether `gid` is this process's group or one of its supplementary ones:
/// only then may a non-root process give a file that group.
pub fn in_group(gid: u32) -> bool {
    // SAFETY: getegid has no preconditions.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    let mut groups = vec![0 as libc::gid_t; 256];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
    n > 0 && groups[..n as usize].contains(&gid)
}

/// The user name of `uid`, or the number.
pub fn user_name(uid: u32) -> String {
    lookup("/etc/passwd", uid).unwrap_or_else(|| uid.to_string())
}

/// The group name of `gid`, or the number.
pub fn group_name(gid: u32) -> String {
    lookup("/etc/group", gid).unwrap_or_else(|| gid.to_string())
}

fn lookup(db: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(db).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        f.next()?;
        (f.next()?.parse::<u32>().ok()? == id).then(|| name.to_string())
    })
}

/// What a non-regular file type is, for an error message.
fn kind_of(mode: u32) -> Option<&'static str> {
    match mode & libc::S_IFMT {
        libc::S_IFREG => None,
        libc::S_IFLNK => Some("a symbolic link"),
        libc::S_IFIFO => Some("a FIFO"),
        libc::S_IFSOCK => Some("a socket"),
        libc::S_IFCHR | libc::S_IFBLK => Some("a device"),
        libc::S_IFDIR => Some("a directory"),
        _ => Some("not a regular file"),
    }
}

fn refused(kind: &str) -> io::Error {
    io::Error::other(format!(
        "is {kind}, not a regular file: logkeeper never follows or opens one beside the log or in its state dir (someone who can write that directory may have planted it); nothing was changed: remove it and run again"
    ))
}

/// An open directory, the anchor of every open inside it.
#[derive(Debug)]
pub struct Dir {
    file: File,
    path: PathBuf,
}

/// How [`Dir::open_file`] opens a file.
#[derive(Clone, Copy, Debug)]
pub enum Access {
    Read,
    /// Read and write, created with this mode if missing.
    ReadWrite(u32),
    /// Read and append, created with this mode if missing.
    Append(u32),
}

impl Dir {
    /// Open the directory `path` (symlinks in `path` itself are followed:
    /// the directory is resolved once, here).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Dir {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The directory holding `file`.
    pub fn of(file: &Path) -> io::Result<Dir> {
        Dir::open(crate::io::sys::parent_dir(file))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metadata(&self) -> io::Result<Metadata> {
        self.file.metadata()
    }

    /// `lstat` of `name` in this directory: `None` if it does not exist.
    pub fn lstat(&self, name: &OsStr) -> io::Result<Option<libc::stat>> {
        let c = cname(name)?;
        // SAFETY: zeroed stat is a valid out-buffer; c is NUL-terminated.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::fstatat(
                self.file.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc == 0 {
            return Ok(Some(st));
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::NotFound {
            Ok(None)
        } else {
            Err(e)
        }
    }

    /// Open the regular file `name` in this directory, never following a
    /// symlink and never blocking on a FIFO; anything but a regular file is
    /// refused with an error saying what it is.
    pub fn open_file(&self, name: &OsStr, access: Access) -> io::Result<File> {
        if let Some(st) = self.lstat(name)?
            && let Some(kind) = kind_of(st.st_mode)
        {
            return Err(refused(kind));
        }
        let (flags, mode) = match access {
            Access::Read => (libc::O_RDONLY, 0),
            Access::ReadWrite(m) => (libc::O_RDWR | libc::O_CREAT, m),
            Access::Append(m) => (libc::O_RDWR | libc::O_APPEND | libc::O_CREAT, m),
        };
        let c = cname(name)?;
        // SAFETY: c is NUL-terminated; the returned fd is owned below.
        let fd = unsafe {
            libc::openat(
                self.file.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                // A symlink (O_NOFOLLOW) or a FIFO without a reader planted
                // since the lstat above.
                Some(libc::ELOOP) => refused("a symbolic link"),
                Some(libc::ENXIO) => refused("a FIFO or socket"),
                _ => e,
            });
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        let meta = file.metadata()?;
        if let Some(kind) = kind_of(meta.mode()) {
            return Err(refused(kind));
        }
        // Regular files ignore O_NONBLOCK, but clear it so the fd is plain.
        // SAFETY: fcntl on an fd we own.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            if fl >= 0 {
                libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
            }
        }
        Ok(file)
    }
}

fn cname(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a file name"))
}

/// Open the regular file at `path` relative to its directory
/// ([`Dir::open_file`]).
pub fn open_beside(path: &Path, access: Access) -> io::Result<File> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    Dir::of(path)?.open_file(name, access)
}

/// Why root must not trust the directory `meta` (one a user other than
/// root can write), or `None`.
pub fn untrusted_dir(meta: &Metadata) -> Option<String> {
    if !is_root() {
        return None;
    }
    let mode = meta.mode();
    if meta.uid() != 0 {
        Some(format!("is owned by {}", user_name(meta.uid())))
    } else if meta.gid() != 0 && mode & 0o020 != 0 {
        Some(format!("is writable by group {}", group_name(meta.gid())))
    } else if mode & 0o002 != 0 {
        Some("is writable by every user".into())
    } else {
        None
    }
}

/// Refuse a state directory (and any directory above it) that is not
/// owned by this user or root, or that others can write (a directory
/// writable by all is accepted above it only with the sticky bit, as
/// `/tmp`): its files could have been planted.
pub fn check_private_dir(dir: &Path) -> Result<(), (PathBuf, String)> {
    let me = euid();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        let Ok(m) = std::fs::metadata(d) else {
            cur = d.parent();
            continue;
        };
        let mode = m.mode();
        let sticky = mode & libc::S_ISVTX != 0;
        let ours = m.uid() == me || m.uid() == 0;
        let top = d == dir;
        let writable_by_others = if top {
            mode & 0o022 != 0
        } else {
            (mode & 0o002 != 0 && !sticky) || (mode & 0o020 != 0 && !in_group(m.gid()) && !sticky)
        };
        if !ours || (top && m.uid() != me) {
            return Err((
                d.to_path_buf(),
                format!(
                    "is owned by {}, not by the user running logkeeper ({}): a state dir another user made is never trusted; nothing was changed: remove it (or point LOGKEEPER_STATE_DIR at a directory of your own)",
                    user_name(m.uid()),
                    user_name(me)
                ),
            ));
        }
        if writable_by_others {
            return Err((
                d.to_path_buf(),
                format!(
                    "can be written by other users (mode {:o}): state files there could be planted, so it is not trusted; nothing was changed: make it private (chmod go-w {}) or point LOGKEEPER_STATE_DIR elsewhere",
                    mode & 0o7777,
                    d.display()
                ),
            ));
        }
        cur = d.parent();
    }
    Ok(())
}

/// The message for a directory root refuses ([`untrusted_dir`] said `why`).
pub fn root_refusal(why: &str, dir: &Metadata) -> String {
    let owner = if dir.uid() != 0 {
        user_name(dir.uid())
    } else {
        "the log's owner".into()
    };
    format!(
        "{why}; run by root, logkeeper refuses a directory that another user can write (that user could plant a link or FIFO at a name it opens); nothing was changed: run this store as {owner} instead (`sudo -u {owner} logkeeper sync now`, `User={owner}` in the systemd unit, or {owner}'s crontab), or make the directory writable only by root"
    )
}

/// Give a file this run created beside the log the log's owner and group
/// (`like` is the log's metadata). Only root may give a file away; for
/// anyone else this is a no-op (the run owns the log, see the owner check
/// before a run touches it).
pub fn give_to_owner(file: &File, like: &Metadata) -> io::Result<()> {
    let m = file.metadata()?;
    if is_root() && (m.uid(), m.gid()) != (like.uid(), like.gid()) {
        std::os::unix::fs::fchown(file, Some(like.uid()), Some(like.gid()))?;
    }
    Ok(())
}

/// Add to a permission error on `path` who owns it and what to do.
pub fn access_hint(path: &Path, e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::PermissionDenied {
        return e;
    }
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return e;
    };
    let what = format!(
        "{}:{} mode {:o}",
        user_name(m.uid()),
        group_name(m.gid()),
        m.mode() & 0o7777
    );
    let fix = if m.uid() == euid() {
        format!("give yourself access (chmod u+rw {})", path.display())
    } else {
        format!("run logkeeper as {} or as root", user_name(m.uid()))
    };
    io::Error::new(
        e.kind(),
        format!(
            "{e} (it is {what}, logkeeper runs as {}); nothing was changed: {fix}",
            user_name(euid())
        ),
    )
}

/// The names of `f`'s extended attributes.
fn xattr_names(f: &File) -> io::Result<Vec<CString>> {
    let fd = f.as_raw_fd();
    // SAFETY: a null buffer of size 0 asks for the size.
    let n = unsafe { libc::flistxattr(fd, std::ptr::null_mut(), 0) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(Vec::new()),
            _ => Err(e),
        };
    }
    let mut buf = vec![0u8; n as usize + 256];
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::flistxattr(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| CString::new(s).ok())
        .collect())
}

/// Copy every extended attribute of `src` this user can read (POSIX ACLs
/// are `system.posix_acl_access`; `security.*` where readable) onto `dst`,
/// and drop an access ACL `dst` inherited that `src` does not have. An
/// attribute that cannot be set is an error naming it: the caller has not
/// touched the log yet, so it stays as it is.
pub fn copy_xattrs(src: &File, dst: &File) -> Result<(), String> {
    let names = xattr_names(src).map_err(|e| format!("list extended attributes: {e}"))?;
    for name in &names {
        let mut buf = vec![0u8; 64 << 10];
        // SAFETY: valid fd, NUL-terminated name, buffer valid for its length.
        let n = unsafe {
            libc::fgetxattr(
                src.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            // Not readable by this user (trusted.*, some security.*).
            continue;
        }
        // SAFETY: as above; the value is n bytes of buf.
        let rc = unsafe {
            libc::fsetxattr(
                dst.as_raw_fd(),
                name.as_ptr(),
                buf.as_ptr().cast(),
                n as usize,
                0,
            )
        };
        if rc != 0 {
            return Err(format!(
                "cannot keep the extended attribute {} on the new log: {}",
                name.to_string_lossy(),
                io::Error::last_os_error()
            ));
        }
    }
    let acl = c"system.posix_acl_access";
    if !names.iter().any(|n| n.as_c_str() == acl) {
        // SAFETY: valid fd and name; ENODATA (no such ACL) is fine.
        unsafe { libc::fremovexattr(dst.as_raw_fd(), acl.as_ptr()) };
    }
    Ok(())
}
