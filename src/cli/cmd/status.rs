//! `logkeeper status`: each store's health, with the exit codes of G6.

use crate::Paths;
use crate::cli::out::{out, outln};
use crate::config::Config;
use crate::status::{StoreStatus, fmt_time, store_status};
use chrono::Local;
use serde::Serialize;

use crate::cli::render::table;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stores to report (all if none)
    pub names: Vec<String>,
    /// Print one JSON document (fields in docs/json.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    config: &'a std::path::Path,
    state_dir: &'a std::path::Path,
    generated_at: chrono::DateTime<Local>,
    stores: &'a [StoreStatus],
    exit_code: u8,
    /// The daemon for this config (null: none has run or it stopped cleanly).
    daemon: Option<&'a crate::schedule::daemon::DaemonStatus>,
    /// What `schedule install` registered for this config (null: nothing).
    schedule_install: Option<&'a crate::schedule::install::Registration>,
}

pub fn run(paths: &Paths, args: &Args) -> anyhow::Result<u8> {
    let config = Config::load(&paths.config)?;
    let stores = config.select(&args.names, true)?;
    let now = Local::now();
    let daemon = crate::schedule::daemon::status(paths);
    let statuses: Vec<StoreStatus> = stores
        .into_iter()
        .map(|s| {
            let mut st = store_status(paths, s, now);
            if let Some(d) = &daemon {
                crate::schedule::daemon::with_daemon(&mut st, d);
            }
            st
        })
        .collect();
    // B.8: with no names, the stores whose table is invalid are shown too
    // (a named one is refused by `select`).
    let mut statuses = statuses;
    if args.names.is_empty() {
        for b in &config.broken {
            eprintln!("logkeeper: {}", b.error(&config.path));
            statuses.push(crate::status::config_error_status(paths, b, &config.path));
        }
    }
    // `crontab -l` only when the registration is a crontab block.
    let crontab = crate::schedule::install::crontab_command();
    let reg =
        crate::schedule::install::registration(&paths.state_dir, &paths.config, Some(&crontab));
    let code = crate::cli::exit::of_statuses(&statuses);
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&StatusJson {
                config: &paths.config,
                state_dir: &paths.state_dir,
                generated_at: now,
                stores: &statuses,
                exit_code: code,
                daemon: daemon.as_ref(),
                schedule_install: reg.as_ref(),
            })?
        );
    } else {
        out!("{}", table(&statuses));
        match &daemon {
            Some(d) if d.running => outln!(
                "daemon: running, pid {} on {} since {}{}",
                d.info.pid,
                d.info.host,
                fmt_time(d.info.started_at),
                d.info
                    .config_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(
                        " (its last config reload was refused: {e})"
                    ))
            ),
            Some(d) => outln!(
                "daemon: NOT running (pid {} on {}, started {}, exited without cleaning up)",
                d.info.pid,
                d.info.host,
                fmt_time(d.info.started_at)
            ),
            None => outln!("daemon: not running"),
        }
        match &reg {
            Some(r) => out!("{}", crate::cli::render::describe(r)),
            None => outln!("schedule: not installed (`logkeeper schedule install`)"),
        }
    }
    Ok(code)
}
