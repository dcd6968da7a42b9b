//! The built-in example: a realistic keyed event log, like a coordination
//! daemon's entity log (`SET`/`DEL` of items keyed by type and id), with a few
//! malformed lines and a torn last line, plus a config and state of its own.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::config::{self, NewStore, StoreConfig};
use crate::error::{IoContext, Result};
use crate::paths::Paths;

/// What the demo log holds.
#[derive(Clone, Debug)]
pub struct DemoLog {
    pub events: usize,
    pub keys: usize,
    pub malformed: usize,
    pub torn: bool,
    pub seed: u64,
}

impl Default for DemoLog {
    fn default() -> Self {
        DemoLog {
            events: 200_000,
            keys: 20_000,
            malformed: 3,
            torn: true,
            seed: 7,
        }
    }
}

/// A small deterministic PRNG (SplitMix64): the demo must be reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

impl DemoLog {
    /// Write the log to `path` (replacing it).
    pub fn write(&self, path: &Path) -> Result<()> {
        let types = ["Task", "Agent", "Session", "Message"];
        let words = [
            "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
        ];
        let states = ["open", "running", "done", "failed"];
        let mut rng = Rng(self.seed);
        let f = std::fs::File::create(path).ctx("create demo log", path)?;
        let mut w = BufWriter::new(f);
        let every = (self.events / (self.malformed + 1)).max(1);
        let mut write = |w: &mut BufWriter<std::fs::File>| -> std::io::Result<()> {
            for i in 0..self.events {
                if self.malformed > 0 && i > 0 && i % every == 0 && i / every <= self.malformed {
                    writeln!(
                        w,
                        "{{\"change_type\":\"SET\",\"item_type\":\"Task\",\"item\":{{\"id\":"
                    )?;
                }
                let k = rng.below(self.keys as u64);
                let t = types[(k % 4) as usize];
                let created = format!("2026-11-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60);
                if rng.below(100) < 5 {
                    writeln!(
                        w,
                        r#"{{"change_type":"DEL","item_type":"{t}","item":{{"id":"{}-{k:08}"}},"created_at":"{created}"}}"#,
                        t.to_lowercase()
                    )?;
                } else {
                    let title: Vec<&str> = (0..4).map(|_| words[rng.below(8) as usize]).collect();
                    writeln!(
                        w,
                        r#"{{"change_type":"SET","item_type":"{t}","item":{{"id":"{}-{k:08}","title":"{}","status":"{}","owner":"agent-{}","rev":{i},"note":"caf\u00e9 \u2014 \"quoted\""}},"created_at":"{created}"}}"#,
                        t.to_lowercase(),
                        title.join(" "),
                        states[rng.below(4) as usize],
                        rng.below(64)
                    )?;
                }
            }
            if self.torn {
                write!(w, r#"{{"change_type":"SET","item_type":"Task","ite"#)?;
            }
            w.flush()
        };
        write(&mut w).ctx("write demo log", path)
    }
}

/// The demo's own files inside `dir`.
pub struct DemoSetup {
    pub paths: Paths,
    /// The demo store, built in code.
    pub store: StoreConfig,
    pub log: PathBuf,
}

/// The demo store: a keyed store like a coordination daemon's entity log.
pub fn demo_store(log: &Path) -> Result<StoreConfig> {
    StoreConfig::builder("demo", log)
        .key(["/item_type", "/item/id"])
        .op("/change_type")
        .delete(["DEL"])
        .schedule("*/30 * * * *")
        .keep_rotated(3)
        .build()
}

/// The file that marks a directory as made by `logkeeper demo`.
pub const DEMO_MARKER: &str = ".logkeeper-demo";

/// Make `dir` the demo's: create it, or accept it if it is empty or an
/// earlier demo's; anything else is refused.
/// Make `dir` the demo's: a new or empty directory, or one an earlier demo
/// made (its marker), which is emptied first so that demos do not pile up
/// files (C.17). Anything else is [`crate::Error::DemoDirInUse`].
fn claim_dir(dir: &Path) -> Result<()> {
    let marker = dir.join(DEMO_MARKER);
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            let first = entries.next();
            if first.is_some() && !marker.exists() {
                return Err(crate::Error::DemoDirInUse {
                    dir: dir.to_path_buf(),
                });
            }
            for e in first.into_iter().chain(entries).flatten() {
                let path = e.path();
                if path == marker {
                    continue;
                }
                // Not following links: a link is removed, not its target.
                let gone = match e.file_type() {
                    Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                    _ => std::fs::remove_file(&path),
                };
                gone.ctx("remove the last demo's", &path)?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).ctx("create demo directory", dir)?;
        }
        Err(e) => return Err(crate::Error::io("list demo directory", dir, e)),
    }
    std::fs::write(
        &marker,
        "This directory was made by `logkeeper demo`; it may be deleted.\n",
    )
    .ctx("write", &marker)
}

