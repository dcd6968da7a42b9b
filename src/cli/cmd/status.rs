//! `logkeeper status`: each store's health, with the exit codes of G6.

use chrono::Local;
use logkeeper::config::Config;
use logkeeper::status::{StoreStatus, exit_code, fmt_time, store_status};
use serde::Serialize;

use super::{human_ms, summary};
use crate::cli::Cli;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stores to report (all if none)
    pub names: Vec<String>,
    /// Print one JSON document (fields in the README)
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
    daemon: Option<&'a logkeeper::schedule::daemon::DaemonStatus>,
    /// What `schedule install` registered for this config (null: nothing).
    schedule_install: Option<&'a logkeeper::schedule::install::Registration>,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let paths = cli.paths()?;
    let config = Config::load(&paths.config)?;
    let stores = config.select(&args.names, true)?;
    let now = Local::now();
    let daemon = logkeeper::schedule::daemon::status(&paths);
    let statuses: Vec<StoreStatus> = stores
        .into_iter()
        .map(|s| {
            let mut st = store_status(&paths, s, now);
            if let Some(d) = &daemon {
                logkeeper::status::with_daemon(&mut st, d);
            }
            st
        })
        .collect();
    // `crontab -l` only when the registration is a crontab block.
    let crontab = ["crontab".to_string()];
    let crontab_cmd = std::env::var("LOGKEEPER_CRONTAB")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.split_whitespace().map(String::from).collect::<Vec<_>>());
    let reg = logkeeper::schedule::install::registration(
        &paths.state_dir,
        &paths.config,
        Some(crontab_cmd.as_deref().unwrap_or(&crontab)),
    );
    let code = exit_code(&statuses);
    if args.json {
        println!(
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
        print!("{}", table(&statuses));
        match &daemon {
            Some(d) if d.running => println!(
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
            Some(d) => println!(
                "daemon: NOT running (pid {} on {}, started {}, exited without cleaning up)",
                d.info.pid,
                d.info.host,
                fmt_time(d.info.started_at)
            ),
            None => println!("daemon: not running"),
        }
        match &reg {
            Some(r) => print!("{}", super::schedule::describe(r)),
            None => println!("schedule: not installed (`logkeeper schedule install`)"),
        }
    }
    Ok(code)
}

/// The human status table, with each unhealthy store's reasons below it.
pub fn table(statuses: &[StoreStatus]) -> String {
    let mut rows = vec![[
        "STORE".to_string(),
        "HEALTH".into(),
        "LAST RUN".into(),
        "OUTCOME".into(),
        "TOOK".into(),
        "LAST SUCCESS".into(),
        "NEXT RUN".into(),
    ]];
    for s in statuses {
        let (when, outcome, took) = match &s.last_run {
            Some(r) => (
                fmt_time(r.finished_at),
                r.outcome.as_str().to_string(),
                human_ms(r.duration_ms),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        rows.push([
            s.name.clone(),
            s.health.as_str().into(),
            when,
            outcome,
            took,
            s.last_success
                .as_ref()
                .map_or("-".into(), |r| fmt_time(r.finished_at)),
            s.next_run
                .map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M").to_string()),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            continue;
        }
        let s = &statuses[n - 1];
        if let Some(r) = &s.last_run {
            out.push_str(&format!("  last run: {}\n", summary(r)));
        }
        if let Some(h) = &s.running {
            out.push_str(&format!("  running now: {h}\n"));
        }
        for reason in &s.reasons {
            out.push_str(&format!("  ! {reason}\n"));
        }
        for w in &s.writers.openers {
            out.push_str(&format!(
                "  writer: pid {} ({}) fd {} {} on {}\n",
                w.pid,
                w.program,
                w.fd,
                w.flags,
                w.file.display()
            ));
        }
        if s.writers.unreadable > 0 {
            out.push_str(&format!(
                "  writer census: {} process(es) could not be inspected (another user's?); it may be incomplete\n",
                s.writers.unreadable
            ));
        }
        for w in &s.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
        for note in &s.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
    }
    out
}
