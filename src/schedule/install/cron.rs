//! The cron backend: one fenced block in the user's crontab, one line per
//! store with the store's own expression. Every line outside the block is
//! kept byte for byte; the block is replaced in place or appended.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Backend, Context, Mode, Plan, render, scheduled_stores, shell_quote};
use crate::config::Config;
use crate::error::{Error, Result};

pub fn begin_line(id: &str, config: &str) -> String {
    format!(
        "# BEGIN logkeeper {id} ({}) - managed by `logkeeper schedule install`; do not edit",
        config.replace('\n', " ")
    )
}

pub fn end_line(id: &str) -> String {
    format!("# END logkeeper {id}")
}

/// The byte range of this id's block (from its BEGIN line to the end of its
/// END line, newline included), if present.
pub fn find_block(text: &str, id: &str) -> Option<(usize, usize)> {
    let begin = format!("# BEGIN logkeeper {id} ");
    let end = end_line(id);
    let mut offset = 0;
    let mut start = None;
    for line in text.split_inclusive('\n') {
        let l = line.trim_end_matches('\n');
        if start.is_none() && l.starts_with(&begin) {
            start = Some(offset);
        } else if let Some(s) = start
            && l == end
        {
            return Some((s, offset + line.len()));
        }
        offset += line.len();
    }
    // A BEGIN without END: the block runs to the end.
    start.map(|s| (s, text.len()))
}

/// `cmd arg` could not be run; says so plainly when cron is not installed.
fn not_run(cmd: &[String], arg: &str, source: std::io::Error) -> Error {
    Error::Schedule(crate::error::ScheduleError::ToolNotRun {
        cmd: format!("{} {arg}", cmd.join(" ")),
        hint: if source.kind() == std::io::ErrorKind::NotFound {
            ": cron is not installed; install it (e.g. `apt-get install cron`), or use another backend (--backend systemd)".into()
        } else {
            String::new()
        },
        source,
    })
}

/// `cmd arg` ran and failed.
fn failed(cmd: &[String], arg: &str, out: &std::process::Output) -> Error {
    Error::Schedule(crate::error::ScheduleError::ToolFailed {
        cmd: format!("{} {arg}", cmd.join(" ")),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        hint: String::new(),
    })
}

/// The crontab as `crontab -l` prints it; None when the user has none.
pub fn read_crontab(cmd: &[String]) -> Result<Option<String>> {
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .arg("-l")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| not_run(cmd, "-l", e))?;
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    if String::from_utf8_lossy(&out.stderr).contains("no crontab") {
        return Ok(None);
    }
    Err(failed(cmd, "-l", &out))
}

/// Install `text` as the crontab (`crontab -`), or remove it (`crontab -r`).
pub fn write_crontab(ctx: &Context, text: Option<&str>) -> Result<()> {
    let cmd = &ctx.crontab;
    let Some(text) = text else {
        let out = Command::new(&cmd[0])
            .args(&cmd[1..])
            .arg("-r")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| not_run(cmd, "-r", e))?;
        if !out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("no crontab") {
            return Err(failed(cmd, "-r", &out));
        }
        return Ok(());
    };
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| not_run(cmd, "-", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| not_run(cmd, "-", e))?;
    }
    let out = child.wait_with_output().map_err(|e| not_run(cmd, "-", e))?;
    if !out.status.success() {
        return Err(failed(cmd, "-", &out));
    }
    Ok(())
}

/// Escape for the command part of a crontab line, where `%` means newline.
fn cron_escape(s: &str) -> String {
    s.replace('%', "\\%")
}

