//! Segment names: the `{seq}` pattern, and listing a directory in seq order.
//!
//! A pattern is `<dir>/<prefix>{seq}<suffix>`; a file matches when its name
//! is the prefix, 1 to 20 ASCII digits that fit a u64, and the suffix. The
//! writer names each file by the seq of its first event, zero-padded to 20
//! digits ([`Pattern::name_for`]); readers sort by the number, not the text.
//!
//! Invariants:
//! - Listing only reads (`readdir` + `lstat`); a name that does not match
//!   is reported in [`Listing::unmatched`] and never touched by any run.
//! - logkeeper's own files in the directory (the lock `.<store>.lock`, the
//!   quarantine `<store>.quarantine`, temp files `.<segment>.lk-tmp.*`) are
//!   recognised and neither listed as segments nor reported as unmatched.
//! - Two names with the same seq (`events-7.jsonl` and
//!   `events-00000000000000000007.jsonl`) are both listed, in name order,
//!   and reported in [`Listing::duplicate_seqs`]: readers cannot order them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, Result};

/// Width of the zero-padded seq in names written by [`Pattern::name_for`].
pub const SEQ_WIDTH: usize = 20;

/// A parsed `segments` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// The pattern as configured (`dir/prefix{seq}suffix`, absolute).
    pub path: PathBuf,
    pub dir: PathBuf,
    pub prefix: String,
    pub suffix: String,
}

impl Pattern {
    /// Parse an absolute `dir/prefix{seq}suffix` path.
    pub fn parse(path: &Path) -> std::result::Result<Pattern, String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{:?} does not end in a file name", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        if dir.to_string_lossy().contains("{seq}") {
            return Err(format!(
                "{:?}: `{{seq}}` may only appear in the file name, not in the directory",
                path.display()
            ));
        }
        let Some((prefix, suffix)) = name.split_once("{seq}") else {
            return Err(format!(
                "{:?} has no `{{seq}}` placeholder in its file name (e.g. \"events-{{seq}}.jsonl\")",
                path.display()
            ));
        };
        if suffix.contains("{seq}") {
            return Err(format!("{name:?} has `{{seq}}` more than once"));
        }
        if prefix.starts_with('.') {
            return Err(format!(
                "{name:?}: segment names may not start with '.' (logkeeper's own files do)"
            ));
        }
        if prefix.is_empty() && suffix.is_empty() {
            return Err(format!(
                "{name:?}: give a prefix or suffix around `{{seq}}` (e.g. \"events-{{seq}}.jsonl\")"
            ));
        }
        Ok(Pattern {
            path: path.to_path_buf(),
            dir,
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
        })
    }

    /// The seq in a matching file name.
    pub fn seq_of(&self, name: &str) -> Option<u64> {
        let digits = name
            .strip_prefix(self.prefix.as_str())?
            .strip_suffix(self.suffix.as_str())?;
        if digits.is_empty()
            || digits.len() > SEQ_WIDTH
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        digits.parse().ok()
    }

    /// The canonical name of the segment starting at `seq`.
    pub fn name_for(&self, seq: u64) -> String {
        format!("{}{seq:0SEQ_WIDTH$}{}", self.prefix, self.suffix)
    }

    /// The path whose `.lock` sibling is the store's lock (what
    /// the job takes): `<dir>/.<store>`.
    pub fn lock_anchor(&self, store: &str) -> PathBuf {
        self.dir.join(format!(".{store}"))
    }

    /// The path whose `.quarantine` sibling is the store's quarantine file
    /// (what the job appends to): `<dir>/<store>`.
    pub fn quarantine_anchor(&self, store: &str) -> PathBuf {
        self.dir.join(store)
    }

    /// Whether `name` is one of logkeeper's own files for this store.
    fn is_own(&self, store: &str, name: &str) -> bool {
        name == format!(".{store}.lock")
            || name == format!("{store}.quarantine")
            || self.temp_target(name).is_some()
    }

    /// The segment a temp file name was made for (`.<segment>.lk-tmp.*`).
    pub fn temp_target<'a>(&self, name: &'a str) -> Option<&'a str> {
        let rest = name.strip_prefix('.')?;
        let (target, _) = rest.split_once(".lk-tmp.")?;
        self.seq_of(target).map(|_| target)
    }
}

