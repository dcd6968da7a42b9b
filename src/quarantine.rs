//! The quarantine file: lines that are not valid JSON, moved out of the log
//! with their origin (G3).
//!
//! `<log>.quarantine` is itself JSONL, one object per quarantined line:
//! `{"source", "offset", "length", "reason", "quarantined_at", "line"}` where
//! `line` is the line's text (without its `\n`), or `line_base64` instead when
//! the bytes are not valid UTF-8, so every byte is recoverable.
//!
//! Invariants:
//! - Entries are appended and fsynced *before* the log is swapped, so a crash
//!   can duplicate an entry but never lose a line.
//! - The file is created with the log's mode, never more readable.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::fold::Bad;
use crate::fsutil;

/// One quarantined line.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    pub source: PathBuf,
    pub offset: u64,
    pub length: u64,
    pub reason: String,
    pub quarantined_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line_base64: Option<String>,
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

/// Copy the malformed lines of `src` (the log at `source`) into the
/// quarantine file beside it, fsynced. Returns the quarantine file's path.
pub fn append(source: &Path, src: &File, bad: &[Bad], mode: u32) -> Result<PathBuf> {
    let qpath = path_for(source);
    crate::failpoint!("before-quarantine-write");
    let mut out = Vec::new();
    let now = Utc::now();
    for b in bad {
        // The range includes the line's `\n`; the entry holds the line only.
        let mut line = vec![0u8; (b.range.len() - 1) as usize];
        src.read_exact_at(&mut line, b.range.start)
            .ctx("read malformed line from", source)?;
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
            length: b.range.len() - 1,
            reason: b.reason.to_string(),
            quarantined_at: now,
            line: text,
            line_base64: b64,
        };
        serde_json::to_writer(&mut out, &entry).expect("entry serializes");
        out.push(b'\n');
    }
    let mut f = fsutil::open_append(&qpath, mode & 0o666)?;
    f.write_all(&out).ctx("write quarantine file", &qpath)?;
    crate::failpoint!("mid-quarantine-write");
    f.sync_all().ctx("fsync quarantine file", &qpath)?;
    Ok(qpath)
}

/// Read every entry of a quarantine file.
pub fn read(path: &Path) -> Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path).ctx("read quarantine file", path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}
