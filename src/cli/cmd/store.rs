//! `logkeeper store add | list | remove`: edit the config file.

use crate::cli::out::outln;
use std::path::{Path, PathBuf};

use crate::Paths;
use crate::config::{self, Config, NewStore};
use crate::paths::absolute;
use clap::Subcommand;

use crate::cli::exit;

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Declare a store (creates the config file if needed)
    Add(Box<AddArgs>),
    /// List the declared stores
    List,
    /// Remove a store from the config (its log and records are left alone)
    Remove {
        /// The store to remove
        name: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The store's name (letters, digits, '-', '_', '.')
    pub name: String,
    /// The live JSONL log
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "segments",
        conflicts_with = "segments"
    )]
    pub log: Option<PathBuf>,
    /// A directory of segments the app rotates itself, e.g.
    /// "dir/events-{seq}.jsonl" ({seq}: the start seq in each name)
    #[arg(long, value_name = "PATTERN")]
    pub segments: Option<PathBuf>,
    /// Segmented: newest sealed segments to keep (the active one always stays)
    #[arg(long, value_name = "N", conflicts_with = "log")]
    pub keep_files: Option<usize>,
    /// Prune rotated files (or sealed segments) older than this, e.g. "14d"
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Segmented: total size to keep the segments under, e.g. "2GiB"
    #[arg(long, value_name = "SIZE", conflicts_with = "log")]
    pub max_bytes: Option<String>,
    /// Segmented, keyed: compact sealed segments only once this old, e.g. "1h"
    #[arg(long, value_name = "DURATION", conflicts_with = "log")]
    pub min_compaction_lag: Option<String>,
    /// Segmented, keyed: keep tombstones this long, e.g. "1d"
    #[arg(long, value_name = "DURATION", conflicts_with = "log")]
    pub delete_retention: Option<String>,
    /// Segmented, keyed: compact when this share of sealed bytes is new (0-1)
    #[arg(long, value_name = "RATIO", conflicts_with = "log")]
    pub min_dirty_ratio: Option<f64>,
    /// Segmented: JSON pointer to each event's seq (health reports events out of order)
    #[arg(long, value_name = "PTR", conflicts_with = "log")]
    pub seq: Option<String>,
    /// JSON pointer to a key field; repeat for a composite key (none: append-only)
    #[arg(long = "key", value_name = "PTR")]
    pub key: Vec<String>,
    /// JSON pointer to the operation field
    #[arg(long, value_name = "PTR")]
    pub op: Option<String>,
    /// A value of the operation that deletes the key; repeatable
    #[arg(long = "delete", value_name = "V")]
    pub delete: Vec<String>,
    /// 5-field crontab schedule, local time (e.g. "*/30 * * * *")
    #[arg(long, value_name = "CRON")]
    pub schedule: Option<String>,
    /// Rotated pre-compaction files to keep
    #[arg(long, value_name = "N")]
    pub keep_rotated: Option<usize>,
    /// Compact only when the log grew by this fraction since the last
    /// compaction (0.5 = 50%; `sync now --force` ignores it)
    #[arg(long, value_name = "RATIO", conflicts_with = "segments")]
    pub min_growth: Option<f64>,
    /// Append-only stores: once the log is larger, move it aside as a
    /// rotated file and start an empty one
    #[arg(long, value_name = "BYTES", conflicts_with = "segments")]
    pub rotate_bytes: Option<u64>,
    /// A random delay before each scheduled run, e.g. "5m"
    #[arg(long, value_name = "DURATION")]
    pub jitter: Option<String>,
    /// Segmented: how long merged inputs wait before they are deleted, e.g. "60s"
    #[arg(long, value_name = "DURATION", conflicts_with = "log")]
    pub file_delete_delay: Option<String>,
    /// The daemon also compacts once the log grew by this fraction since the
    /// last compaction (0.5 = 50%) and is at least --min-size
    #[arg(long, value_name = "RATIO", conflicts_with = "segments")]
    pub growth: Option<f64>,
    /// With --growth: no growth run below this size, e.g. "64MiB" [default: 64MiB]
    #[arg(long, value_name = "SIZE", requires = "growth")]
    pub min_size: Option<String>,
    /// With --growth: the least time between two growth runs, e.g. "5m" [default: 1m]
    #[arg(long, value_name = "DURATION", requires = "growth")]
    pub min_interval: Option<String>,
    /// JSON pointer to each event's time, e.g. "/created_at": `replay
    /// --as-of` then stops exactly at the time asked
    #[arg(long, value_name = "PTR")]
    pub time: Option<String>,
}

