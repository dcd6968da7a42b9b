//! launchd agents: `io.logkeeper.<id>.daemon` (daemon mode), or per store
//! `io.logkeeper.<id>.sync.<store>` with `StartCalendarInterval` entries
//! (timer mode), rendered from the templates in `launchd/`.

use std::path::{Path, PathBuf};

use super::calendar::CronFields;
use super::{Backend, Context, Mode, Plan, PlannedCommand, PlannedFile, render, scheduled_stores};
use crate::config::{Config, StoreConfig};
use crate::error::Result;

pub const DAEMON_PLIST: &str = include_str!("../../../launchd/logkeeper-daemon.plist");
pub const SYNC_PLIST: &str = include_str!("../../../launchd/logkeeper-sync.plist");

/// More `StartCalendarInterval` entries than this are refused (daemon mode
/// runs such schedules without enumerating them).
pub const MAX_ENTRIES: usize = 500;

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A path inside an XML comment, which may not contain `--`.
fn comment(s: &str) -> String {
    let mut out = xml(s);
    while out.contains("--") {
        out = out.replace("--", "- -");
    }
    out
}

fn prefix(ctx: &Context) -> String {
    format!("io.logkeeper.{}.", ctx.id())
}

pub fn daemon_label(ctx: &Context) -> String {
    format!("{}daemon", prefix(ctx))
}

pub fn sync_label(ctx: &Context, store: &str) -> String {
    format!("{}sync.{store}", prefix(ctx))
}

fn vars(ctx: &Context, label: &str) -> Vec<(&'static str, String)> {
    let s = |p: &Path| p.to_string_lossy().into_owned();
    vec![
        ("LABEL", xml(label)),
        ("BIN", xml(&s(&ctx.bin))),
        ("CONFIG", xml(&s(&ctx.config))),
        ("STATE_DIR", xml(&s(&ctx.state_dir))),
        ("CONFIG_COMMENT", comment(&s(&ctx.config))),
    ]
}

