//! Applying a [`Plan`]: write and remove its files, run its commands,
//! record (or remove) the marker; a failed install takes back what it wrote.

use std::process::{Command, Stdio};

use chrono::Utc;

use super::{Backend, Context, Marker, Plan, PlannedCommand, PlannedFile, cron, read_marker};
use crate::error::{Error, IoContext, Result};
use crate::io::durable;

/// What [`apply`] did with the commands it may run: those that failed but
/// were tolerated, with why (C.16: `uninstall` said "ran ..." for them).
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// `(command, why)` for each tolerated command that failed or could not
    /// be run, in order.
    pub failed: Vec<(String, String)>,
}

/// Carry out a plan: stop what goes away, write files, remove stale ones,
/// write the crontab, run the registration commands, record the marker.
/// An install whose registration commands fail takes back the files it
/// wrote (C.16), so a failed install leaves no unit file behind.
///
/// An uninstall whose disable step (a `pre_command`) or crontab edit fails
/// changes nothing: the files and the marker stay, so the registration is
/// still shown and a second uninstall retries the same step.
pub fn apply(ctx: &Context, plan: &Plan) -> Result<Applied> {
    let mut applied = Applied::default();
    let hint = if plan.install {
        INSTALL_HINT.to_string()
    } else {
        uninstall_hint(ctx, plan.backend)
    };
    for c in &plan.pre_commands {
        run_command(c, &mut applied, &hint)?;
    }
    for f in &plan.files {
        if f.changed() {
            std::fs::create_dir_all(durable::parent_dir(&f.path)).ctx("create dir", &f.path)?;
            durable::atomic_write(&f.path, f.content.as_bytes(), 0o644)?;
        }
    }
    for p in &plan.remove {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove", p, e));
            }
            _ => {}
        }
    }
    if let Some(c) = &plan.crontab
        && c.before != c.after
    {
        cron::write_crontab(ctx, c.after.as_deref())
            .map_err(|e| if plan.install { e } else { with_hint(e, &hint) })?;
    }
    for c in &plan.commands {
        if let Err(e) = run_command(c, &mut applied, &hint) {
            if plan.install {
                take_back(&plan.files);
            }
            return Err(e);
        }
    }
    let marker = ctx.marker();
    if plan.install {
        let m = Marker {
            backend: plan.backend,
            mode: plan.mode,
            config: ctx.config.clone(),
            state_dir: ctx.state_dir.clone(),
            binary: ctx.bin.clone(),
            files: plan.files.iter().map(|f| f.path.clone()).collect(),
            fence: (plan.backend == Backend::Cron).then(|| ctx.id()),
            installed_at: Utc::now(),
        };
        // Rewrite only when what it says changed, so a second install is a no-op.
        let same = read_marker(ctx).is_some_and(|old| {
            old.backend == m.backend
                && old.mode == m.mode
                && old.binary == m.binary
                && old.files == m.files
                && old.fence == m.fence
        });
        if !same {
            durable::ensure_private_dir(&ctx.state_dir)?;
            let json = crate::error::to_json("the schedule marker", &marker, &m, true)?;
            durable::atomic_write(&marker, &json, 0o600)?;
        }
    } else if read_marker(ctx).is_some_and(|m| m.backend == plan.backend) {
        std::fs::remove_file(&marker).ctx("remove", &marker)?;
    }
    Ok(applied)
}

/// Put back what was there before the plan wrote its files: the earlier
/// content, or no file. Best effort: the command's error is what is said.
fn take_back(files: &[PlannedFile]) {
    for f in files.iter().filter(|f| f.changed()) {
        let undone = match &f.current {
            Some(old) => durable::atomic_write(&f.path, old.as_bytes(), 0o644),
            None => std::fs::remove_file(&f.path).ctx("remove", &f.path),
        };
        if let Err(e) = undone {
            tracing::warn!("could not take back {}: {e}", f.path.display());
        }
    }
}

/// What a failed registration command of an install leaves.
const INSTALL_HINT: &str =
    "; the files it would have registered were taken back: fix the cause and run install again";

/// What a failed step of an uninstall leaves, and what the user can do.
fn uninstall_hint(ctx: &Context, backend: Backend) -> String {
    let cause = match backend {
        Backend::Systemd => {
            " (e.g. run it in the user's login session, where `systemctl --user` reaches the user's service manager)"
        }
        Backend::Launchd => " (e.g. run it in the user's GUI login session)",
        Backend::Cron => "",
    };
    format!(
        "; nothing was removed: the schedule may still be active, and its registration ({}) is kept so that `logkeeper schedule uninstall` retries this step: fix the cause{cause} and run it again; if you know the jobs are not loaded, delete what `logkeeper schedule show` lists and that file by hand",
        ctx.marker().display()
    )
}

/// `e` with `hint` after the hint it has (a tool's error; others as they are).
fn with_hint(e: Error, hint: &str) -> Error {
    use crate::error::ScheduleError as S;
    match e {
        Error::Schedule(S::ToolFailed {
            cmd,
            status,
            stderr,
            hint: h,
        }) => Error::Schedule(S::ToolFailed {
            cmd,
            status,
            stderr,
            hint: h + hint,
        }),
        Error::Schedule(S::ToolNotRun {
            cmd,
            hint: h,
            source,
        }) => Error::Schedule(S::ToolNotRun {
            cmd,
            hint: h + hint,
            source,
        }),
        e => e,
    }
}

fn run_command(c: &PlannedCommand, applied: &mut Applied, hint: &str) -> Result<()> {
    let out = Command::new(&c.argv[0])
        .args(&c.argv[1..])
        .stdin(Stdio::null())
        .output();
    let ok = match &out {
        Ok(o) => {
            o.status.success()
                || o.status
                    .code()
                    .is_some_and(|code| c.already_done.contains(&code))
        }
        Err(_) => false,
    };
    if !ok && c.tolerate_failure {
        let why = match &out {
            Ok(o) => {
                let stderr = String::from_utf8_lossy(&o.stderr);
                match stderr.trim() {
                    "" => o.status.to_string(),
                    text => format!("{}: {text}", o.status),
                }
            }
            Err(e) => format!("could not run it: {e}"),
        };
        applied.failed.push((c.display(), why));
    }
    if !ok && !c.tolerate_failure {
        return Err(match out {
            Ok(o) => Error::Schedule(crate::error::ScheduleError::ToolFailed {
                cmd: c.display(),
                status: o.status.to_string(),
                stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
                hint: hint.to_string(),
            }),
            Err(source) => Error::Schedule(crate::error::ScheduleError::ToolNotRun {
                cmd: c.display(),
                hint: hint.to_string(),
                source,
            }),
        });
    }
    Ok(())
}
