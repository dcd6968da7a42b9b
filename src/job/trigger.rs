//! What started a run. Recorded in the lock holder and the run record by
//! its lowercase name (`manual`, `schedule`, ...), which is the on-disk and
//! `--json` spelling.

use std::fmt;

/// What started a run. Anything but [`Trigger::Manual`] and
/// [`Trigger::Demo`] is scheduled: a held lock is recorded as a skip rather
/// than as busy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
#[non_exhaustive]
pub enum Trigger {
    /// A person ran `sync now` (or a program called [`crate::job::sync_store`]).
    #[default]
    Manual,
    /// Some scheduler ran it (`--trigger schedule`).
    Schedule,
    /// An OS timer (systemd or launchd) ran it.
    Timer,
    /// A crontab line ran it.
    Cron,
    /// `logkeeper daemon` ran it.
    Daemon,
    /// `logkeeper demo` ran it.
    #[value(skip)]
    Demo,
    /// The daemon's growth trigger ran it: the log grew past `growth`.
    #[value(skip)]
    Growth,
}

impl Trigger {
    /// The recorded spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Timer => "timer",
            Trigger::Cron => "cron",
            Trigger::Daemon => "daemon",
            Trigger::Demo => "demo",
            Trigger::Growth => "growth",
        }
    }

    /// Whether a scheduler started the run (a held lock is then a skip).
    pub fn is_scheduled(self) -> bool {
        !matches!(self, Trigger::Manual | Trigger::Demo)
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