/// One segment file as listed.
#[derive(Clone, Debug)]
pub struct Segment {
    pub seq: u64,
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub mtime: SystemTime,
    pub ino: u64,
}

/// A directory's segments in seq order, and what else it holds.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// Sorted by (seq, name). The last one is the active segment.
    pub segments: Vec<Segment>,
    /// Files that do not match the pattern (never touched).
    pub unmatched: Vec<PathBuf>,
    /// Temp files a run made (`.<segment>.lk-tmp.*`).
    pub temps: Vec<PathBuf>,
    /// Seqs that more than one file name carries.
    pub duplicate_seqs: Vec<u64>,
}

impl Listing {
    pub fn active(&self) -> Option<&Segment> {
        self.segments.last()
    }

    /// Every segment but the active one, oldest first.
    pub fn sealed(&self) -> &[Segment] {
        &self.segments[..self.segments.len().saturating_sub(1)]
    }

    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }
}

/// List the pattern's directory. A directory that does not exist yet lists
/// empty.
pub fn list(pattern: &Pattern, store: &str) -> Result<Listing> {
    let mut out = Listing::default();
    let entries = match std::fs::read_dir(&pattern.dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("list segment directory", &pattern.dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list segment directory", &pattern.dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            out.unmatched.push(path);
            continue;
        };
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Gone since readdir (a concurrent prune by the app itself).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat segment", &path, e)),
        };
        if pattern.temp_target(&name).is_some() {
            out.temps.push(path);
            continue;
        }
        match pattern.seq_of(&name) {
            Some(seq) if meta.file_type().is_file() => out.segments.push(Segment {
                seq,
                name,
                path,
                size: meta.len(),
                mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                ino: meta.ino(),
            }),
            _ if pattern.is_own(store, &name) => {}
            _ => out.unmatched.push(path),
        }
    }
    out.segments
        .sort_unstable_by(|a, b| (a.seq, &a.name).cmp(&(b.seq, &b.name)));
    out.unmatched.sort();
    out.temps.sort();
    for w in out.segments.windows(2) {
        if w[0].seq == w[1].seq && out.duplicate_seqs.last() != Some(&w[0].seq) {
            out.duplicate_seqs.push(w[0].seq);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_only_prefix_digits_suffix() {
        let p = Pattern::parse(Path::new("/d/events-{seq}.jsonl")).unwrap();
        assert_eq!(p.seq_of("events-00000000000000000042.jsonl"), Some(42));
        assert_eq!(p.seq_of("events-7.jsonl"), Some(7));
        assert_eq!(p.seq_of("events-.jsonl"), None);
        assert_eq!(p.seq_of("events-12a.jsonl"), None);
        assert_eq!(p.seq_of("events-000000000000000000001.jsonl"), None);
        assert_eq!(p.seq_of("events-99999999999999999999.jsonl"), None);
        assert_eq!(p.name_for(42), "events-00000000000000000042.jsonl");
        assert_eq!(
            p.temp_target(".events-00000000000000000042.jsonl.lk-tmp.Ab12"),
            Some("events-00000000000000000042.jsonl")
        );
        assert!(Pattern::parse(Path::new("/d/events.jsonl")).is_err());
        assert!(Pattern::parse(Path::new("/d/{seq}/e-{seq}")).is_err());
        assert!(Pattern::parse(Path::new("/d/{seq}")).is_err());
    }

    #[test]
    fn listing_orders_by_number_and_reports_strangers() {
        let d = tempfile::tempdir().unwrap();
        let p = Pattern::parse(&d.path().join("e-{seq}.log")).unwrap();
        for n in [
            "e-10.log",
            "e-9.log",
            "e-00000000000000000009.log",
            "notes.txt",
        ] {
            std::fs::write(d.path().join(n), b"").unwrap();
        }
        std::fs::write(d.path().join(".s.lock"), b"").unwrap();
        std::fs::write(d.path().join("s.quarantine"), b"").unwrap();
        let l = list(&p, "s").unwrap();
        let names: Vec<_> = l.segments.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["e-00000000000000000009.log", "e-9.log", "e-10.log"]);
        assert_eq!(l.duplicate_seqs, [9]);
        assert_eq!(l.unmatched, [d.path().join("notes.txt")]);
        assert_eq!(l.active().unwrap().seq, 10);
    }
}
