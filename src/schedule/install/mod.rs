//! `schedule install|uninstall|show`: registering the stores' schedules with
//! the OS scheduler — a systemd user service or timers, a launchd agent, or a
//! fenced block in the user's crontab.
//!
//! Invariants:
//! - Every name (unit, label, fence) carries [`config_id`], a stable hash of
//!   the absolute config path, so two configs on one machine never overwrite
//!   each other's registration.
//! - Rendered jobs pin the absolute binary, config and state paths (as
//!   arguments and in the environment), so scheduled and manual runs agree.
//! - Install and uninstall are idempotent: a file whose content is already
//!   right is not rewritten; a crontab already right is not written.
//! - A plan is computed first and only then applied, so `--dry-run` prints
//!   exactly what `install` would do and touches nothing.
//! - What was installed is recorded in `<state>/schedule-<id>.json`, which
//!   `status` and `show` check against the files and the binary.

mod apply;
pub mod calendar;
pub mod cron;
pub mod launchd;
pub mod systemd;

pub use apply::apply;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};

use crate::paths::Paths;

/// Which OS scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Systemd,
    Launchd,
    Cron,
}

impl Backend {
    pub fn as_str(&self) -> &'static str {
        match self {
            Backend::Systemd => "systemd",
            Backend::Launchd => "launchd",
            Backend::Cron => "cron",
        }
    }

    /// The platform's default: launchd on macOS, systemd on Linux, cron elsewhere.
    pub fn default_for_platform() -> Backend {
        if cfg!(target_os = "macos") {
            Backend::Launchd
        } else if cfg!(target_os = "linux") {
            Backend::Systemd
        } else {
            Backend::Cron
        }
    }
}

/// A long-running daemon, or one OS timer per store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Daemon,
    Timer,
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Daemon => "daemon",
            Mode::Timer => "timer",
        }
    }
}

/// Where things go and which commands register them.
#[derive(Clone, Debug)]
pub struct Context {
    pub bin: PathBuf,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    /// systemd user units: `$XDG_CONFIG_HOME/systemd/user` or `~/.config/systemd/user`.
    pub systemd_dir: PathBuf,
    /// launchd agents: `~/Library/LaunchAgents`.
    pub launchd_dir: PathBuf,
    pub uid: u32,
    /// Commands, overridable (`LOGKEEPER_SYSTEMCTL`, `LOGKEEPER_LAUNCHCTL`,
    /// `LOGKEEPER_CRONTAB`, each split on whitespace) for packaging and tests.
    pub systemctl: Vec<String>,
    pub launchctl: Vec<String>,
    pub crontab: Vec<String>,
}

/// The `crontab` command to run: `LOGKEEPER_CRONTAB` split on whitespace,
/// else `crontab`. The one reading of that variable.
pub fn crontab_command() -> Vec<String> {
    cmd_from_env("LOGKEEPER_CRONTAB", "crontab")
}

fn cmd_from_env(var: &str, default: &str) -> Vec<String> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
        .split_whitespace()
        .map(String::from)
        .collect()
}

impl Context {
    /// The context for this process: its own binary, the resolved paths,
    /// the user's unit and agent directories.
    pub fn from_env(paths: &Paths) -> Result<Context> {
        let bin = std::env::current_exe().map_err(|e| Error::io("find", "own executable", e))?;
        let bin = bin.canonicalize().unwrap_or(bin);
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or(Error::NoHome {
                what: "the user's unit directory",
                hint: "set HOME",
            })?;
        let xdg_config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".config"));
        Ok(Context {
            bin,
            config: paths.config.clone(),
            state_dir: paths.state_dir.clone(),
            systemd_dir: xdg_config.join("systemd").join("user"),
            launchd_dir: home.join("Library").join("LaunchAgents"),
            // SAFETY: getuid cannot fail.
            uid: unsafe { libc::getuid() },
            systemctl: cmd_from_env("LOGKEEPER_SYSTEMCTL", "systemctl"),
            launchctl: cmd_from_env("LOGKEEPER_LAUNCHCTL", "launchctl"),
            crontab: crontab_command(),
        })
    }

    pub fn id(&self) -> String {
        config_id(&self.config)
    }

    pub fn marker(&self) -> PathBuf {
        marker_path(&self.state_dir, &self.config)
    }
}

/// 8 hex digits of the 64-bit FNV-1a hash of the absolute config path
/// (stable across builds and machines, unlike std's randomised hasher).
pub fn config_id(config: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let h = crate::schedule::fnv1a(config.as_os_str().as_bytes());
    format!("{:08x}", (h ^ (h >> 32)) as u32)
}

