//! The scheduler loop's state: the stores and their runtime, and what it
//! publishes (the daemon file, the metrics).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Local, Utc};

use super::file::{DaemonInfo, DaemonStore, info_path};
use super::store::StoreRt;
use super::{DaemonOptions, Event, growth};
use crate::config::Config;
use crate::io::durable;
use crate::job::record::RunRecords;
use crate::paths::Paths;

pub(super) struct State<'a> {
    pub(super) paths: &'a Paths,
    pub(super) info: DaemonInfo,
    pub(super) stores: BTreeMap<String, StoreRt>,
    pub(super) written: Option<DaemonInfo>,
    /// Where the metrics go (the option, else the current config's).
    pub(super) metrics: Option<PathBuf>,
    /// The stores of the current config that are not run for their invalid
    /// table (B.8): marked in the metrics.
    pub(super) broken: Vec<crate::config::BrokenStore>,
}

impl<'a> State<'a> {
    pub(super) fn new(paths: &'a Paths, metrics: Option<PathBuf>, now: DateTime<Utc>) -> Self {
        State {
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
            metrics,
            broken: Vec::new(),
        }
    }

    /// Reload the config (asked, or its file changed); a broken one is
    /// reported and the old one kept.
    pub(super) fn reload(
        &mut self,
        opts: &DaemonOptions,
        watch: &mut growth::Watch,
        on_event: &(dyn Fn(&Event) + Sync),
    ) {
        match Config::load(&self.paths.config) {
            Ok(c) => {
                self.info.config_error = None;
                self.metrics = opts.metrics_file.clone().or(c.metrics_file.clone());
                self.set_config(c, Utc::now());
                watch.set(self.growth_logs());
                // Added stores appear (with zeros) before their first run.
                self.write_metrics();
                on_event(&Event::Reloaded {
                    stores: self.stores.keys().cloned().collect(),
                });
            }
            Err(e) => {
                self.info.config_error = Some(e.to_string());
                on_event(&Event::ReloadFailed(Arc::new(e)));
            }
        }
    }

    /// The stores whose job is running now.
    pub(super) fn running(&self) -> Vec<String> {
        self.stores
            .values()
            .filter(|s| s.running)
            .map(|s| s.cfg.name.clone())
            .collect()
    }

    pub(super) fn set_config(&mut self, config: Config, now: DateTime<Utc>) {
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
                        StoreRt::new(s, now, &RunRecords::new(self.paths.store_state(&name)));
                    rt.running = prev.running;
                    rt
                }
                None => StoreRt::new(s, now, &RunRecords::new(self.paths.store_state(&name))),
            };
            self.stores.insert(name, rt);
        }
    }

    /// The logs of the stores with a growth trigger.
    pub(super) fn growth_logs(&self) -> impl Iterator<Item = &Path> {
        self.stores
            .values()
            .filter(|s| s.cfg.growth.is_some())
            .map(|s| s.cfg.path())
    }

    pub(super) fn snapshot(&self, now: DateTime<Utc>) -> DaemonInfo {
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

    pub(super) fn write_info(&mut self, now: DateTime<Utc>) {
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

    pub(super) fn write_metrics(&self) {
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
