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
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::fold::Bad;
use crate::fold::json::Invalid;

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

/// Lines up to this long are read whole to make their entry; a longer one
/// is streamed from the log into the quarantine file in pieces, so memory
/// stays flat whatever a malformed line's length.
const WHOLE_ENTRY: u64 = 1 << 20;

/// Copy the malformed lines of `src` (the file at `source`) into the
/// quarantine file of `log`, fsynced, one entry per line of each of `bad`'s
/// ranges. Returns the quarantine file's path.
///
/// Memory is bounded whatever `bad` holds: entries are written through a
/// buffered writer as they are made, and a line longer than
/// `WHOLE_ENTRY` (1 MiB) is copied in pieces.
pub fn append(log: &Path, source: &Path, src: &File, bad: &[Bad], mode: u32) -> Result<PathBuf> {
    let qpath = path_for(log);
    crate::failpoint::failpoint!(BeforeQuarantineWrite);
    // A run that failed or died after quarantining but before its swap left
    // these same lines at the same offsets: an entry with the same offset
    // and bytes already preserves the line, so it is not written again.
    let generation = Generation::of(&src.metadata().ctx("stat", source)?);
    let existing = already_quarantined(&qpath, source, &generation, bad)?;
    let f = crate::io::safe::open_beside(&qpath, crate::io::safe::Access::Append(mode & 0o666))
        .ctx("open for appending", &qpath)?;
    // Files beside the log belong to the log's owner (G8).
    if let Ok(m) = std::fs::metadata(log) {
        crate::io::safe::give_to_owner(&f, &m)
            .ctx("give the quarantine file to the log's owner:", &qpath)?;
    }
    let len = f.metadata().ctx("stat quarantine file", &qpath)?.len();
    let mut w = Entries {
        out: std::io::BufWriter::with_capacity(1 << 16, &f),
        // A run killed mid-write left a partial entry: the first entry
        // starts on a new line so it is not glued onto it.
        newline_first: len > 0 && {
            let mut last = [0u8; 1];
            f.read_exact_at(&mut last, len - 1)
                .ctx("read quarantine file", &qpath)?;
            last[0] != b'\n'
        },
        source,
        src,
        now: Utc::now(),
        generation,
        existing,
    };
    let written = crate::failpoint::fail_io!(QuarantineWrite)
        .map_err(|e| crate::Error::io("write quarantine file", &qpath, e))
        .and_then(|_| {
            for b in bad {
                w.range(b, &qpath)?;
            }
            w.out
                .flush()
                .map_err(|e| crate::Error::io("write quarantine file", &qpath, e))
        })
        .and_then(|_| {
            crate::failpoint::failpoint!(MidQuarantineWrite);
            f.sync_all()
                .map_err(|e| crate::Error::io("write quarantine file", &qpath, e))
        });
    if let Err(e) = written {
        // Leave no half-written entry behind.
        drop(w);
        let _ = f.set_len(len);
        return Err(e);
    }
    Ok(qpath)
}

/// The writer of one [`append`]: entries go out as they are made.
struct Entries<'a> {
    out: std::io::BufWriter<&'a File>,
    newline_first: bool,
    source: &'a Path,
    src: &'a File,
    now: DateTime<Utc>,
    generation: Generation,
    existing: std::collections::HashSet<(u64, u64, u64)>,
}