/// The registration record of one config.
pub fn marker_path(state_dir: &Path, config: &Path) -> PathBuf {
    state_dir.join(format!("schedule-{}.json", config_id(config)))
}

/// One file an install writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFile {
    pub path: PathBuf,
    pub content: String,
    /// What is there now (None: no file).
    pub current: Option<String>,
}

impl PlannedFile {
    pub fn new(path: PathBuf, content: String) -> Self {
        let current = std::fs::read_to_string(&path).ok();
        PlannedFile {
            path,
            content,
            current,
        }
    }
    pub fn changed(&self) -> bool {
        self.current.as_deref() != Some(self.content.as_str())
    }
}

/// A command the plan runs; `tolerate_failure` for best-effort steps
/// (e.g. unloading a job that may not be loaded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedCommand {
    pub argv: Vec<String>,
    pub tolerate_failure: bool,
    /// Exit codes that mean "already done" (the job was not loaded), which
    /// count as success.
    pub already_done: &'static [i32],
}

impl PlannedCommand {
    pub fn must(argv: Vec<String>) -> Self {
        PlannedCommand {
            argv,
            tolerate_failure: false,
            already_done: &[],
        }
    }
    /// A step that must succeed, where the exit codes in `already_done`
    /// mean there was nothing to do.
    pub fn must_unless(argv: Vec<String>, already_done: &'static [i32]) -> Self {
        PlannedCommand {
            argv,
            tolerate_failure: false,
            already_done,
        }
    }
    pub fn may_fail(argv: Vec<String>) -> Self {
        PlannedCommand {
            argv,
            tolerate_failure: true,
            already_done: &[],
        }
    }
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The crontab before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrontabChange {
    pub before: Option<String>,
    pub after: Option<String>,
}

/// What an install or uninstall will do.
#[derive(Clone, Debug)]
pub struct Plan {
    pub backend: Backend,
    pub mode: Mode,
    pub install: bool,
    pub files: Vec<PlannedFile>,
    /// Files of an earlier install of this config that no longer belong.
    pub remove: Vec<PathBuf>,
    /// Commands run before files are removed (disable/unload).
    pub pre_commands: Vec<PlannedCommand>,
    /// Commands run after files are written.
    pub commands: Vec<PlannedCommand>,
    pub crontab: Option<CrontabChange>,
    /// Things worth saying (stores without a schedule...).
    pub notes: Vec<String>,
}

impl Plan {
    /// Whether applying would change anything on disk.
    pub fn changes_anything(&self) -> bool {
        self.files.iter().any(PlannedFile::changed)
            || !self.remove.is_empty()
            || self.crontab.as_ref().is_some_and(|c| c.before != c.after)
    }
}

/// The registration record kept in the state dir.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Marker {
    pub backend: Backend,
    pub mode: Mode,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub binary: PathBuf,
    pub files: Vec<PathBuf>,
    /// The crontab fence's id (cron backend).
    pub fence: Option<String>,
    pub installed_at: DateTime<Utc>,
}

/// Plan an install of `config`'s schedules.
pub fn plan_install(ctx: &Context, config: &Config, backend: Backend, mode: Mode) -> Result<Plan> {
    if let Some(m) = read_marker(ctx)
        && m.backend != backend
    {
        return Err(Error::Schedule(
            crate::error::ScheduleError::AlreadyInstalled {
                config: ctx.config.clone(),
                installed: m.backend.as_str(),
            },
        ));
    }
    match backend {
        Backend::Systemd => systemd::plan_install(ctx, config, mode),
        Backend::Launchd => launchd::plan_install(ctx, config, mode),
        Backend::Cron => {
            if mode == Mode::Daemon {
                return Err(Error::Schedule(
                    crate::error::ScheduleError::ModeUnsupported {
                        backend: "cron",
                        mode: "daemon",
                        hint: "it runs each store's own expression (timer mode); for a daemon use --backend systemd or launchd",
                    },
                ));
            }
            cron::plan_install(ctx, config)
        }
    }
}

/// Plan removing this config's registration from `backend`.
pub fn plan_uninstall(ctx: &Context, backend: Backend) -> Result<Plan> {
    match backend {
        Backend::Systemd => systemd::plan_uninstall(ctx),
        Backend::Launchd => launchd::plan_uninstall(ctx),
        Backend::Cron => cron::plan_uninstall(ctx),
    }
}

pub fn read_marker(ctx: &Context) -> Option<Marker> {
    read_marker_at(&ctx.marker())
}

