//! `on_failure` / `on_success` hooks: a shell command run after a run's
//! record is written.
//!
//! Invariants:
//! - A hook never changes the run's outcome: whatever it does (fails, hangs,
//!   cannot start), the result is logged and returned as a [`HookRun`](crate::job::record::HookRun),
//!   which the job records in the run record.
//! - A hook runs at most `timeout`: it gets its own process group, and at the
//!   timeout the whole group is killed with SIGKILL (so a `sleep` or `curl`
//!   it started dies with it). The group is only signalled while its leader
//!   is unreaped, so the id cannot have been reused.
//! - Its stdout goes to logkeeper's stderr, so `sync now --json` keeps one
//!   JSON document on stdout.
//!
//! Environment given to the command (`/bin/sh -c COMMAND`):
//! `LOGKEEPER_HOOK` (`on_failure` or `on_success`), `LOGKEEPER_STORE`,
//! `LOGKEEPER_LOG`, `LOGKEEPER_OUTCOME` (`ok`, `skipped`, `error`),
//! `LOGKEEPER_ERROR` (empty unless failed), `LOGKEEPER_EXIT_CODE` (what
//! `sync now` exits with for this run: 0 or 1), `LOGKEEPER_RECORD` (the
//! last-run record's path), `LOGKEEPER_RUN_ID`, `LOGKEEPER_TRIGGER`.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::job::record::{HookRun, Outcome, RunRecord};

/// Which hook a finished run calls, if any: `on_failure` after an error,
/// `on_success` after a run that counts as a success (it ran, or skipped
/// for `min_growth`). Busy runs and runs with no log yet call neither.
pub fn which<'c>(
    hooks: &'c crate::config::Hooks,
    rec: &RunRecord,
    success: bool,
) -> Option<(&'static str, &'c str)> {
    if rec.outcome == Outcome::Error {
        hooks.on_failure.as_deref().map(|c| ("on_failure", c))
    } else if success {
        hooks.on_success.as_deref().map(|c| ("on_success", c))
    } else {
        None
    }
}

/// The environment a hook gets for `rec`.
pub fn env(hook: &str, rec: &RunRecord, record_path: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("LOGKEEPER_HOOK", hook.to_string()),
        ("LOGKEEPER_STORE", rec.store.clone()),
        ("LOGKEEPER_LOG", rec.log.to_string_lossy().into_owned()),
        ("LOGKEEPER_OUTCOME", rec.outcome.as_str().to_string()),
        ("LOGKEEPER_ERROR", rec.error.clone().unwrap_or_default()),
        // The contract's exit code of this run, from its one home (C.16).
        ("LOGKEEPER_EXIT_CODE", rec.outcome.exit_code().to_string()),
        (
            "LOGKEEPER_RECORD",
            record_path.to_string_lossy().into_owned(),
        ),
        ("LOGKEEPER_RUN_ID", rec.run_id.clone()),
        ("LOGKEEPER_TRIGGER", rec.trigger.clone()),
    ]
}

/// Run `command` with `env`, killing it (and its process group) after
/// `timeout`.
pub fn run(hook: &str, command: &str, env: &[(&str, String)], timeout: Duration) -> HookRun {
    let t0 = Instant::now();
    let mut out = HookRun {
        hook: hook.to_string(),
        command: command.to_string(),
        exit_code: None,
        signal: None,
        timed_out: false,
        error: None,
        duration_ms: 0.0,
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .process_group(0);
    if let Ok(fd) = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() {
        cmd.stdout(Stdio::from(fd));
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(format!("/bin/sh -c {command:?}: {e}"));
            tracing::warn!("hook {}", out.describe());
            return out;
        }
    };
    let deadline = t0 + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                // The leader is unreaped, so its pid is still our group's id.
                unsafe { libc::killpg(child.id() as libc::pid_t, libc::SIGKILL) };
                out.timed_out = true;
                break child.wait().ok();
            }
            Ok(None) => {
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => {
                out.error = Some(format!("waiting for the hook: {e}"));
                break None;
            }
        }
    };
    if let Some(st) = status {
        out.exit_code = st.code();
        out.signal = st.signal();
    }
    out.duration_ms = (t0.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    if !out.ok() {
        tracing::warn!(
            "store {}: hook {} (the run's outcome stands)",
            env.iter()
                .find(|(k, _)| *k == "LOGKEEPER_STORE")
                .map_or("?", |(_, v)| v.as_str()),
            out.describe()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_hook_and_its_children_die_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let cmd = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let r = run("on_failure", &cmd, &[], Duration::from_millis(300));
        assert!(r.timed_out && !r.ok(), "{r:?}");
        assert_eq!(r.signal, Some(libc::SIGKILL));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background sleep was in the hook's group: it dies (gone, or a
        // zombie until init reaps it) instead of sleeping on.
        let dead = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.is_empty() || stat.split(' ').nth(2) == Some("Z")
        };
        let t0 = Instant::now();
        while !dead() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(dead(), "the hook's background child {pid} survived");
    }

    #[test]
    fn exit_codes_and_start_failures_are_reported() {
        let r = run("on_success", "exit 3", &[], Duration::from_secs(5));
        assert_eq!((r.exit_code, r.timed_out), (Some(3), false));
        assert_eq!(r.describe(), "on_success exited 3");
        let r = run(
            "on_success",
            "test \"$X\" = y",
            &[("X", "y".into())],
            Duration::from_secs(5),
        );
        assert!(r.ok(), "{r:?}");
    }
}
