//! `logkeeper sync now`: run the job for the named stores.

use clap::Subcommand;
use logkeeper::config::Config;
use logkeeper::error::{EXIT_BUSY, EXIT_FAILED};
use logkeeper::job::record::{Outcome, RunRecord};
use logkeeper::job::{SyncOptions, sync_store};
use logkeeper::ops::metrics;
use serde::Serialize;

use super::{human_ms, summary};
use crate::cli::Cli;

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
    /// Print one JSON document (fields in the README)
    #[arg(long)]
    pub json: bool,
    /// Rewrite this Prometheus textfile after the runs [default: the
    /// config's `metrics_file`]
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<std::path::PathBuf>,
    /// What started this run; scheduled triggers record a held lock as a skip
    #[arg(long, default_value = "manual", value_parser = ["manual", "schedule", "timer", "cron", "daemon"], hide = true)]
    pub trigger: String,
}

#[derive(Serialize)]
struct SyncJson<'a> {
    runs: &'a [RunRecord],
    exit_code: u8,
}

pub fn run(cli: &Cli, cmd: &SyncCmd) -> anyhow::Result<u8> {
    let SyncCmd::Now(args) = cmd;
    let paths = cli.paths()?;
    let config = Config::load(&paths.config)?;
    let stores = config.select(&args.names, args.all)?;
    let opts = SyncOptions {
        trigger: args.trigger.clone(),
        wait: args.wait,
        force: args.force,
    };
    let show_progress = crate::cli::progress::wanted(args.json);
    let mut runs = Vec::with_capacity(stores.len());
    for store in stores {
        let bar = show_progress.then(|| crate::cli::progress::Bar::start(&store.name));
        let rec = sync_store(&paths, store, &opts);
        drop(bar);
        if !args.json {
            print_run(&rec);
        }
        runs.push(rec);
    }
    if let Some(path) = args.metrics_file.as_ref().or(config.metrics_file.as_ref()) {
        // The runs stand whatever happens to the metrics file.
        if let Err(e) = metrics::write(&paths, &config.stores, path) {
            eprintln!("logkeeper: warning: {e}");
        }
    }
    let code = exit_code(&runs);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&SyncJson {
                runs: &runs,
                exit_code: code
            })?
        );
    }
    Ok(code)
}

/// 1 if any run failed, else 75 if any found its store busy, else 0.
pub fn exit_code(runs: &[RunRecord]) -> u8 {
    if runs.iter().any(|r| r.outcome == Outcome::Error) {
        EXIT_FAILED
    } else if runs.iter().any(|r| r.outcome == Outcome::Busy) {
        EXIT_BUSY
    } else {
        0
    }
}

pub fn print_run(r: &RunRecord) {
    let line = format!(
        "{}: {} in {}: {}",
        r.store,
        r.outcome.as_str(),
        human_ms(r.duration_ms),
        summary(r)
    );
    match r.outcome {
        Outcome::Error | Outcome::Busy => eprintln!("logkeeper: {line}"),
        _ => println!("{line}"),
    }
    let s = &r.stats;
    if let Some(p) = &s.rotated {
        println!("  rotated: {}", p.display());
    }
    if let Some(p) = &s.quarantine_file {
        println!("  quarantine: {}", p.display());
    }
    for p in &s.pruned {
        println!("  pruned: {}", p.display());
    }
    for p in &s.recovered {
        println!(
            "  recovered: removed {} left by an interrupted run",
            p.display()
        );
    }
}
