//! `logkeeper sync now`: run the job for the named stores.

use crate::Paths;
use crate::cli::out::outln;
use crate::config::Config;
use crate::job::record::RunRecord;
use crate::job::{SyncOptions, Trigger, sync_store};
use crate::ops::metrics;
use clap::Subcommand;
use serde::Serialize;

use crate::cli::render::print_run;

#[derive(Debug, Subcommand)]
pub enum SyncCmd {
    /// Compact the named stores (or all with --all) now
    Now(NowArgs),
}

#[derive(Debug, clap::Args)]
pub struct NowArgs {
    /// Stores to sync (all of them with --all; the only one if there is one)
    pub names: Vec<String>,
    /// Sync every store in the config
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// Wait for a run that holds a store's lock instead of exiting 75
    #[arg(long)]
    pub wait: bool,
    /// Compact even if the log grew less than min_growth
    #[arg(long)]
    pub force: bool,
    /// Print one JSON document (fields in docs/json.md)
    #[arg(long)]
    pub json: bool,
    /// Rewrite this Prometheus textfile after the runs [default: the
    /// config's `metrics_file`]
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<std::path::PathBuf>,
    /// Report what a run would do (lines dropped, tombstones, quarantined,
    /// per key group, writers, min_growth) without writing or locking
    #[arg(long, conflicts_with_all = ["wait", "metrics_file"])]
    pub dry_run: bool,
    /// What started this run; scheduled triggers record a held lock as a skip
    #[arg(long, value_enum, default_value_t = Trigger::Manual, hide = true)]
    pub trigger: Trigger,
}

#[derive(Serialize)]
struct SyncJson<'a> {
    runs: &'a [RunRecord],
    exit_code: u8,
}

pub fn run(paths: &Paths, cmd: &SyncCmd) -> anyhow::Result<u8> {
    let SyncCmd::Now(args) = cmd;
    let config = Config::load(&paths.config)?;
    tracing::debug!(
        "config {}: {} store(s), state in {}",
        paths.config.display(),
        config.stores.len(),
        paths.state_dir.display()
    );
    let stores = config.select(&args.names, args.all)?;
    // B.8: a store with an invalid table is refused on its own; the others
    // run. Only the whole set (no names) can include one.
    let refused: &[_] = if args.names.is_empty() {
        &config.broken
    } else {
        &[]
    };
    for b in refused {
        eprintln!(
            "logkeeper: store {:?} not run: {}",
            b.name,
            b.error(&config.path)
        );
    }
    if args.dry_run {
        let code = crate::cli::cmd::dry_run::run(paths, &stores, args.force, args.json)?;
        return Ok(code.max(crate::cli::exit::of_runs(&[], refused.len())));
    }
    let opts = SyncOptions {
        trigger: args.trigger,
        wait: args.wait,
        force: args.force,
    };
    // SIGTERM (systemd stopping a timer's job) or SIGINT stops a run at
    // its next safe point, recorded, instead of killing it silently.
    crate::job::interrupt::install();
    let show_progress = crate::cli::progress::wanted(args.json);
    let mut runs = Vec::with_capacity(stores.len());
    for store in stores {
        let bar = show_progress.then(|| crate::cli::progress::Bar::start(&store.name));
        let rec = sync_store(paths, store, &opts);
        drop(bar);
        if !args.json {
            print_run(&rec);
        }
        runs.push(rec);
        if crate::job::interrupt::received().is_some() {
            // The stores after this one are not started.
            break;
        }
    }
    if let Some(path) = args.metrics_file.as_ref().or(config.metrics_file.as_ref()) {
        // The runs stand whatever happens to the metrics file.
        if let Err(e) = metrics::write(paths, &config.stores, &config.broken, &config.path, path) {
            eprintln!("logkeeper: warning: {e}");
        }
    }
    let mut code = crate::cli::exit::of_runs(&runs, refused.len());
    if let Some(signal) = crate::job::interrupt::received() {
        eprintln!(
            "logkeeper: interrupted by {signal}; each run stopped at a safe point and recorded itself"
        );
        if code == 0 {
            code = 1;
        }
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&SyncJson {
                runs: &runs,
                exit_code: code
            })?
        );
    }
    Ok(code)
}
