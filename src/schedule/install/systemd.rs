//! systemd user units: `logkeeper-<id>-daemon.service` (daemon mode), or per
//! store `logkeeper-<id>-sync-<store>.service` + `.timer` (timer mode),
//! rendered from the templates in `systemd/`.

use std::path::{Path, PathBuf};

use super::calendar::CronFields;
use super::{Backend, Context, Mode, Plan, PlannedCommand, PlannedFile, render, scheduled_stores};
use crate::config::{Config, StoreConfig};
use crate::error::Result;

pub const DAEMON_SERVICE: &str = include_str!("../../../systemd/logkeeper-daemon.service");
pub const SYNC_SERVICE: &str = include_str!("../../../systemd/logkeeper-sync.service");
pub const SYNC_TIMER: &str = include_str!("../../../systemd/logkeeper-sync.timer");
pub const FAILURE_SERVICE: &str = include_str!("../../../systemd/logkeeper-failure@.service");

/// Quote one word for a unit file's command line or `Environment=`:
/// double quotes, with `\`, `"`, `%` (specifiers) and `$` (variables) escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A path in a comment or `Description=` (specifiers escaped, one line).
fn comment(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('%', "%%")
        .replace('\n', " ")
}

fn prefix(ctx: &Context) -> String {
    format!("logkeeper-{}-", ctx.id())
}

pub fn daemon_unit(ctx: &Context) -> String {
    format!("{}daemon.service", prefix(ctx))
}

pub fn sync_unit(ctx: &Context, store: &str, ext: &str) -> String {
    format!("{}sync-{store}.{ext}", prefix(ctx))
}

/// The `OnFailure=` template of timer mode (instance: the store's name,
/// whose characters are all valid in a unit instance).
pub fn failure_template(ctx: &Context) -> String {
    format!("{}failure@.service", prefix(ctx))
}

fn common_vars(ctx: &Context) -> Vec<(&'static str, String)> {
    let s = |p: &Path| p.to_string_lossy().into_owned();
    vec![
        ("BIN", quote(&s(&ctx.bin))),
        ("CONFIG", quote(&s(&ctx.config))),
        ("STATE_DIR", quote(&s(&ctx.state_dir))),
        ("CONFIG_COMMENT", comment(&ctx.config)),
        (
            "ENV_CONFIG",
            quote(&format!("LOGKEEPER_CONFIG={}", s(&ctx.config))),
        ),
        (
            "ENV_STATE_DIR",
            quote(&format!("LOGKEEPER_STATE_DIR={}", s(&ctx.state_dir))),
        ),
    ]
}

