//! The scheduler: fires every store's schedule from one task.
//!
//! [`Daemon::run`] is an `async fn` that runs inside the caller's tokio
//! runtime (any flavour; it needs the blocking pool and timers) until its
//! [`DaemonHandle::stop`] is called. It installs no signal handlers: the
//! `logkeeper daemon` command builds the runtime and maps SIGTERM/SIGINT to
//! `stop` and SIGHUP to `reload`; a program embedding the scheduler maps
//! its own shutdown.
//!
//! Design:
//! - One scheduler loop decides what is due;
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
//! - Stop (SIGTERM/SIGINT in the CLI): no new runs; running jobs get
//!   `stop_timeout` to finish; then `run` returns Ok either way. A job
//!   abandoned at exit is safe: the swap is atomic (G2, docs/design.md) and
//!   the kernel releases its lock.
//! - Reload (SIGHUP in the CLI), or a change of the config file's
//!   mtime/size, reloads the config; a broken config is reported and the old
//!   one kept.
//! - Liveness: `<state>/daemon-<id>.lock` is flocked for the daemon's life (a
//!   second daemon for the same config exits 75); `<state>/daemon-<id>.json`
//!   holds pid, start time and each store's next run and backoff, replaced
//!   atomically, removed at a clean exit. `status` reads it without locking.

mod file;
pub mod growth;
mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};

use chrono::{DateTime, Local, SubsecRound, Utc};

use crate::config::Config;
use crate::error::Result;
use crate::io::durable;
use crate::job::record::{Outcome, RunRecord, StoreState};
use crate::job::{SyncOptions, sync_store};
use crate::paths::Paths;

use file::take_lock;
pub use file::{DaemonInfo, DaemonStatus, DaemonStore, info_path, lock_path, status};
pub use store::{BACKOFF_AFTER, BACKOFF_MAX, MAX_STEP, backoff};
use store::{StoreRt, jitter_delay, to_chrono};

#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// How long running jobs may take to finish after a stop.
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
    /// A growth run starts: the log grew past the store's threshold.
    Growth {
        store: String,
        now: crate::job::growth::GrowthNow,
    },
    Reloaded {
        stores: Vec<String>,
    },
    /// The new config was refused (the old one stays): the typed error, so
    /// a caller can tell its class and where it is (C.16).
    ReloadFailed(Arc<crate::Error>),
    Stopping {
        /// Why: the reason given to [`DaemonHandle::stop`] (the CLI passes
        /// the signal's name).
        signal: &'static str,
        running: Vec<String>,
    },
    Abandoned {
        running: Vec<String>,
    },
    Stopped,
}

fn config_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The scheduler for one config, ready to run. See the module docs.
pub struct Daemon {
    paths: Paths,
    opts: DaemonOptions,
    stop: watch::Receiver<Option<&'static str>>,
    handle: DaemonHandle,
}

/// Stops or reloads a [`Daemon`] from anywhere (another task, a signal
/// handler, another thread). Cheap to clone.
#[derive(Clone, Debug)]
pub struct DaemonHandle {
    stop: Arc<watch::Sender<Option<&'static str>>>,
    reload: Arc<Notify>,
}

impl DaemonHandle {
    /// Ask the daemon to stop: no new runs; running jobs get the stop
    /// timeout. `why` is reported in [`Event::Stopping`]. A stop asked
    /// before `run` starts makes it stop at once.
    pub fn stop(&self, why: &'static str) {
        self.stop.send_replace(Some(why));
    }

    /// Ask the daemon to re-read its config file now.
    pub fn reload(&self) {
        self.reload.notify_one();
    }
}

impl Daemon {
    pub fn new(paths: Paths, opts: DaemonOptions) -> Daemon {
        let (tx, rx) = watch::channel(None);
        Daemon {
            paths,
            opts,
            stop: rx,
            handle: DaemonHandle {
                stop: Arc::new(tx),
                reload: Arc::new(Notify::new()),
            },
        }
    }

    /// A handle to stop or reload this daemon once it runs.
    pub fn handle(&self) -> DaemonHandle {
        self.handle.clone()
    }

    /// Load the config, take the daemon lock (a second daemon for the same
    /// config gets [`crate::Error::DaemonRunning`]), and fire the schedules until
    /// [`DaemonHandle::stop`]. Returns Ok after a clean stop. Must be
    /// awaited inside a tokio runtime with timers enabled. Jobs still
    /// running past the stop timeout are left to finish on the blocking
    /// pool; dropping the runtime need not wait for them (safe by G2).
    pub async fn run(mut self, on_event: impl Fn(&Event) + Sync) -> Result<()> {
        let config = Config::load(&self.paths.config)?;
        let _lock = take_lock(&self.paths)?;
        let reload = self.handle.reload.clone();
        main_loop(
            &self.paths,
            config,
            &self.opts,
            &mut self.stop,
            &reload,
            &on_event,
        )
        .await
    }
}

struct State<'a> {
    paths: &'a Paths,
    info: DaemonInfo,
    stores: BTreeMap<String, StoreRt>,
    written: Option<DaemonInfo>,
    /// Where the metrics go (the option, else the current config's).
    metrics: Option<PathBuf>,
    /// The stores of the current config that are not run for their invalid
    /// table (B.8): marked in the metrics.
    broken: Vec<crate::config::BrokenStore>,
}