impl Entries<'_> {
    /// The entries of one bad range: one per line (a run of malformed lines
    /// is split at its `\n`s; a fragment has none).
    fn range(&mut self, b: &Bad, qpath: &Path) -> Result<()> {
        let mut at = b.range.start;
        let mut first = true;
        while at < b.range.end {
            let end = next_line_end(self.src, at, b.range.end)
                .ctx("read malformed line from", self.source)?;
            let piece = crate::fold::Range { start: at, end };
            // The reason is known for the range's first line; the others
            // of a run are checked again for theirs.
            let reason = first.then(|| b.reason.clone());
            self.entry(piece, reason, qpath)?;
            first = false;
            at = end;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        piece: crate::fold::Range,
        reason: Option<Invalid>,
        qpath: &Path,
    ) -> Result<()> {
        let source = self.source;
        let read_err = |e| crate::Error::io("read malformed line from", source, e);
        let write_err = |e| crate::Error::io("write quarantine file", qpath, e);
        // The entry holds the line without its `\n`.
        let mut line_len = piece.len();
        if line_len > 0 {
            let mut last = [0u8; 1];
            self.src
                .read_exact_at(&mut last, piece.end - 1)
                .map_err(read_err)?;
            if last[0] == b'\n' {
                line_len -= 1;
            }
        }
        if line_len > WHOLE_ENTRY {
            return self.long_entry(piece.start, line_len, reason, qpath);
        }
        let mut line = vec![0u8; line_len as usize];
        self.src
            .read_exact_at(&mut line, piece.start)
            .map_err(read_err)?;
        if self
            .existing
            .contains(&(piece.start, line_len, hash(&line)))
        {
            return Ok(());
        }
        let reason = match reason {
            Some(r) => r,
            None => crate::fold::json::Scanner::new()
                .validate(&line)
                .err()
                .unwrap_or(Invalid {
                    reason: "not valid JSON",
                    at: 0,
                }),
        };
        let (text, b64) = match String::from_utf8(line) {
            Ok(s) => (Some(s), None),
            Err(e) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
            ),
        };
        let entry = Entry {
            source: self.source.to_path_buf(),
            offset: piece.start,
            length: line_len,
            reason: reason.to_string(),
            quarantined_at: self.now,
            generation: self.generation.clone(),
            line: text,
            line_base64: b64,
        };
        let json = crate::error::to_json("a quarantine entry", qpath, &entry, false)?;
        self.start_entry().map_err(write_err)?;
        self.out.write_all(&json).map_err(write_err)?;
        self.out.write_all(b"\n").map_err(write_err)
    }

    fn start_entry(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.newline_first) {
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// The first pass over a long line, in pieces of `buf`'s length:
    /// whether it is UTF-8, and why it is not valid JSON.
    fn survey(
        &self,
        offset: u64,
        len: u64,
        buf: &mut [u8],
    ) -> std::io::Result<(bool, Option<Invalid>)> {
        let mut check = crate::fold::json::LineValidator::new();
        let mut utf8 = true;
        let (mut at, mut carry) = (0u64, 0usize);
        while at < len {
            let n = ((len - at) as usize).min(buf.len() - carry);
            self.src
                .read_exact_at(&mut buf[carry..carry + n], offset + at)?;
            check.feed(&buf[carry..carry + n]);
            at += n as u64;
            let filled = carry + n;
            let cut = utf8_cut(&buf[..filled], at == len);
            utf8 &= simdutf8::basic::from_utf8(&buf[..cut]).is_ok();
            buf.copy_within(cut..filled, 0);
            carry = filled - cut;
        }
        Ok((utf8, check.finish().err()))
    }

    /// The entry of a line longer than [`WHOLE_ENTRY`], streamed: one pass
    /// to learn whether it is UTF-8 (and its reason, for a run's later
    /// line), one to copy it, JSON-escaped or base64-encoded. Such an entry
    /// is never deduplicated (a repeat is harmless; a line is never lost).
    fn long_entry(
        &mut self,
        offset: u64,
        len: u64,
        reason: Option<Invalid>,
        qpath: &Path,
    ) -> Result<()> {
        let source = self.source;
        let read_err = |e| crate::Error::io("read malformed line from", source, e);
        let write_err = |e| crate::Error::io("write quarantine file", qpath, e);
        let mut buf = vec![0u8; PIECE];
        let (utf8, invalid) = self.survey(offset, len, &mut buf).map_err(read_err)?;
        let reason = reason.or(invalid).unwrap_or(Invalid {
            reason: "not valid JSON",
            at: 0,
        });
        // The fields before the line, as `to_json` writes them, then the
        // line's field written by hand in pieces.
        let head = Entry {
            source: self.source.to_path_buf(),
            offset,
            length: len,
            reason: reason.to_string(),
            quarantined_at: self.now,
            generation: self.generation.clone(),
            line: None,
            line_base64: None,
        };
        let mut json = crate::error::to_json("a quarantine entry", qpath, &head, false)?;
        json.pop(); // the closing brace
        json.extend_from_slice(if utf8 {
            b",\"line\":\""
        } else {
            b",\"line_base64\":\""
        });
        self.start_entry().map_err(write_err)?;
        self.out.write_all(&json).map_err(write_err)?;
        let mut at = 0u64;
        let mut carry = 0usize; // bytes of a UTF-8 sequence cut by a piece
        while at < len {
            let n = ((len - at) as usize).min(PIECE - carry);
            self.src
                .read_exact_at(&mut buf[carry..carry + n], offset + at)
                .map_err(read_err)?;
            at += n as u64;
            let filled = carry + n;
            if utf8 {
                let cut = utf8_cut(&buf[..filled], at == len);
                let text = std::str::from_utf8(&buf[..cut]).map_err(|e| {
                    read_err(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                })?;
                let quoted = serde_json::to_vec(text).expect("a str serialises");
                self.out
                    .write_all(&quoted[1..quoted.len() - 1])
                    .map_err(write_err)?;
                buf.copy_within(cut..filled, 0);
                carry = filled - cut;
            } else {
                let enc = base64::engine::general_purpose::STANDARD.encode(&buf[..filled]);
                self.out.write_all(enc.as_bytes()).map_err(write_err)?;
            }
        }
        self.out.write_all(b"\"}\n").map_err(write_err)
    }
}

/// The piece a long line is read in: a multiple of 3, so its base64 has
/// no padding.
const PIECE: usize = 3 << 18;

/// Where to cut a piece of a long line so that no UTF-8 sequence is split:
/// before the start of its last (possibly incomplete) character, unless it
/// is the line's last piece. The rest starts the next piece.
fn utf8_cut(piece: &[u8], last: bool) -> usize {
    let n = piece.len();
    if last {
        return n;
    }
    (1..n.min(4))
        .map(|i| n - i)
        .find(|&c| piece[c] & 0xC0 != 0x80)
        .unwrap_or(n)
}

/// The end of the line that starts at `at` (just after its `\n`), or
/// `limit` if there is no `\n` before it.
pub(crate) fn next_line_end(src: &File, at: u64, limit: u64) -> std::io::Result<u64> {
    let mut buf = [0u8; 8 << 10];
    let mut pos = at;
    while pos < limit {
        let n = ((limit - pos) as usize).min(buf.len());
        src.read_exact_at(&mut buf[..n], pos)?;
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(pos + i as u64 + 1);
        }
        pos += n as u64;
    }
    Ok(limit)
}

