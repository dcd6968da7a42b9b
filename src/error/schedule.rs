//! Registering the schedules with the OS scheduler.

use std::path::PathBuf;

use super::ErrorClass;

/// Registering the schedules with the OS scheduler.
///
/// Each variant names what failed and on which file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// A system tool (crontab, systemctl, launchctl) could not be run.
    #[error("cannot run `{cmd}`: {source}{hint}")]
    ToolNotRun {
        cmd: String,
        hint: String,
        #[source]
        source: std::io::Error,
    },

    /// A system tool ran and reported failure.
    #[error("`{cmd}` failed ({status}): {stderr}{hint}")]
    ToolFailed {
        cmd: String,
        status: String,
        stderr: String,
        hint: String,
    },

    /// The schedule is already registered with another backend.
    #[error(
        "the schedule of {} is already installed with {installed}",
        config.display()
    )]
    AlreadyInstalled {
        config: PathBuf,
        installed: &'static str,
    },

    /// A backend cannot run in the asked mode.
    #[error("the {backend} backend cannot run in {mode} mode: {hint}")]
    ModeUnsupported {
        backend: &'static str,
        mode: &'static str,
        hint: &'static str,
    },

    /// A store's schedule cannot be registered with the OS scheduler as asked.
    #[error("store {store:?}: {msg}")]
    Unschedulable { store: String, msg: String },

    /// No store of the config has a schedule to register.
    #[error("no store in {} has a schedule: add `schedule = \"*/30 * * * *\"` to a store", config.display())]
    NothingScheduled { config: PathBuf },

    /// A rendered unit or agent file failed its own check (a bug).
    #[error("rendered {}: {msg}", path.display())]
    Render { path: PathBuf, msg: String },
}

impl ScheduleError {
    /// Whose move this error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            ScheduleError::AlreadyInstalled { .. }
            | ScheduleError::ModeUnsupported { .. }
            | ScheduleError::Unschedulable { .. }
            | ScheduleError::NothingScheduled { .. } => ErrorClass::Usage,
            ScheduleError::ToolNotRun { .. }
            | ScheduleError::ToolFailed { .. }
            | ScheduleError::Render { .. } => ErrorClass::Failed,
        }
    }
}