/// Create the demo store in `dir`: `events.jsonl`, `state/`, and a
/// `config.toml` declaring the same store for the CLI commands the demo
/// suggests next, never touching the user's own config or state.
///
/// Refuses a directory that holds anything but an earlier demo (marked by
/// [`DEMO_MARKER`]): the demo replaces `events.jsonl` and `config.toml`, and
/// a user's own files by those names must never be overwritten.
pub fn setup(dir: &Path, log: &DemoLog) -> Result<DemoSetup> {
    claim_dir(dir)?;
    let dir = crate::paths::absolute(dir)?;
    let log_path = dir.join("events.jsonl");
    let config_path = dir.join("config.toml");
    let state_dir = dir.join("state");
    log.write(&log_path)?;
    let _ = std::fs::remove_file(&config_path);
    std::fs::write(
        &config_path,
        "# logkeeper demo config: one keyed store, written by `logkeeper demo`.\n",
    )
    .ctx("write demo config", &config_path)?;
    let store = demo_store(&log_path)?;
    config::add_store(
        &config_path,
        &NewStore {
            name: store.name.clone(),
            log: store.path().to_path_buf(),
            key: store.key.clone(),
            op: store.op.clone(),
            delete: store.delete.clone(),
            schedule: store.schedule.as_ref().map(|s| s.expr().to_string()),
            keep_rotated: store.log_policy().map(|p| p.keep_rotated),
            ..Default::default()
        },
    )?;
    Ok(DemoSetup {
        paths: Paths {
            config: config_path,
            state_dir,
        },
        store,
        log: log_path,
    })
}

/// The demo's segmented store: an account change feed the app rotates
/// itself, `feed/events-<20-digit seq>.jsonl`.
#[derive(Clone, Debug)]
pub struct DemoFeed {
    pub segments: u64,
    pub events_per_segment: u64,
    pub accounts: u64,
    /// Newest sealed segments the store keeps.
    pub keep_files: usize,
}

impl Default for DemoFeed {
    fn default() -> Self {
        DemoFeed {
            segments: 30,
            events_per_segment: 2_000,
            accounts: 3_000,
            keep_files: 20,
        }
    }
}

impl DemoFeed {
    /// Write the segments into `dir` as the app would: seq-numbered events,
    /// a new file every `events_per_segment`, named by its first seq. One
    /// sealed segment has a malformed line, another a torn last line (the
    /// writer crashed and rolled to a new file on restart).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).ctx("create demo feed directory", dir)?;
        let mut rng = Rng(11);
        let mut seq = 1u64;
        for n in 0..self.segments {
            let path = dir.join(format!("events-{seq:020}.jsonl"));
            let f = std::fs::File::create(&path).ctx("create demo segment", &path)?;
            let mut w = BufWriter::new(f);
            let mut write = |w: &mut BufWriter<std::fs::File>| -> std::io::Result<()> {
                for i in 0..self.events_per_segment {
                    let a = rng.below(self.accounts);
                    if n == self.segments - 5 && i == 7 {
                        writeln!(w, r#"{{"seq":{seq},"op":"SET","account":"#)?;
                    } else if rng.below(100) < 3 {
                        writeln!(w, r#"{{"seq":{seq},"op":"CLOSE","account":"acct-{a:05}"}}"#)?;
                    } else {
                        writeln!(
                            w,
                            r#"{{"seq":{seq},"op":"SET","account":"acct-{a:05}","balance":{},"currency":"EUR"}}"#,
                            rng.below(1_000_000)
                        )?;
                    }
                    seq += 1;
                }
                if n == self.segments - 3 {
                    write!(w, r#"{{"seq":{seq},"op":"SET","acc"#)?;
                }
                w.flush()
            };
            write(&mut w).ctx("write demo segment", &path)?;
        }
        Ok(())
    }
}

/// Add the segmented store `feed` to the demo's config, its segments in
/// `<dir>/feed/`; returns that directory and the store.
pub fn setup_feed(demo: &DemoSetup, feed: &DemoFeed) -> Result<(PathBuf, StoreConfig)> {
    let dir = crate::io::durable::parent_dir(&demo.paths.config).join("feed");
    let _ = std::fs::remove_dir_all(&dir);
    feed.write(&dir)?;
    let config = config::add_store(
        &demo.paths.config,
        &NewStore {
            name: "feed".into(),
            segments: Some(dir.join("events-{seq}.jsonl")),
            key: vec!["/account".into()],
            op: Some("/op".into()),
            delete: vec!["CLOSE".into()],
            schedule: Some("*/30 * * * *".into()),
            keep_files: Some(feed.keep_files),
            max_age: Some("14d".into()),
            max_bytes: Some("2GiB".into()),
            seq: Some("/seq".into()),
            ..Default::default()
        },
    )?;
    Ok((dir, config.store("feed")?.clone()))
}
