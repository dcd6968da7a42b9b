//! `logkeeper daemon`: fire each store's schedule until SIGTERM/SIGINT.

use crate::Paths;
use crate::schedule::daemon::{Daemon, DaemonOptions, Event};
use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::exit;
use crate::cli::render::{human_bytes, human_ms, summary};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// After SIGTERM/SIGINT, how long running jobs may take to finish
    /// (e.g. 30s, 2m); an unfinished job is abandoned safely
    #[arg(long, default_value = "30s", value_parser = crate::config::parse_duration)]
    pub stop_timeout: std::time::Duration,
    /// Rewrite this Prometheus textfile at start-up and after every run
    /// [default: the config's `metrics_file`]
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<std::path::PathBuf>,
}

fn say(msg: String) {
    eprintln!(
        "{} logkeeper daemon: {msg}",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
    );
}

fn print(e: &Event) {
    match e {
        Event::Started {
            pid,
            config,
            stores,
        } => say(format!(
            "started (pid {pid}) for {} with {} store(s): {}",
            config.display(),
            stores.len(),
            stores.join(", ")
        )),
        Event::Fire {
            store,
            scheduled,
            catch_up,
        } => say(format!(
            "store {store}: {} run for {}",
            if *catch_up { "catch-up" } else { "scheduled" },
            scheduled.format("%Y-%m-%d %H:%M %Z")
        )),
        Event::Growth { store, now } => say(growth_line(store, now)),
        Event::Ran(r) => say(format!(
            "store {}: {} in {}: {}",
            r.store,
            r.outcome.as_str(),
            human_ms(r.duration_ms),
            summary(r)
        )),
        Event::BackingOff {
            store,
            failures,
            until,
        } => say(format!(
            "store {store}: {failures} failures in a row; backing off until {}",
            crate::status::fmt_time(*until)
        )),
        Event::SkippedForBackoff {
            store,
            scheduled,
            until,
        } => say(format!(
            "store {store}: skipped the run for {} (backing off until {})",
            scheduled.format("%Y-%m-%d %H:%M %Z"),
            crate::status::fmt_time(*until)
        )),
        Event::Reloaded { stores } => say(format!(
            "config reloaded: {} store(s): {}",
            stores.len(),
            stores.join(", ")
        )),
        Event::ReloadFailed(err) => say(format!(
            "config reload refused, keeping the old one: {err}{}",
            crate::cli::render::hint(err).map_or(String::new(), |h| format!(" (hint: {h})"))
        )),
        Event::Stopping { signal, running } => say(if running.is_empty() {
            format!("{signal}: stopping")
        } else {
            format!(
                "{signal}: stopping after the running job(s) of {}",
                running.join(", ")
            )
        }),
        Event::Abandoned { running } => say(format!(
            "stop timeout: abandoning the job(s) of {} (the log stays whole; the next run cleans up)",
            running.join(", ")
        )),
        Event::Stopped => say("stopped".into()),
    }
}

/// The line for a growth run: how much the log grew past its threshold.
fn growth_line(store: &str, now: &crate::job::growth::GrowthNow) -> String {
    format!(
        "store {store}: growth run: the log is {}, {} (threshold {:.0}%, min_size {})",
        human_bytes(now.size),
        match (now.baseline_bytes, now.grown) {
            (Some(b), Some(g)) => format!(
                "grown {:.0}% since the last compaction left {}",
                g * 100.0,
                human_bytes(b)
            ),
            (Some(_), None) => "empty after the last compaction".to_string(),
            (None, _) => "never compacted".to_string(),
        },
        now.threshold * 100.0,
        human_bytes(now.min_size)
    )
}

/// Run the scheduler on a current-thread runtime, with SIGTERM/SIGINT as
/// stop and SIGHUP as reload.
pub fn run(paths: &Paths, args: &Args) -> anyhow::Result<u8> {
    // This process is the daemon: it idles between runs (see ops::memory).
    crate::ops::memory::tune_for_long_running();
    let daemon = Daemon::new(
        paths.clone(),
        DaemonOptions {
            stop_timeout: args.stop_timeout,
            metrics_file: args.metrics_file.clone(),
        },
    );
    let handle = daemon.handle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let result = rt.block_on(async {
        // Installed before the daemon starts, so no signal is missed.
        let mut term = signal(SignalKind::terminate()).context("install a SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("install a SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("install a SIGHUP handler")?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => handle.stop("SIGTERM"),
                    _ = int.recv() => handle.stop("SIGINT"),
                    _ = hup.recv() => handle.reload(),
                }
            }
        });
        daemon.run(print).await.map_err(anyhow::Error::from)
    });
    // Do not wait for an abandoned job's thread: exiting is safe (G2).
    rt.shutdown_background();
    result?;
    Ok(exit::OK)
}
