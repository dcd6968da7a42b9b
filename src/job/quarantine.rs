//! The quarantine file: lines that are not valid JSON, moved out of the log
//! with their origin (G3 in docs/design.md, which also shows an entry).
//!
//! `<log>.quarantine` is itself JSONL, one object per quarantined line:
//! `{"source", "offset", "length", "reason", "quarantined_at", "line"}` where
//! `line` is the line's text (without its `\n`), or `line_base64` instead when
//! the bytes are not valid UTF-8, so every byte is recoverable.
//!
//! Invariants:
//! - Entries are appended and fsynced *before* the log is swapped, so a crash
//!   never loses a line; an entry whose source generation, offset and bytes
//!   are already in the file (left by a run that died before its swap) is
//!   not repeated.
//! - An entry names the generation of its source (`dev`, `ino` and, where
//!   the filesystem records it, `born`: the inode's birth time), not only
//!   its path: the same bytes at the same offset of a *new* log (after a
//!   swap) are another line and are quarantined again (issue 16 A.2). An
//!   entry of an older version, without a generation, matches nothing: at
//!   worst a line is quarantined twice, never dropped.
//! - The file is created with the log's mode, never more readable.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::fold::Bad;
use crate::io::durable;

/// One quarantined line.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    pub source: PathBuf,
    pub offset: u64,
    pub length: u64,
    pub reason: String,
    pub quarantined_at: DateTime<Utc>,
    /// The source's generation (see the module doc).
    #[serde(flatten)]
    pub generation: Generation,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line_base64: Option<String>,
}

/// Which file an offset refers to: the inode (and its birth time, since an
/// inode number is reused once its file is deleted) that held the line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Generation {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dev: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ino: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub born: Option<DateTime<Utc>>,
}

impl Generation {
    fn of(meta: &std::fs::Metadata) -> Generation {
        Generation {
            dev: Some(meta.dev()),
            ino: Some(meta.ino()),
            born: meta.created().ok().map(DateTime::<Utc>::from),
        }
    }
}

impl Entry {
    /// The quarantined line's exact bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match (&self.line, &self.line_base64) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

pub fn path_for(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_os_string();
    s.push(".quarantine");
    PathBuf::from(s)
}

/// Copy the malformed lines of `src` (the file at `source`) into the
/// quarantine file of `log`, fsynced. Returns the quarantine file's path.
pub fn append(log: &Path, source: &Path, src: &File, bad: &[Bad], mode: u32) -> Result<PathBuf> {
    let qpath = path_for(log);
    crate::failpoint!("before-quarantine-write");
    // A run that failed or died after quarantining but before its swap left
    // these same lines at the same offsets: an entry with the same offset
    // and bytes already preserves the line, so it is not written again.
    let generation = Generation::of(&src.metadata().ctx("stat", source)?);
    let existing = already_quarantined(&qpath, source, &generation, bad)?;
    let mut out = Vec::new();
    let now = Utc::now();
    for b in bad {
        // The entry holds the line without its `\n` (a salvaged line's
        // fragment has none).
        let mut line = vec![0u8; b.range.len() as usize];
        src.read_exact_at(&mut line, b.range.start)
            .ctx("read malformed line from", source)?;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if existing.contains(&(b.range.start, line.clone())) {
            continue;
        }
        let line_len = line.len() as u64;
        let (text, b64) = match String::from_utf8(line) {
            Ok(s) => (Some(s), None),
            Err(e) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
            ),
        };
        let entry = Entry {
            source: source.to_path_buf(),
            offset: b.range.start,
            length: line_len,
            reason: b.reason.to_string(),
            quarantined_at: now,
            generation: generation.clone(),
            line: text,
            line_base64: b64,
        };
        out.extend(crate::error::to_json(
            "a quarantine entry",
            &qpath,
            &entry,
            false,
        )?);
        out.push(b'\n');
    }
    let mut f = durable::open_append(&qpath, mode & 0o666)?;
    let len = f.metadata().ctx("stat quarantine file", &qpath)?.len();
    if len > 0 && !out.is_empty() {
        // A run killed mid-write left a partial entry: start on a new line
        // so the next entry is not glued onto it.
        let mut last = [0u8; 1];
        f.read_exact_at(&mut last, len - 1)
            .ctx("read quarantine file", &qpath)?;
        if last[0] != b'\n' {
            out.insert(0, b'\n');
        }
    }
    let written = crate::fail_io!("quarantine-write")
        .and_then(|_| f.write_all(&out))
        .and_then(|_| {
            crate::failpoint!("mid-quarantine-write");
            f.sync_all()
        });
    if let Err(e) = written {
        // Leave no half-written entry behind.
        let _ = f.set_len(len);
        return Err(crate::Error::io("write quarantine file", &qpath, e));
    }
    Ok(qpath)
}

/// The entries of `qpath` from `source`'s `generation` at the offsets of `bad`, as
/// `(offset, bytes)`. The file is streamed line by line, and only entries
/// at those offsets are kept, so memory grows with `bad`, not with the
/// quarantine file.
fn already_quarantined(
    qpath: &Path,
    source: &Path,
    generation: &Generation,
    bad: &[Bad],
) -> Result<std::collections::HashSet<(u64, Vec<u8>)>> {
    use std::io::BufRead;
    let mut found = std::collections::HashSet::new();
    let f = match File::open(qpath) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(crate::Error::io("read quarantine file", qpath, e)),
    };
    let offsets: std::collections::HashSet<u64> = bad.iter().map(|b| b.range.start).collect();
    let mut r = std::io::BufReader::with_capacity(1 << 16, f);
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)
            .ctx("read quarantine file", qpath)?
            == 0
        {
            return Ok(found);
        }
        let Some(e) = serde_json::from_slice::<Entry>(line.trim_ascii_end()).ok() else {
            continue;
        };
        if e.source == source && e.generation == *generation && offsets.contains(&e.offset) {
            found.insert((e.offset, e.bytes()));
        }
    }
}

/// Read every entry of a quarantine file.
pub fn read(path: &Path) -> Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path).ctx("read quarantine file", path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}