fn read_marker_at(path: &Path) -> Option<Marker> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// One installed file and whether it is still there.
#[derive(Clone, Debug, Serialize)]
pub struct FileCheck {
    pub path: PathBuf,
    pub exists: bool,
}

/// What is registered for a config, checked against the disk.
#[derive(Clone, Debug, Serialize)]
pub struct Registration {
    pub backend: Backend,
    pub mode: Mode,
    pub installed_at: DateTime<Utc>,
    pub binary: PathBuf,
    pub binary_exists: bool,
    pub files: Vec<FileCheck>,
    /// For cron: whether the fenced block is in the crontab (null when not checked).
    pub crontab_block: Option<bool>,
    /// What is wrong with the registration (empty when healthy).
    pub problems: Vec<String>,
}

/// Check the registration of `config`. `check_crontab` runs `crontab -l`
/// (skipped by `status` unless the backend is cron).
pub fn registration(
    state_dir: &Path,
    config: &Path,
    crontab: Option<&[String]>,
) -> Option<Registration> {
    let m = read_marker_at(&marker_path(state_dir, config))?;
    let binary_exists = m.binary.is_file();
    let files: Vec<FileCheck> = m
        .files
        .iter()
        .map(|p| FileCheck {
            path: p.clone(),
            exists: p.exists(),
        })
        .collect();
    let mut problems = Vec::new();
    if !binary_exists {
        problems.push(format!(
            "the installed jobs run {}, which no longer exists: run `logkeeper schedule install` again with the current binary",
            m.binary.display()
        ));
    }
    for f in files.iter().filter(|f| !f.exists) {
        problems.push(format!(
            "{} is missing: run `logkeeper schedule install` again",
            f.path.display()
        ));
    }
    let mut crontab_block = None;
    if let (Some(fence), Some(cmd)) = (&m.fence, crontab) {
        match cron::read_crontab(cmd) {
            Ok(text) => {
                let present = cron::find_block(text.as_deref().unwrap_or(""), fence).is_some();
                if !present {
                    problems.push(format!(
                        "the crontab has no `# BEGIN logkeeper {fence}` block: run `logkeeper schedule install --backend cron` again"
                    ));
                }
                crontab_block = Some(present);
            }
            Err(e) => problems.push(format!("could not read the crontab: {e}")),
        }
    }
    Some(Registration {
        backend: m.backend,
        mode: m.mode,
        installed_at: m.installed_at,
        binary: m.binary,
        binary_exists,
        files,
        crontab_block,
        problems,
    })
}

/// Quote for a POSIX shell when needed.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Replace `@NAME@` placeholders in a template.
pub(crate) fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("@{k}@"), v);
    }
    debug_assert!(
        !out.contains("@BIN@") && !out.contains("@CONFIG@"),
        "unrendered placeholder"
    );
    out
}

/// The stores that have a schedule; notes for those that do not.
pub(crate) fn scheduled_stores<'a>(
    config: &'a Config,
    notes: &mut Vec<String>,
) -> Result<Vec<(&'a crate::config::StoreConfig, calendar::CronFields)>> {
    let mut out = Vec::new();
    for s in &config.stores {
        match &s.schedule {
            None => notes.push(format!(
                "store {:?} has no schedule: not scheduled (run it with `logkeeper sync now {}`)",
                s.name, s.name
            )),
            Some(sch) => {
                let f = calendar::CronFields::of(sch).map_err(|msg| {
                    Error::Schedule(crate::error::ScheduleError::Unschedulable {
                        store: s.name.clone(),
                        msg,
                    })
                })?;
                let today = chrono::Local::now().date_naive();
                if let Some(t) = f.dst_conflict(&chrono::Local, today, 400) {
                    notes.push(format!(
                        "store {:?}: {:?} fires at {}, a local time that a DST change skips or repeats; an OS timer runs such times by its own rules (systemd: a skipped time not at all, a repeated one once), unlike cron and `logkeeper daemon`; use `--mode daemon` (or a UTC schedule) if that matters",
                        s.name,
                        sch.expr(),
                        t.format("%Y-%m-%d %H:%M")
                    ));
                }
                out.push((s, f));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Schedule(
            crate::error::ScheduleError::NothingScheduled {
                config: config.path.clone(),
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_id_is_stable_and_distinct() {
        let a = config_id(Path::new("/home/me/.config/logkeeper/config.toml"));
        assert_eq!(a.len(), 8);
        assert_eq!(
            a,
            config_id(Path::new("/home/me/.config/logkeeper/config.toml"))
        );
        assert_ne!(a, config_id(Path::new("/home/me/other.toml")));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/usr/bin/x"), "/usr/bin/x");
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
    }
}
