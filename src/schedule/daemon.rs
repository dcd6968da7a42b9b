//! `logkeeper daemon`: one process that fires every store's schedule.
//!
//! Design:
//! - One tokio scheduler loop (current-thread runtime) decides what is due;
//!   each run goes to `spawn_blocking(sync_store)` with trigger `daemon`, so
//!   compaction never blocks the loop and one slow store never delays another.
//! - The loop sleeps in bounded steps ([`MAX_STEP`]) and re-reads the wall
//!   clock each time: monotonic timers stop while the machine is suspended,
//!   so a laptop that wakes past a fire time runs it on the next step.
//! - Catch-up (like systemd's `Persistent=true` and anacron): a store whose
//!   most recent scheduled time passed without a run since (no run record
//!   started at or after it) is due at once — at start-up, after a sleep,
//!   and after a reload. Missed fire times are coalesced into one run.
//! - `jitter`: a random delay in `[0, jitter)` before each run.
//! - Backoff: after [`BACKOFF_AFTER`] consecutive failures a store skips its
//!   fire times until `now + min(1 min * 2^(n-2), 1 h)`; other stores go on.
//! - A held store lock (a manual run) is recorded by the job as `skipped`.
//! - SIGTERM/SIGINT: no new runs; running jobs get `stop_timeout` to finish;
//!   then the daemon exits 0 either way. A job abandoned at exit is safe: the
//!   swap is atomic (G2) and the kernel releases its lock.
//! - SIGHUP, or a change of the config file's mtime/size, reloads the config;
//!   a broken config is reported and the old one kept.
//! - Liveness: `<state>/daemon-<id>.lock` is flocked for the daemon's life (a
//!   second daemon for the same config exits 75); `<state>/daemon-<id>.json`
//!   holds pid, start time and each store's next run and backoff, replaced
//!   atomically, removed at a clean exit. `status` reads it without locking.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Local, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Config, StoreConfig};
use crate::error::{Error, IoContext, Result};
use crate::io::durable;
use crate::job::record::{Outcome, RunRecord, StoreState};
use crate::job::{SyncOptions, sync_store};
use crate::paths::Paths;
use crate::schedule::install::config_id;

/// The longest the loop sleeps before re-reading the wall clock and the
/// config file's mtime.
pub const MAX_STEP: Duration = Duration::from_secs(10);
/// Consecutive failures after which a store backs off.
pub const BACKOFF_AFTER: u32 = 2;
/// The longest backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// How long a store backs off after `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    if failures < BACKOFF_AFTER {
        return Duration::ZERO;
    }
    let exp = (failures - BACKOFF_AFTER).min(16);
    (Duration::from_secs(60) * 2u32.pow(exp)).min(BACKOFF_MAX)
}

#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// How long running jobs may take to finish after SIGTERM/SIGINT.
    pub stop_timeout: Duration,
    /// The Prometheus textfile to rewrite at start-up and after every run,
    /// instead of the config's `metrics_file`.
    pub metrics_file: Option<PathBuf>,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            stop_timeout: Duration::from_secs(30),
            metrics_file: None,
        }
    }
}

/// What the daemon tells its caller (the binary prints these to stderr).
#[derive(Clone, Debug)]
pub enum Event {
    Started {
        pid: u32,
        config: PathBuf,
        stores: Vec<String>,
    },
    Fire {
        store: String,
        scheduled: DateTime<Local>,
        catch_up: bool,
    },
    Ran(Box<RunRecord>),
    BackingOff {
        store: String,
        failures: u32,
        until: DateTime<Utc>,
    },
    SkippedForBackoff {
        store: String,
        scheduled: DateTime<Local>,
        until: DateTime<Utc>,
    },
    Reloaded {
        stores: Vec<String>,
    },
    ReloadFailed(String),
    Stopping {
        signal: &'static str,
        running: Vec<String>,
    },
    Abandoned {
        running: Vec<String>,
    },
    Stopped,
}