impl State<'_> {
    /// The stores whose job is running now.
    fn running(&self) -> Vec<String> {
        self.stores
            .values()
            .filter(|s| s.running)
            .map(|s| s.cfg.name.clone())
            .collect()
    }

    fn set_config(&mut self, config: Config, now: DateTime<Utc>) {
        for b in &config.broken {
            tracing::warn!(
                "store {:?} is not scheduled: {}",
                b.name,
                b.error(&config.path)
            );
        }
        self.broken = config.broken;
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

    /// The logs of the stores with a growth trigger.
    fn growth_logs(&self) -> impl Iterator<Item = &Path> {
        self.stores
            .values()
            .filter(|s| s.cfg.growth.is_some())
            .map(|s| s.cfg.path())
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
                growth_checked_bytes: s.growth_checked,
                growth_wait_until: s.growth_wait.filter(|w| *w > now),
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
        let written = crate::error::to_json("the daemon file", &path, &info, true)
            .and_then(|json| durable::atomic_write(&path, &json, 0o600));
        if let Err(e) = written {
            tracing::warn!("could not write the daemon file: {e}");
        }
        self.written = Some(info);
    }

    fn write_metrics(&self) {
        if let Some(path) = &self.metrics {
            let stores = self.stores.values().map(|s| &s.cfg);
            let written = crate::ops::metrics::write(
                self.paths,
                stores,
                &self.broken,
                &self.paths.config,
                path,
            );
            if let Err(e) = written {
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
    stop: &mut watch::Receiver<Option<&'static str>>,
    reload_asked: &Notify,
    on_event: &(dyn Fn(&Event) + Sync),
) -> Result<()> {
    let now = Utc::now();
    let mut d = State {
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
        broken: Vec::new(),
    };
    let mut stamp = config_stamp(&paths.config);
    let grew = Arc::new(Notify::new());
    let mut watch = growth::Watch::new(grew.clone());
    let mut last_growth_wake = std::time::Instant::now();
    d.set_config(config, now);
    watch.set(d.growth_logs());
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
        if let Some(why) = *stop.borrow_and_update() {
            stop_signal = why;
            break;
        }
        let now = Utc::now().trunc_subsecs(0);
        let wake = tick(&mut d, &mut jobs, now, on_event);
        let wake = match (wake, growth_tick(&mut d, &mut jobs, now, on_event)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        d.write_info(now);
        let step = wake
            .map(|w| (w - now).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(MAX_STEP)
            .min(MAX_STEP);
        let mut reload = false;
        tokio::select! {
            _ = tokio::time::sleep(step) => {}
            Some(done) = jobs.join_next(), if !jobs.is_empty() => finished(&mut d, done, on_event),
            // A stop is seen at the top of the loop; a closed channel (every
            // handle dropped) cannot stop the daemon any more: keep going.
            Ok(()) = stop.changed() => {}
            _ = reload_asked.notified() => reload = true,
            _ = grew.notified() => {
                // A busy writer changes its log thousands of times a
                // second: check (and rewrite the daemon file) at most
                // every `growth::SETTLE`.
                let since = last_growth_wake.elapsed();
                if since < growth::SETTLE {
                    tokio::time::sleep(growth::SETTLE - since).await;
                }
                last_growth_wake = std::time::Instant::now();
            }
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
                    watch.set(d.growth_logs());
                    // Added stores appear (with zeros) before their first run.
                    d.write_metrics();
                    on_event(&Event::Reloaded {
                        stores: d.stores.keys().cloned().collect(),
                    });
                }
                Err(e) => {
                    d.info.config_error = Some(e.to_string());
                    on_event(&Event::ReloadFailed(Arc::new(e)));
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
    d: &mut State<'_>,
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
        spawn(d.paths, s, jobs, crate::job::Trigger::Daemon, now);
    }
    wake
}

/// Start a run of `s` with `trigger` on the blocking pool.
fn spawn(
    paths: &Paths,
    s: &mut StoreRt,
    jobs: &mut Jobs,
    trigger: crate::job::Trigger,
    now: DateTime<Utc>,
) {
    s.running = true;
    s.last_start = Some(now);
    let paths = paths.clone();
    let store = s.cfg.clone();
    jobs.spawn_blocking(move || {
        let opts = SyncOptions {
            trigger,
            wait: false,
            force: false,
        };
        let rec = sync_store(&paths, &store, &opts);
        (store.name, rec)
    });
}

/// Start the growth runs that are due and allowed (see `growth.rs`);
/// return the earliest time a held-back one may start.
fn growth_tick(
    d: &mut State<'_>,
    jobs: &mut Jobs,
    now: DateTime<Utc>,
    on_event: &(dyn Fn(&Event) + Sync),
) -> Option<DateTime<Utc>> {
    let mut wake: Option<DateTime<Utc>> = None;
    for s in d.stores.values_mut() {
        let Some(t) = s.cfg.growth.clone() else {
            continue;
        };
        if s.running {
            continue;
        }
        let Some(g) = crate::job::growth::now(d.paths, &s.cfg) else {
            continue;
        };
        s.growth_checked = Some(g.size);
        let earliest = growth::earliest(t.min_interval, s.last_start, s.last_finish, s.failures);
        s.growth_wait = None;
        match growth::decide(g.due, now, earliest) {
            growth::Decision::Idle => {}
            growth::Decision::WaitUntil(at) => {
                s.growth_wait = Some(at);
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
            growth::Decision::Run => {
                on_event(&Event::Growth {
                    store: s.cfg.name.clone(),
                    now: g,
                });
                spawn(d.paths, s, jobs, crate::job::Trigger::Growth, now);
            }
        }
    }
    wake
}

fn finished(
    d: &mut State<'_>,
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
    s.last_finish = Some(rec.finished_at);
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