pub fn run(paths: &Paths, cmd: &StoreCmd) -> anyhow::Result<u8> {
    match cmd {
        StoreCmd::Add(a) => add(paths, a)?,
        StoreCmd::List => list(paths)?,
        StoreCmd::Remove { name } => {
            config::remove_store(&paths.config, name)?;
            outln!("removed store {name:?} from {}", paths.config.display());
        }
    }
    Ok(exit::OK)
}

/// `store add`: the new store, appended to the config file.
fn add(paths: &Paths, a: &AddArgs) -> anyhow::Result<()> {
    // `~` reaches us unexpanded when quoted; relative paths are
    // taken from the current directory, as the user typed them.
    let cwd = absolute(Path::new("."))?;
    let expand = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| config::expand_path(&p.to_string_lossy(), &cwd))
    };
    let segments = expand(&a.segments);
    let new = NewStore {
        name: a.name.clone(),
        log: expand(&a.log).or(segments.clone()).unwrap_or_default(),
        key: a.key.clone(),
        op: a.op.clone(),
        delete: a.delete.clone(),
        schedule: a.schedule.clone(),
        keep_rotated: a.keep_rotated,
        segments,
        keep_files: a.keep_files,
        max_age: a.max_age.clone(),
        max_bytes: a.max_bytes.clone(),
        min_compaction_lag: a.min_compaction_lag.clone(),
        delete_retention: a.delete_retention.clone(),
        min_dirty_ratio: a.min_dirty_ratio,
        seq: a.seq.clone(),
        min_growth: a.min_growth,
        rotate_bytes: a.rotate_bytes,
        jitter: a.jitter.clone(),
        file_delete_delay: a.file_delete_delay.clone(),
        growth: a.growth,
        min_size: a.min_size.clone(),
        min_interval: a.min_interval.clone(),
        time: a.time.clone(),
    };
    config::add_store(&paths.config, &new)?;
    // C.15: a run skips a missing log only if its folder exists.
    if let Some(dir) = new.log.parent().filter(|d| !d.is_dir()) {
        eprintln!(
            "logkeeper: warning: {} does not exist: runs of {:?} fail until it does (create it, or fix the path with `logkeeper store remove {}` and `store add`)",
            dir.display(),
            a.name,
            a.name
        );
    }
    outln!(
        "added {}store {:?} ({}) to {}",
        if new.segments.is_some() {
            "segmented "
        } else {
            ""
        },
        a.name,
        new.log.display(),
        paths.config.display()
    );
    Ok(())
}

/// `store list`: one line per store, and the stores the config cannot run.
fn list(paths: &Paths) -> anyhow::Result<()> {
    let config = Config::load_or_empty(&paths.config)?;
    if config.stores.is_empty() && config.broken.is_empty() {
        outln!("no stores in {}", paths.config.display());
    }
    for s in &config.stores {
        let kind = if s.segments().is_some() {
            "segments "
        } else {
            ""
        };
        let key = if s.key.is_empty() {
            "append-only".to_string()
        } else {
            format!("key {}", s.key.join(" + "))
        };
        let schedule = s
            .schedule
            .as_ref()
            .map_or("no schedule".into(), |c| format!("schedule {:?}", c.expr()));
        outln!(
            "{}\t{kind}{}\t{key}\t{schedule}",
            s.name,
            s.path().display()
        );
    }
    // B.8: listed (and said on stderr), not fatal to the listing.
    for b in &config.broken {
        outln!(
            "{}\t{}\tCONFIG ERROR (not run)",
            b.name,
            b.log.as_deref().unwrap_or("-")
        );
        eprintln!("logkeeper: {}", b.error(&config.path));
    }
    Ok(())
}