/// One store as the daemon sees it (in the daemon file and `status`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DaemonStore {
    pub name: String,
    pub schedule: Option<String>,
    pub next_run: Option<DateTime<Local>>,
    pub running: bool,
    /// Consecutive failed runs.
    pub failures: u32,
    /// No run before this time (backoff after repeated failures).
    pub backoff_until: Option<DateTime<Utc>>,
}

/// The daemon file: who runs, since when, and each store's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    pub host: String,
    pub started_at: DateTime<Utc>,
    pub config: PathBuf,
    pub version: String,
    /// Why the last reload was refused (the old config is kept), if it was.
    pub config_error: Option<String>,
    pub stores: Vec<DaemonStore>,
}

/// What `status` reports about the daemon of a config.
#[derive(Clone, Debug, Serialize)]
pub struct DaemonStatus {
    /// Whether the process is alive (false: it died without cleaning up).
    pub running: bool,
    #[serde(flatten)]
    pub info: DaemonInfo,
}

pub fn lock_path(state_dir: &Path, config: &Path) -> PathBuf {
    state_dir.join(format!("daemon-{}.lock", config_id(config)))
}

pub fn info_path(state_dir: &Path, config: &Path) -> PathBuf {
    state_dir.join(format!("daemon-{}.json", config_id(config)))
}

/// The daemon of this config as its file says, with liveness checked by pid
/// (never by taking the lock). None when no daemon file exists.
pub fn status(paths: &Paths) -> Option<DaemonStatus> {
    let bytes = std::fs::read(info_path(&paths.state_dir, &paths.config)).ok()?;
    let info: DaemonInfo = serde_json::from_slice(&bytes).ok()?;
    let running = info.host != durable::hostname() || durable::pid_alive(info.pid);
    Some(DaemonStatus { running, info })
}

struct StoreRt {
    cfg: StoreConfig,
    /// The last scheduled time handled (run, coalesced or skipped).
    anchor: DateTime<Utc>,
    /// A due fire: its scheduled time and when to start it (after jitter).
    pending: Option<(DateTime<Utc>, DateTime<Utc>)>,
    failures: u32,
    backoff_until: Option<DateTime<Utc>>,
    running: bool,
}

impl StoreRt {
    fn new(cfg: StoreConfig, now: DateTime<Utc>, state: &StoreState) -> StoreRt {
        let now = now.trunc_subsecs(0);
        // Catch-up: if the most recent scheduled time passed with no run
        // started since, put the anchor just before it, so it is due now.
        let mut anchor = now;
        if let Some(prev) = cfg
            .schedule
            .as_ref()
            .and_then(|s| s.prev_at_or_before(&now.with_timezone(&Local)))
        {
            let prev = prev.with_timezone(&Utc);
            let last = state.last_run().map(|r| r.started_at);
            if last.is_none_or(|l| l < prev) {
                anchor = prev - chrono::Duration::seconds(1);
            }
        }
        let failures = state
            .history()
            .iter()
            .rev()
            .take_while(|r| r.outcome == Outcome::Error)
            .count() as u32;
        let backoff_until = state
            .last_run()
            .filter(|_| failures >= BACKOFF_AFTER)
            .map(|r| r.finished_at + to_chrono(backoff(failures)))
            .filter(|t| *t > now);
        StoreRt {
            cfg,
            anchor,
            pending: None,
            failures,
            backoff_until,
            running: false,
        }
    }