/// A 64-bit digest of a line's bytes, for deduplication.
fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = foldhash::quality::FixedState::with_seed(0x6c6b).build_hasher();
    h.write(bytes);
    h.finish()
}

/// The entries of `qpath` from `source` inside the ranges of `bad`, as
/// `(offset, length, digest of the bytes)`. The file is streamed line by
/// line, and an entry line longer than [`WHOLE_ENTRY`] (plus its fields) is
/// skipped unread, so memory grows neither with the quarantine file nor
/// with its longest entry.
fn already_quarantined(
    qpath: &Path,
    source: &Path,
    generation: &Generation,
    bad: &[Bad],
) -> Result<std::collections::HashSet<(u64, u64, u64)>> {
    use std::io::BufRead;
    let mut found = std::collections::HashSet::new();
    let f = match crate::io::safe::open_beside(qpath, crate::io::safe::Access::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(crate::Error::io("read quarantine file", qpath, e)),
    };
    // Sorted: `bad` is in file order.
    let inside = |off: u64| {
        let i = bad.partition_point(|b| b.range.end <= off);
        bad.get(i).is_some_and(|b| b.range.start <= off)
    };
    // Base64 makes an entry 4/3 of its line, plus its other fields.
    let limit = WHOLE_ENTRY * 2 + (64 << 10);
    let mut r = std::io::BufReader::with_capacity(1 << 16, f);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut r)
            .take(limit)
            .read_until(b'\n', &mut line)
            .ctx("read quarantine file", qpath)?;
        if n == 0 {
            return Ok(found);
        }
        if line.last() != Some(&b'\n') && n as u64 == limit {
            // Too long to be a whole entry's: skip to its end.
            skip_line(&mut r).ctx("read quarantine file", qpath)?;
            continue;
        }
        let Some(e) = serde_json::from_slice::<Entry>(line.trim_ascii_end()).ok() else {
            continue;
        };
        if e.source == source && e.generation == *generation && inside(e.offset) {
            let bytes = e.bytes();
            found.insert((e.offset, bytes.len() as u64, hash(&bytes)));
        }
    }
}

fn skip_line(r: &mut impl std::io::BufRead) -> std::io::Result<()> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match memchr::memchr(b'\n', buf) {
            Some(i) => {
                r.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                r.consume(n);
            }
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
