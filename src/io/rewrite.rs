//! The one atomic-rewrite primitive: every file logkeeper replaces (the
//! log at a swap, a repaired or merged segment, the run records, the state
//! files, the config, the lock's holder record) goes through [`Rewrite`].
//!
//! The order, and why (a crash at any point leaves the old file or the new
//! one, never a mix, and never a new file the app cannot use):
//! 1. a temp file beside the target ([`durable::temp_beside`]: same
//!    directory, so the rename is atomic; `O_EXCL` with an unpredictable
//!    name, so a planted symlink is never followed; named
//!    `.<target>.lk-tmp.*`, so the next run removes one a crash left);
//! 2. the target's mode and owner ([`durable::copy_mode_and_owner`]; a new
//!    file gets the mode asked), and with [`Like::File`] its ACLs and other
//!    extended attributes, before any byte is written: a rewrite that
//!    could not keep them fails while nothing has changed (G8);
//! 3. the caller writes;
//! 4. fsync of the temp file ([`Rewrite::sync`]; [`Rewrite::persist`] does
//!    it if the caller did not);
//! 5. rename over the target ([`Rewrite::persist`]), or exchange with it
//!    ([`exchange`], the swap: the old inode stays reachable under the temp
//!    name until the caller removes it);
//! 6. fsync of the directory, so the rename survives a power cut.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::io::{durable, safe};

/// What the new file takes from the one it replaces.
#[derive(Clone, Copy)]
pub enum Like<'a> {
    /// The target's mode and owner if it exists, else this mode.
    Target(u32),
    /// This mode, whatever the target's (the file is this user's).
    Mode(u32),
    /// This open file's mode, owner, ACLs and extended attributes.
    File(&'a File, &'a fs::Metadata),
}

/// A replacement in progress: a temp file beside its target.
pub struct Rewrite {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
    synced: bool,
}

impl Rewrite {
    /// Steps 1-2: the temp file, with the mode, owner (and attributes) of
    /// `like`.
    pub fn beside(target: &Path, like: Like) -> Result<Rewrite> {
        let tmp = durable::temp_beside(target)?;
        let (file, path) = (tmp.as_file(), tmp.path());
        match like {
            Like::Target(mode) => match fs::metadata(target) {
                Ok(meta) => durable::copy_mode_and_owner(file, path, &meta)?,
                Err(_) => file
                    .set_permissions(fs::Permissions::from_mode(mode))
                    .ctx("set permissions of", path)?,
            },
            Like::Mode(mode) => file
                .set_permissions(fs::Permissions::from_mode(mode))
                .ctx("set permissions of", path)?,
            Like::File(src, meta) => {
                durable::copy_mode_and_owner(file, path, meta)?;
                // ACLs and other extended attributes too, so the app keeps
                // its access.
                safe::copy_xattrs(src, file).map_err(|msg| Error::Unsafe {
                    path: target.to_path_buf(),
                    msg: format!("{msg}; nothing was changed: run as its owner or as root"),
                })?;
            }
        }
        Ok(Rewrite {
            tmp,
            target: target.to_path_buf(),
            synced: false,
        })
    }

    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    pub fn file_mut(&mut self) -> &mut File {
        self.synced = false;
        self.tmp.as_file_mut()
    }

    /// The temp file's path.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// The temp file itself, for a reader that checks it before the rename.
    pub fn temp(&self) -> &tempfile::NamedTempFile {
        &self.tmp
    }

    /// Step 4: fsync the temp file (data and metadata).
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.synced = true;
        Ok(())
    }

    /// Steps 4-6: fsync (unless done since the last write), rename over
    /// the target, fsync the directory. Returns the new file, open.
    pub fn persist(self) -> Result<File> {
        let dir = durable::parent_dir(&self.target).to_path_buf();
        let file = self.rename()?;
        durable::fsync_dir(&dir)?;
        Ok(file)
    }

    /// Steps 4-5 only: the caller fsyncs the directory (once for several
    /// renames in it, [`durable::atomic_write_all`]).
    pub fn rename(mut self) -> Result<File> {
        if !self.synced {
            let path = self.tmp.path().to_path_buf();
            self.sync().ctx("fsync", &path)?;
        }
        let target = self.target;
        self.tmp
            .persist(&target)
            .map_err(|e| e.error)
            .ctx("rename temp file over", &target)
    }

    /// For an exchange ([`exchange`]): the synced temp file, whose name
    /// will hold the old inode afterwards.
    pub fn into_temp(self) -> tempfile::NamedTempFile {
        self.tmp
    }
}

/// Atomically exchange two names (`renameat2(RENAME_EXCHANGE)`); the caller
/// fsyncs the directory. `Ok(false)` where the system or the filesystem
/// does not support it (then [`Rewrite::persist`] replaces instead).
#[cfg(target_os = "linux")]
pub fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::ffi::CString;
    let ca = CString::new(a.as_os_str().as_encoded_bytes())?;
    let cb = CString::new(b.as_os_str().as_encoded_bytes())?;
    // SAFETY: valid C strings; renameat2 does not keep the pointers.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn exchange(_a: &Path, _b: &Path) -> std::io::Result<bool> {
    Ok(false)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn a_rewrite_keeps_the_mode_and_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("f.json");
        fs::write(&target, b"old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
        let mut r = Rewrite::beside(&target, Like::Target(0o600)).unwrap();
        r.file_mut().write_all(b"new").unwrap();
        // Until the rename, readers see the old file.
        assert_eq!(fs::read(&target).unwrap(), b"old");
        r.persist().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o640);
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "the temp file is gone");
    }

    #[test]
    fn a_new_file_gets_the_mode_asked_and_a_dropped_rewrite_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("new.json");
        let r = Rewrite::beside(&target, Like::Target(0o600)).unwrap();
        drop(r);
        assert!(!target.exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
        let mut r = Rewrite::beside(&target, Like::Target(0o600)).unwrap();
        r.file_mut().write_all(b"x").unwrap();
        r.persist().unwrap();
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn files_replaced_together_each_keep_their_mode_and_leave_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
        fs::write(&a, b"old a").unwrap();
        fs::set_permissions(&a, fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(&b, b"old b").unwrap();
        durable::atomic_write_all(&[(&a, b"new a"), (&b, b"new b"), (&c, b"new c")], 0o600)
            .unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"new a");
        assert_eq!(fs::read(&b).unwrap(), b"new b");
        assert_eq!(fs::read(&c).unwrap(), b"new c");
        assert_eq!(fs::metadata(&a).unwrap().mode() & 0o777, 0o640);
        assert_eq!(fs::metadata(&c).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            3,
            "no temp file left"
        );
    }

    #[test]
    fn exchange_swaps_two_names_or_says_it_cannot() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::write(&a, b"A").unwrap();
        fs::write(&b, b"B").unwrap();
        if exchange(&a, &b).unwrap() {
            assert_eq!(fs::read(&a).unwrap(), b"B");
            assert_eq!(fs::read(&b).unwrap(), b"A");
        } else {
            assert_eq!(fs::read(&a).unwrap(), b"A");
        }
    }
}
