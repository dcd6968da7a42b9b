//! Segmented stores: a directory of `events-<seq>.jsonl` files that the app
//! rotates itself. The kill tests run a real change-feed writer process
//! (`feed_writer.py`) throughout; the others build the directory by hand.

mod crash;
mod kills;
mod policy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

pub const WRITER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/segments/feed_writer.py"
);

/// The seq in a segment's name, as the app's readers parse it.
pub fn seq_of_name(name: &str) -> Option<u64> {
    name.strip_prefix("events-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// The segments of `dir`, sorted by the seq in their names.
pub fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let seq = seq_of_name(e.file_name().to_str()?)?;
            Some((seq, e.path()))
        })
        .collect();
    v.sort();
    v
}

/// The complete lines of a file (a torn last line is skipped, as the
/// readers do); a file that vanished since the listing reads as empty.
pub fn complete_lines(p: &Path) -> Vec<Vec<u8>> {
    let bytes = match std::fs::read(p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("read {}: {e}", p.display()),
    };
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes[..end]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

pub fn seq_of_line(l: &[u8]) -> u64 {
    let v: Value =
        serde_json::from_slice(l).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(l)));
    v["seq"].as_u64().expect("seq")
}

/// `read_since(cursor)` as the app's readers do it: list the directory,
/// sort by the seq in the name, and read every file whose range
/// `[seq, next seq)` may hold events past the cursor. Returns the seqs of
/// the events past the cursor, in the order read.
pub fn read_since(dir: &Path, cursor: u64) -> Vec<u64> {
    let segs = segments(dir);
    let mut out = Vec::new();
    for (i, (_, path)) in segs.iter().enumerate() {
        if let Some((next, _)) = segs.get(i + 1)
            && *next <= cursor + 1
        {
            continue; // every event in this file is at or before the cursor
        }
        for l in complete_lines(path) {
            let s = seq_of_line(&l);
            if s > cursor {
                out.push(s);
            }
        }
    }
    out
}

/// Fold lines in order: the latest line per `account`, a CLOSE removes it.
pub fn fold_accounts<'a>(
    lines: impl IntoIterator<Item = &'a Vec<u8>>,
) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for l in lines {
        let v: Value = serde_json::from_slice(l).unwrap();
        let k = v["account"].as_str().unwrap().to_string();
        if v["op"] == "CLOSE" {
            m.remove(&k);
        } else {
            m.insert(k, l.clone());
        }
    }
    m
}

/// Every complete line of the directory, files in seq order.
pub fn dir_lines(dir: &Path) -> Vec<Vec<u8>> {
    segments(dir)
        .iter()
        .flat_map(|(_, p)| complete_lines(p))
        .collect()
}

/// Write a segment by hand: `events-<seq>.jsonl` with `n` tick events.
pub fn write_segment(dir: &Path, seq: u64, n: u64) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(format!("events-{seq:020}.jsonl"));
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!("{{\"seq\":{},\"kind\":\"tick\"}}\n", seq + i));
    }
    std::fs::write(&p, s).unwrap();
    p
}

/// Declare a segmented store `feed` on `dir/events-{seq}.jsonl` with the
/// given extra TOML lines.
pub fn seg_store(env: &Env, dir: &Path, extra: &str) {
    env.write_config(&format!(
        "[[store]]\nname = \"feed\"\nsegments = \"{}/events-{{seq}}.jsonl\"\n{extra}\n",
        dir.display()
    ));
}

/// The `stats.segments` of the store's last run.
pub fn last_segments(env: &Env) -> Value {
    env.last_run("feed").expect("a last run")["stats"]["segments"].clone()
}