fn rendered(template: &str, vars: &[(&'static str, String)]) -> String {
    let v: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    render(template, &v)
}

/// The `StartCalendarInterval` array's items, as plist XML.
pub fn calendar_xml(entries: &[Vec<(&'static str, u32)>]) -> String {
    entries
        .iter()
        .map(|e| {
            let mut s = String::from("\t\t<dict>\n");
            for (k, v) in e {
                s.push_str(&format!(
                    "\t\t\t<key>{k}</key>\n\t\t\t<integer>{v}</integer>\n"
                ));
            }
            s.push_str("\t\t</dict>");
            s
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parse a rendered agent back and check what launchd needs: a dict with a
/// Label and ProgramArguments.
pub fn check_plist(text: &str) -> std::result::Result<plist::Dictionary, String> {
    let v = plist::Value::from_reader_xml(text.as_bytes())
        .map_err(|e| format!("not a valid plist: {e}"))?;
    let d = v.into_dictionary().ok_or("the plist is not a dict")?;
    if d.get("Label").and_then(|l| l.as_string()).is_none() {
        return Err("no Label".into());
    }
    if d.get("ProgramArguments")
        .and_then(|a| a.as_array())
        .is_none_or(|a| a.is_empty())
    {
        return Err("no ProgramArguments".into());
    }
    Ok(d)
}

fn existing(ctx: &Context) -> Vec<PathBuf> {
    let p = prefix(ctx);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&ctx.launchd_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|path| {
                    path.file_name().is_some_and(|n| {
                        let n = n.to_string_lossy();
                        n.starts_with(&p) && n.ends_with(".plist")
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn label_of(p: &Path) -> String {
    p.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn launchctl(ctx: &Context, args: &[String]) -> Vec<String> {
    let mut v = ctx.launchctl.clone();
    v.extend(args.iter().cloned());
    v
}

/// A scheduled store's agent (timer mode), with a note if its `jitter`
/// cannot apply.
fn store_agent(
    ctx: &Context,
    store: &StoreConfig,
    fields: &CronFields,
    notes: &mut Vec<String>,
) -> Result<PlannedFile> {
    let expr = store
        .schedule
        .as_ref()
        .map(|s| s.expr())
        .unwrap_or_default();
    let entries = fields.to_launchd(expr, MAX_ENTRIES).map_err(|msg| {
        crate::Error::Schedule(crate::error::ScheduleError::Unschedulable {
            store: store.name.clone(),
            msg,
        })
    })?;
    let label = sync_label(ctx, &store.name);
    let mut v = vars(ctx, &label);
    v.push(("STORE", xml(&store.name)));
    v.push(("EXPR_COMMENT", comment(expr)));
    v.push(("CALENDAR", calendar_xml(&entries)));
    if store.jitter.is_some() {
        notes.push(format!(
            "store {:?}: launchd has no randomized delay; its `jitter` applies only in daemon mode",
            store.name
        ));
    }
    Ok(PlannedFile::new(
        ctx.launchd_dir.join(format!("{label}.plist")),
        rendered(SYNC_PLIST, &v),
    ))
}

pub fn plan_install(ctx: &Context, config: &Config, mode: Mode) -> Result<Plan> {
    let mut notes = Vec::new();
    let mut files = Vec::new();
    match mode {
        Mode::Daemon => {
            let label = daemon_label(ctx);
            files.push(PlannedFile::new(
                ctx.launchd_dir.join(format!("{label}.plist")),
                rendered(DAEMON_PLIST, &vars(ctx, &label)),
            ));
        }
        Mode::Timer => {
            for (store, fields) in scheduled_stores(config, &mut notes)? {
                files.push(store_agent(ctx, store, &fields, &mut notes)?);
            }
        }
    }
    for f in &files {
        check_plist(&f.content).map_err(|msg| {
            crate::Error::Schedule(crate::error::ScheduleError::Render {
                path: f.path.clone(),
                msg,
            })
        })?;
    }
    let keep: Vec<&PathBuf> = files.iter().map(|f| &f.path).collect();
    let remove: Vec<PathBuf> = existing(ctx)
        .into_iter()
        .filter(|p| !keep.contains(&p))
        .collect();
    let domain = format!("gui/{}", ctx.uid);
    let pre_commands = remove
        .iter()
        .map(|p| PlannedCommand::may_fail(launchctl(ctx, &bootout(&domain, p))))
        .collect();
    let mut commands = Vec::new();
    for f in &files {
        // Unload whatever version is loaded (it may not be), then load this one.
        commands.push(PlannedCommand::may_fail(launchctl(
            ctx,
            &bootout(&domain, &f.path),
        )));
        commands.push(PlannedCommand::must(launchctl(
            ctx,
            &[
                "bootstrap".into(),
                domain.clone(),
                f.path.to_string_lossy().into_owned(),
            ],
        )));
    }
    Ok(Plan {
        backend: Backend::Launchd,
        mode,
        install: true,
        files,
        remove,
        pre_commands,
        commands,
        crontab: None,
        notes,
    })
}

/// `launchctl` arguments that unload the agent whose plist is `plist`.
fn bootout(domain: &str, plist: &Path) -> [String; 2] {
    ["bootout".into(), format!("{domain}/{}", label_of(plist))]
}

pub fn plan_uninstall(ctx: &Context) -> Result<Plan> {
    let remove = existing(ctx);
    let domain = format!("gui/{}", ctx.uid);
    let pre_commands = remove
        .iter()
        // Must succeed: the plists and the marker are what lets a second
        // uninstall retry it (apply keeps them when it fails). An agent
        // that is not loaded is already booted out: `launchctl` says so
        // with 3 (ESRCH, "No such process") or 113 ("Could not find
        // specified service").
        .map(|p| PlannedCommand::must_unless(launchctl(ctx, &bootout(&domain, p)), &[3, 113]))
        .collect();
    let mode = if remove.iter().any(|p| label_of(p).contains(".sync.")) {
        Mode::Timer
    } else {
        Mode::Daemon
    };
    Ok(Plan {
        backend: Backend::Launchd,
        mode,
        install: false,
        files: Vec::new(),
        remove,
        pre_commands,
        commands: Vec::new(),
        crontab: None,
        notes: Vec::new(),
    })
}
