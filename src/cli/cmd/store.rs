//! `logkeeper store add | list | remove`: edit the config file.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use logkeeper::Paths;
use logkeeper::config::{self, Config, NewStore};
use logkeeper::paths::absolute;

use crate::cli::exit;

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Declare a store (creates the config file if needed)
    Add(AddArgs),
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
    #[arg(long, value_name = "PATH")]
    pub log: PathBuf,
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
}

pub fn run(paths: &Paths, cmd: &StoreCmd) -> anyhow::Result<u8> {
    match cmd {
        StoreCmd::Add(a) => {
            let new = NewStore {
                name: a.name.clone(),
                // `~` reaches us unexpanded when quoted; relative paths are
                // taken from the current directory, as the user typed them.
                log: config::expand_path(&a.log.to_string_lossy(), &absolute(Path::new("."))?),
                key: a.key.clone(),
                op: a.op.clone(),
                delete: a.delete.clone(),
                schedule: a.schedule.clone(),
                keep_rotated: a.keep_rotated,
            };
            config::add_store(&paths.config, &new)?;
            println!(
                "added store {:?} ({}) to {}",
                a.name,
                new.log.display(),
                paths.config.display()
            );
        }
        StoreCmd::List => {
            let config = Config::load_or_empty(&paths.config)?;
            if config.stores.is_empty() {
                println!("no stores in {}", paths.config.display());
            }
            for s in &config.stores {
                let key = if s.key.is_empty() {
                    "append-only".to_string()
                } else {
                    format!("key {}", s.key.join(" + "))
                };
                let schedule = s
                    .schedule
                    .as_ref()
                    .map_or("no schedule".into(), |c| format!("schedule {:?}", c.expr()));
                println!("{}\t{}\t{key}\t{schedule}", s.name, s.log.display());
            }
        }
        StoreCmd::Remove { name } => {
            config::remove_store(&paths.config, name)?;
            println!("removed store {name:?} from {}", paths.config.display());
        }
    }
    Ok(exit::OK)
}