fn rendered(template: &str, vars: &[(&'static str, String)]) -> String {
    let v: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    render(template, &v)
}

/// This config's unit files present in the unit directory.
fn existing_units(ctx: &Context) -> Vec<PathBuf> {
    let p = prefix(ctx);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&ctx.systemd_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|path| {
                    path.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&p))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn systemctl(ctx: &Context, args: &[&str]) -> Vec<String> {
    let mut v = ctx.systemctl.clone();
    v.push("--user".into());
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// A scheduled store's service and timer units (timer mode).
fn store_units(
    ctx: &Context,
    base: &[(&'static str, String)],
    template: &str,
    store: &StoreConfig,
    fields: &CronFields,
) -> (PlannedFile, PlannedFile) {
    let service = sync_unit(ctx, &store.name, "service");
    let timer = sync_unit(ctx, &store.name, "timer");
    let mut vars = base.to_vec();
    let expr = store
        .schedule
        .as_ref()
        .map(|s| s.expr())
        .unwrap_or_default();
    vars.push(("STORE", store.name.clone()));
    vars.push(("EXPR", expr.replace('%', "%%")));
    vars.push(("SERVICE", service.clone()));
    vars.push((
        "FAILURE_UNIT",
        template.replace("@.", &format!("@{}.", store.name)),
    ));
    vars.push((
        "ON_CALENDAR",
        fields
            .to_systemd()
            .iter()
            .map(|c| format!("OnCalendar={c}"))
            .collect::<Vec<_>>()
            .join("\n"),
    ));
    vars.push((
        "JITTER_SECS",
        format!("{}s", store.jitter.map_or(0, |j| j.as_secs())),
    ));
    (
        PlannedFile::new(
            ctx.systemd_dir.join(&service),
            rendered(SYNC_SERVICE, &vars),
        ),
        PlannedFile::new(ctx.systemd_dir.join(&timer), rendered(SYNC_TIMER, &vars)),
    )
}

pub fn plan_install(ctx: &Context, config: &Config, mode: Mode) -> Result<Plan> {
    let mut notes = Vec::new();
    let base = common_vars(ctx);
    let mut files = Vec::new();
    let mut enable = Vec::new();
    match mode {
        Mode::Daemon => {
            let name = daemon_unit(ctx);
            files.push(PlannedFile::new(
                ctx.systemd_dir.join(&name),
                rendered(DAEMON_SERVICE, &base),
            ));
            enable.push(name);
        }
        Mode::Timer => {
            let template = failure_template(ctx);
            let mut vars = base.clone();
            vars.push(("UNIT", template.clone()));
            files.push(PlannedFile::new(
                ctx.systemd_dir.join(&template),
                rendered(FAILURE_SERVICE, &vars),
            ));
            for (store, fields) in scheduled_stores(config, &mut notes)? {
                let (service, timer) = store_units(ctx, &base, &template, store, &fields);
                enable.push(file_name(&timer.path));
                files.push(service);
                files.push(timer);
            }
        }
    }
    let keep: Vec<&PathBuf> = files.iter().map(|f| &f.path).collect();
    let remove: Vec<PathBuf> = existing_units(ctx)
        .into_iter()
        .filter(|p| !keep.contains(&p))
        .collect();
    let mut pre_commands = Vec::new();
    let stale: Vec<String> = remove
        .iter()
        .map(|p| file_name(p))
        .filter(|n| !n.ends_with(".service") || n.ends_with("daemon.service"))
        .collect();
    if !stale.is_empty() {
        let mut a = vec!["disable", "--now"];
        a.extend(stale.iter().map(String::as_str));
        pre_commands.push(PlannedCommand::may_fail(systemctl(ctx, &a)));
    }
    let changed: Vec<String> = files
        .iter()
        .filter(|f| f.changed() && f.current.is_some())
        .map(|f| file_name(&f.path))
        .filter(|n| n.ends_with(".timer") || n.ends_with("daemon.service"))
        .collect();
    let mut commands = vec![PlannedCommand::must(systemctl(ctx, &["daemon-reload"]))];
    let mut a = vec!["enable", "--now"];
    a.extend(enable.iter().map(String::as_str));
    commands.push(PlannedCommand::must(systemctl(ctx, &a)));
    if !changed.is_empty() {
        // Units already running pick up their new definition.
        let mut a = vec!["restart"];
        a.extend(changed.iter().map(String::as_str));
        commands.push(PlannedCommand::must(systemctl(ctx, &a)));
    }
    Ok(Plan {
        backend: Backend::Systemd,
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

pub fn plan_uninstall(ctx: &Context) -> Result<Plan> {
    let remove = existing_units(ctx);
    let units: Vec<String> = remove
        .iter()
        .map(|p| file_name(p))
        .filter(|n| n.ends_with(".timer") || n.ends_with("daemon.service"))
        .collect();
    let mut pre_commands = Vec::new();
    let mut commands = Vec::new();
    if !units.is_empty() {
        let mut a = vec!["disable", "--now"];
        a.extend(units.iter().map(String::as_str));
        // Must succeed: the files and the marker are what lets a second
        // uninstall retry it (apply keeps them when it fails).
        pre_commands.push(PlannedCommand::must(systemctl(ctx, &a)));
        commands.push(PlannedCommand::may_fail(systemctl(ctx, &["daemon-reload"])));
    }
    let mode = if units.iter().any(|u| u.ends_with(".timer")) {
        Mode::Timer
    } else {
        Mode::Daemon
    };
    Ok(Plan {
        backend: Backend::Systemd,
        mode,
        install: false,
        files: Vec::new(),
        remove,
        pre_commands,
        commands,
        crontab: None,
        notes: Vec::new(),
    })
}
