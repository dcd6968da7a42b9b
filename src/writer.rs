//! The writer protocol, as a library type. Any cooperating writer, in any
//! language, does exactly this for each append:
//!
//! 1. open the log with `O_APPEND|O_CREAT`;
//! 2. take an exclusive `flock` on that fd;
//! 3. if the fd's inode is no longer the path's (a compaction swapped the
//!    file), close, reopen and retry;
//! 4. if the file is non-empty and does not end in `\n` (a writer died
//!    mid-line), write `\n` first, so the torn fragment stays its own line;
//! 5. write the line and `\n` in one `write`; optionally `fdatasync`; unlock.
//!
//! Compaction takes the same `flock` on the live file while it copies the
//! tail and renames, which is what makes G1 hold for writers during a run.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::fold::json::Scanner;
use crate::io::durable;

/// An appender that follows the writer protocol.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    sync: bool,
    mode: u32,
}

impl LogWriter {
    /// Open (creating with mode 0644 if needed) the log at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mode = 0o644;
        let file = durable::open_append(&path, mode)?;
        Ok(LogWriter {
            path,
            file,
            sync: false,
            mode,
        })
    }

    /// `fdatasync` after each append (slower; survives power loss).
    pub fn sync_each(mut self, yes: bool) -> Self {
        self.sync = yes;
        self
    }

    /// Append one line (without its `\n`). The line is checked to be one
    /// valid JSON value on one line; nothing is written otherwise.
    pub fn append(&mut self, line: &[u8]) -> Result<()> {
        validate_line(line, 0)?;
        self.append_batch(&[line])
    }

    /// Append lines under one lock hold, so they land contiguously. Every
    /// line is validated first; if any is invalid nothing is written.
    pub fn append_all<L: AsRef<[u8]>>(&mut self, lines: &[L]) -> Result<()> {
        let mut scanner = Scanner::new();
        for (i, l) in lines.iter().enumerate() {
            check_line(&mut scanner, l.as_ref(), i + 1)?;
        }
        let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_ref()).collect();
        self.append_batch(&refs)
    }

    fn append_batch(&mut self, lines: &[&[u8]]) -> Result<()> {
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 1);
        loop {
            self.file.lock().ctx("lock", &self.path)?;
            let held = self.file.metadata().ctx("stat", &self.path)?;
            let current = std::fs::metadata(&self.path);
            let same = matches!(&current, Ok(m) if m.ino() == held.ino() && m.dev() == held.dev());
            if !same {
                // A compaction replaced the file: follow the path.
                let _ = self.file.unlock();
                self.file = durable::open_append(&self.path, self.mode)?;
                continue;
            }
            buf.clear();
            if held.len() > 0 {
                let mut last = [0u8; 1];
                self.file
                    .read_exact_at(&mut last, held.len() - 1)
                    .ctx("read last byte of", &self.path)?;
                if last[0] != b'\n' {
                    buf.push(b'\n');
                }
            }
            for l in lines {
                buf.extend_from_slice(l);
                buf.push(b'\n');
            }
            let res = self
                .file
                .write_all(&buf)
                .ctx("append to", &self.path)
                .and_then(|_| {
                    if self.sync {
                        self.file.sync_data().ctx("fdatasync", &self.path)
                    } else {
                        Ok(())
                    }
                });
            let _ = self.file.unlock();
            return res;
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn check_line(scanner: &mut Scanner, line: &[u8], index: usize) -> Result<()> {
    if let Some(p) = memchr::memchr2(b'\n', b'\r', line) {
        return Err(Error::Append(crate::error::AppendError::InvalidLine {
            index,
            reason: format!("it contains a line break at byte {p}"),
        }));
    }
    scanner.validate(line).map_err(|e| {
        Error::Append(crate::error::AppendError::InvalidLine {
            index,
            reason: e.to_string(),
        })
    })?;
    Ok(())
}

/// Check that `line` is one valid JSON value with no line break.
pub fn validate_line(line: &[u8], index: usize) -> Result<()> {
    check_line(&mut Scanner::new(), line, index)
}