/// The fenced block for `config`.
pub fn block(ctx: &Context, config: &Config, notes: &mut Vec<String>) -> Result<String> {
    let id = ctx.id();
    let cfg = ctx.config.to_string_lossy();
    let state = ctx.state_dir.to_string_lossy();
    let bin = ctx.bin.to_string_lossy();
    let mut out = begin_line(&id, &cfg);
    out.push('\n');
    for (store, _) in scheduled_stores(config, notes)? {
        let expr = store
            .schedule
            .as_ref()
            .map(|s| s.expr())
            .unwrap_or_default();
        if store.jitter.is_some() {
            notes.push(format!(
                "store {:?}: cron has no randomized delay; its `jitter` applies only in daemon mode",
                store.name
            ));
        }
        let line = render(
            "@EXPR@ LOGKEEPER_CONFIG=@CONFIG@ LOGKEEPER_STATE_DIR=@STATE@ @BIN@ sync now @STORE@ --trigger cron >/dev/null",
            &[
                ("EXPR", expr),
                ("CONFIG", &cron_escape(&shell_quote(&cfg))),
                ("STATE", &cron_escape(&shell_quote(&state))),
                ("BIN", &cron_escape(&shell_quote(&bin))),
                ("STORE", &shell_quote(&store.name)),
            ],
        );
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&end_line(&id));
    out.push('\n');
    Ok(out)
}

/// `current` with this id's block replaced by `block` (or appended), or
/// removed when `block` is None.
pub fn splice(current: &str, id: &str, block: Option<&str>) -> String {
    match find_block(current, id) {
        Some((a, b)) => format!("{}{}{}", &current[..a], block.unwrap_or(""), &current[b..]),
        None => match block {
            None => current.to_string(),
            Some(bl) => {
                let mut s = current.to_string();
                if !s.is_empty() && !s.ends_with('\n') {
                    s.push('\n');
                }
                s.push_str(bl);
                s
            }
        },
    }
}

pub fn plan_install(ctx: &Context, config: &Config) -> Result<Plan> {
    let mut notes = Vec::new();
    let bl = block(ctx, config, &mut notes)?;
    // Without cron the plan is still shown (`--dry-run`), with a note; a
    // real install then fails at `crontab -` with the same words.
    let before = match read_crontab(&ctx.crontab) {
        Err(e) if !command_exists(&ctx.crontab[0]) => {
            notes.push(e.to_string());
            None
        }
        other => other?,
    };
    let after = splice(before.as_deref().unwrap_or(""), &ctx.id(), Some(&bl));
    Ok(Plan {
        backend: Backend::Cron,
        mode: Mode::Timer,
        install: true,
        files: Vec::new(),
        remove: Vec::new(),
        pre_commands: Vec::new(),
        commands: Vec::new(),
        crontab: Some(super::CrontabChange {
            before,
            after: Some(after),
        }),
        notes,
    })
}

/// Whether `cmd` names an existing file, directly or on `PATH`.
fn command_exists(cmd: &str) -> bool {
    if cmd.contains('/') {
        return Path::new(cmd).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

pub fn plan_uninstall(ctx: &Context) -> Result<Plan> {
    let before = read_crontab(&ctx.crontab)?;
    let after = before.as_deref().map(|b| splice(b, &ctx.id(), None));
    // A crontab that held only our block goes away, as before the install.
    let after = after.filter(|a| !(a.is_empty() && before.as_deref() != Some("")));
    Ok(Plan {
        backend: Backend::Cron,
        mode: Mode::Timer,
        install: false,
        files: Vec::new(),
        remove: Vec::new(),
        pre_commands: Vec::new(),
        commands: Vec::new(),
        crontab: Some(super::CrontabChange { before, after }),
        notes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_keeps_other_lines() {
        let cur = "MAILTO=x\n0 1 * * * a\n# BEGIN logkeeper abc (c) - x\nold\n# END logkeeper abc\n5 * * * * b";
        let out = splice(
            cur,
            "abc",
            Some("# BEGIN logkeeper abc (c) - x\nnew\n# END logkeeper abc\n"),
        );
        assert_eq!(
            out,
            "MAILTO=x\n0 1 * * * a\n# BEGIN logkeeper abc (c) - x\nnew\n# END logkeeper abc\n5 * * * * b"
        );
        let removed = splice(&out, "abc", None);
        assert_eq!(removed, "MAILTO=x\n0 1 * * * a\n5 * * * * b");
        // Another config's block is left alone.
        assert_eq!(splice(&removed, "def", None), removed);
    }
}