    fn next_run(&self) -> Option<DateTime<Utc>> {
        if let Some((_, at)) = self.pending {
            return Some(at);
        }
        let s = self.cfg.schedule.as_ref()?;
        let next = s
            .next_after(&self.anchor.with_timezone(&Local))?
            .with_timezone(&Utc);
        match self.backoff_until {
            Some(b) if b > next => s
                .next_after(&(b - chrono::Duration::seconds(1)).with_timezone(&Local))
                .map(|t| t.with_timezone(&Utc)),
            _ => Some(next),
        }
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A random-enough delay in `[0, max)` (FNV-1a of pid, time and store).
fn jitter_delay(max: Duration, store: &str) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{}:{nanos}:{store}", std::process::id()).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Duration::from_nanos(h % (max.as_nanos().min(u64::MAX as u128) as u64).max(1))
}

fn config_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Take the daemon's single-instance lock for this config.
fn take_lock(paths: &Paths) -> Result<File> {
    durable::ensure_private_dir(&paths.state_dir)?;
    let path = lock_path(&paths.state_dir, &paths.config);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .ctx("open daemon lock", &path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => {
            let holder = match status(paths) {
                Some(s) => format!(
                    "pid {} on {} since {}",
                    s.info.pid,
                    s.info.host,
                    s.info.started_at.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                None => "another process".into(),
            };
            Err(Error::DaemonRunning { lock: path, holder })
        }
        Err(TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
    }
}

/// Run the daemon until SIGTERM/SIGINT. Returns Ok after a clean stop.
pub fn run(paths: &Paths, opts: &DaemonOptions, on_event: &(dyn Fn(&Event) + Sync)) -> Result<()> {
    let config = Config::load(&paths.config)?;
    let _lock = take_lock(paths)?;
    crate::ops::memory::tune_for_long_running();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start", "tokio runtime", e))?;
    let result = rt.block_on(main_loop(paths, config, opts, on_event));
    // Do not wait for an abandoned job's thread: exiting is safe (G2).
    rt.shutdown_background();
    result
}

struct Daemon<'a> {
    paths: &'a Paths,
    info: DaemonInfo,
    stores: BTreeMap<String, StoreRt>,
    written: Option<DaemonInfo>,
    /// Where the metrics go (the option, else the current config's).
    metrics: Option<PathBuf>,
}

impl Daemon<'_> {
    /// The stores whose job is running now.
    fn running(&self) -> Vec<String> {
        self.stores
            .values()
            .filter(|s| s.running)
            .map(|s| s.cfg.name.clone())
            .collect()
    }

    fn set_config(&mut self, config: Config, now: DateTime<Utc>) {
        let mut old = std::mem::take(&mut self.stores);
        for s in config.stores {
            let name = s.name.clone();
            let rt = match old.remove(&name) {
                Some(mut rt)
                    if rt.cfg.schedule.as_ref().map(|x| x.expr())
                        == s.schedule.as_ref().map(|x| x.expr()) =>
                {
                    rt.cfg = s;
                    rt
                }
                Some(prev) => {
                    // New schedule: start over, keeping the failure count.
                    let mut rt =
                        StoreRt::new(s, now, &StoreState::new(self.paths.store_state(&name)));
                    rt.running = prev.running;
                    rt
                }
                None => StoreRt::new(s, now, &StoreState::new(self.paths.store_state(&name))),
            };
            self.stores.insert(name, rt);
        }
    }

    fn snapshot(&self, now: DateTime<Utc>) -> DaemonInfo {
        let mut info = self.info.clone();
        info.stores = self
            .stores
            .values()
            .map(|s| DaemonStore {
                name: s.cfg.name.clone(),
                schedule: s.cfg.schedule.as_ref().map(|x| x.expr().to_string()),
                next_run: s.next_run().map(|t| t.with_timezone(&Local)),
                running: s.running,
                failures: s.failures,
                backoff_until: s.backoff_until.filter(|b| *b > now),
            })
            .collect();
        info
    }

    fn write_info(&mut self, now: DateTime<Utc>) {
        let info = self.snapshot(now);
        if self.written.as_ref() == Some(&info) {
            return;
        }
        let path = info_path(&self.paths.state_dir, &self.paths.config);
        let json = serde_json::to_vec_pretty(&info).expect("daemon info serializes");
        if let Err(e) = durable::atomic_write(&path, &json, 0o600) {
            tracing::warn!("could not write the daemon file: {e}");
        }
        self.written = Some(info);
    }

    fn write_metrics(&self) {
        if let Some(path) = &self.metrics {
            let stores = self.stores.values().map(|s| &s.cfg);
            if let Err(e) = crate::ops::metrics::write(self.paths, stores, path) {
                tracing::warn!("could not write the metrics file: {e}");
            }
        }
    }
}

type Jobs = tokio::task::JoinSet<(String, RunRecord)>;

async fn main_loop(
    paths: &Paths,
    config: Config,
    opts: &DaemonOptions,
    on_event: &(dyn Fn(&Event) + Sync),
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let sig = |k: SignalKind, name: &str| {
        signal(k).map_err(|e| Error::io("install handler for", name, e))
    };
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;

    let now = Utc::now();
    let mut d = Daemon {
        paths,
        info: DaemonInfo {
            pid: std::process::id(),
            host: durable::hostname(),
            started_at: now,
            config: paths.config.clone(),
            version: crate::VERSION.to_string(),
            config_error: None,
            stores: Vec::new(),
        },
        stores: BTreeMap::new(),
        written: None,
        metrics: opts.metrics_file.clone().or(config.metrics_file.clone()),
    };
    let mut stamp = config_stamp(&paths.config);
    d.set_config(config, now);
    d.write_info(now);
    d.write_metrics();
    on_event(&Event::Started {
        pid: std::process::id(),
        config: paths.config.clone(),
        stores: d.stores.keys().cloned().collect(),
    });

    let mut jobs = Jobs::new();
    let stop_signal: &'static str;
    loop {
        let now = Utc::now().trunc_subsecs(0);
        let wake = tick(&mut d, &mut jobs, now, on_event);
        d.write_info(now);
        let step = wake
            .map(|w| (w - now).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(MAX_STEP)
            .min(MAX_STEP);
        let mut reload = false;
        tokio::select! {
            _ = tokio::time::sleep(step) => {}
            Some(done) = jobs.join_next(), if !jobs.is_empty() => finished(&mut d, done, on_event),
            _ = term.recv() => { stop_signal = "SIGTERM"; break; }
            _ = int.recv() => { stop_signal = "SIGINT"; break; }
            _ = hup.recv() => reload = true,
        }
        let new_stamp = config_stamp(&paths.config);
        if new_stamp != stamp {
            stamp = new_stamp;
            reload = true;
        }
        if reload {
            match Config::load(&paths.config) {
                Ok(c) => {
                    d.info.config_error = None;
                    d.metrics = opts.metrics_file.clone().or(c.metrics_file.clone());
                    d.set_config(c, Utc::now());
                    on_event(&Event::Reloaded {
                        stores: d.stores.keys().cloned().collect(),
                    });
                }
                Err(e) => {
                    d.info.config_error = Some(e.to_string());
                    on_event(&Event::ReloadFailed(e.to_string()));
                }
            }
        }
    }

    let running = d.running();
    on_event(&Event::Stopping {
        signal: stop_signal,
        running: running.clone(),
    });
    let drain = async {
        while let Some(done) = jobs.join_next().await {
            finished(&mut d, done, on_event);
        }
    };
    if tokio::time::timeout(opts.stop_timeout, drain)
        .await
        .is_err()
    {
        on_event(&Event::Abandoned {
            running: d.running(),
        });
    }
    let _ = std::fs::remove_file(info_path(&paths.state_dir, &paths.config));
    on_event(&Event::Stopped);
    Ok(())
}

/// Start what is due; return the earliest time something becomes due.
fn tick(
    d: &mut Daemon<'_>,
    jobs: &mut Jobs,
    now: DateTime<Utc>,
    on_event: &(dyn Fn(&Event) + Sync),
) -> Option<DateTime<Utc>> {
    let mut wake: Option<DateTime<Utc>> = None;
    let local_now = now.with_timezone(&Local);
    for s in d.stores.values_mut() {
        let Some(schedule) = s.cfg.schedule.clone() else {
            continue;
        };
        if s.running {
            continue;
        }
        if s.pending.is_none() {
            match schedule.next_after(&s.anchor.with_timezone(&Local)) {
                Some(next) if next <= local_now => {
                    // Due (or missed while asleep / not running): one run for
                    // the most recent scheduled time.
                    let sched = schedule
                        .prev_at_or_before(&local_now)
                        .unwrap_or(next)
                        .with_timezone(&Utc);
                    let delay =
                        to_chrono(jitter_delay(s.cfg.jitter.unwrap_or_default(), &s.cfg.name));
                    s.pending = Some((sched, now + delay));
                }
                Some(next) => {
                    let next = next.with_timezone(&Utc);
                    wake = Some(wake.map_or(next, |w| w.min(next)));
                    continue;
                }
                None => continue,
            }
        }
        let (sched, at) = s.pending.expect("set above");
        if at > now {
            wake = Some(wake.map_or(at, |w| w.min(at)));
            continue;
        }
        s.pending = None;
        s.anchor = sched;
        if let Some(until) = s.backoff_until.filter(|b| *b > now) {
            on_event(&Event::SkippedForBackoff {
                store: s.cfg.name.clone(),
                scheduled: sched.with_timezone(&Local),
                until,
            });
            continue;
        }
        let catch_up = now - sched
            > chrono::Duration::seconds(60) + to_chrono(s.cfg.jitter.unwrap_or_default());
        on_event(&Event::Fire {
            store: s.cfg.name.clone(),
            scheduled: sched.with_timezone(&Local),
            catch_up,
        });
        s.running = true;
        let paths = d.paths.clone();
        let store = s.cfg.clone();
        jobs.spawn_blocking(move || {
            let opts = SyncOptions {
                trigger: "daemon".into(),
                wait: false,
                force: false,
            };
            let rec = sync_store(&paths, &store, &opts);
            (store.name, rec)
        });
    }
    wake
}

fn finished(
    d: &mut Daemon<'_>,
    done: std::result::Result<(String, RunRecord), tokio::task::JoinError>,
    on_event: &(dyn Fn(&Event) + Sync),
) {
    let (name, rec) = match done {
        Ok(x) => x,
        Err(e) => {
            // A panicking job: every store it could be is no longer running.
            tracing::error!("a sync job panicked: {e}");
            for s in d.stores.values_mut() {
                s.running = false;
            }
            return;
        }
    };
    on_event(&Event::Ran(Box::new(rec.clone())));
    // The run's memory was freed, but its threads' arenas keep it.
    crate::ops::memory::release_free_memory();
    d.write_metrics();
    let Some(s) = d.stores.get_mut(&name) else {
        return;
    };
    s.running = false;
    match rec.outcome {
        Outcome::Ok => {
            s.failures = 0;
            s.backoff_until = None;
        }
        Outcome::Error => {
            s.failures += 1;
            let b = backoff(s.failures);
            if !b.is_zero() {
                let until = rec.finished_at + to_chrono(b);
                s.backoff_until = Some(until);
                on_event(&Event::BackingOff {
                    store: name,
                    failures: s.failures,
                    until,
                });
            }
        }
        Outcome::Skipped | Outcome::Busy => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(3), Duration::from_secs(120));
        assert_eq!(backoff(8), Duration::from_secs(3600));
        assert_eq!(backoff(100), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        for i in 0..100 {
            let j = jitter_delay(Duration::from_secs(10), &format!("s{i}"));
            assert!(j < Duration::from_secs(10));
        }
        assert_eq!(jitter_delay(Duration::ZERO, "x"), Duration::ZERO);
    }
}
