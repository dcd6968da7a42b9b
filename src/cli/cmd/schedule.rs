//! `logkeeper schedule install|uninstall|show`: register the stores'
//! schedules with systemd, launchd or cron.

use crate::Paths;
use crate::cli::out::{out, outln};
use crate::config::Config;
use crate::schedule::install::{self, Backend, Context, Mode, Plan};
use clap::Subcommand;

use crate::cli::exit;
use crate::cli::render::describe;

#[derive(Debug, Subcommand)]
pub enum ScheduleCmd {
    /// Render and register the jobs (idempotent)
    Install(InstallArgs),
    /// Unregister and remove this config's jobs (idempotent)
    Uninstall(UninstallArgs),
    /// Show what is registered for this config and whether it still works
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// systemd (Linux default), launchd (macOS default) or cron
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// daemon: one long-running `logkeeper daemon`; timer: one OS timer per
    /// store [default: daemon, or timer for cron]
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Print the files and commands without touching anything
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct UninstallArgs {
    /// The backend to remove from [default: the installed one, else the platform's]
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Print what would be removed without touching anything
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Print one JSON document (fields in docs/json.md)
    #[arg(long)]
    pub json: bool,
}

pub fn run(paths: &Paths, cmd: &ScheduleCmd) -> anyhow::Result<u8> {
    let ctx = Context::from_env(paths)?;
    match cmd {
        ScheduleCmd::Install(a) => {
            let config = Config::load(&paths.config)?;
            let backend = a.backend.unwrap_or_else(Backend::default_for_platform);
            let mode = match a.mode {
                Some(m) => m,
                None if backend == Backend::Cron => Mode::Timer,
                None => Mode::Daemon,
            };
            // B.8: a store with an invalid table gets no schedule; say so.
            for b in &config.broken {
                eprintln!(
                    "logkeeper: warning: store {:?} is not scheduled: {}",
                    b.name,
                    b.error(&config.path)
                );
            }
            let plan = install::plan_install(&ctx, &config, backend, mode)?;
            finish(&ctx, &plan, a.dry_run)
        }
        ScheduleCmd::Uninstall(a) => {
            let backend = a.backend.unwrap_or_else(|| {
                install::read_marker(&ctx).map_or_else(Backend::default_for_platform, |m| m.backend)
            });
            let plan = install::plan_uninstall(&ctx, backend)?;
            finish(&ctx, &plan, a.dry_run)
        }
        ScheduleCmd::Show(a) => {
            let reg = install::registration(&paths.state_dir, &paths.config, Some(&ctx.crontab));
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&reg)?);
            } else {
                match &reg {
                    Some(r) => out!("{}", describe(r)),
                    None => outln!(
                        "no schedule installed for {} (install one with `logkeeper schedule install`)",
                        paths.config.display()
                    ),
                }
            }
            Ok(crate::cli::exit::of_registration(reg.as_ref()))
        }
    }
}

/// `--dry-run`: what the plan would write, remove and run; nothing changes.
fn show_plan(ctx: &Context, plan: &Plan, verb: &str) -> anyhow::Result<u8> {
    outln!(
        "# dry run: {verb} ({} backend, {} mode) for {}; nothing is changed",
        plan.backend.as_str(),
        plan.mode.as_str(),
        ctx.config.display()
    );
    for f in &plan.files {
        let state = match (&f.current, f.changed()) {
            (None, _) => "new",
            (Some(_), true) => "changed",
            (Some(_), false) => "unchanged",
        };
        outln!("\n# file {} ({state})", f.path.display());
        out!("{}", f.content);
    }
    for p in &plan.remove {
        outln!("\n# remove {}", p.display());
    }
    if let Some(c) = &plan.crontab {
        match &c.after {
            Some(after) => {
                outln!(
                    "\n# crontab ({})",
                    if c.before == c.after {
                        "unchanged"
                    } else {
                        "new content"
                    }
                );
                out!("{after}");
            }
            None => outln!("\n# crontab: removed (`crontab -r`)"),
        }
    }
    let cmds: Vec<_> = plan.pre_commands.iter().chain(&plan.commands).collect();
    if !cmds.is_empty() {
        outln!("\n# commands");
        for c in cmds {
            outln!("{}", c.display());
        }
    }
    for n in &plan.notes {
        outln!("\n# note: {n}");
    }
    Ok(exit::OK)
}

fn finish(ctx: &Context, plan: &Plan, dry_run: bool) -> anyhow::Result<u8> {
    let verb = if plan.install { "install" } else { "uninstall" };
    if dry_run {
        return show_plan(ctx, plan, verb);
    }
    let changed = plan.changes_anything();
    let applied = install::apply(ctx, plan)?;
    for f in &plan.files {
        outln!(
            "{} {}",
            if f.changed() { "wrote" } else { "unchanged" },
            f.path.display()
        );
    }
    for p in &plan.remove {
        outln!("removed {}", p.display());
    }
    if let Some(c) = &plan.crontab {
        outln!(
            "crontab: {}",
            if c.before == c.after {
                "unchanged"
            } else if plan.install {
                "logkeeper block written"
            } else {
                "logkeeper block removed"
            }
        );
    }
    // C.16: "ran" only for a command that succeeded.
    for c in plan.pre_commands.iter().chain(&plan.commands) {
        let shown = c.display();
        match applied.failed.iter().find(|(cmd, _)| *cmd == shown) {
            Some((_, why)) if plan.install => {
                outln!("tolerated: {shown} failed (it unloads what may not be loaded): {why}")
            }
            Some((_, why)) => eprintln!("logkeeper: {shown} failed: {why}"),
            None => outln!("ran {shown}"),
        }
    }
    for n in &plan.notes {
        outln!("note: {n}");
    }
    if !changed {
        outln!("{verb}: nothing to change");
    }
    if !plan.install && !applied.failed.is_empty() {
        // The disable step succeeded (a failed one stops `apply` with the
        // files and the marker kept); a follow-up (`daemon-reload`) did not:
        // exit 1 (C.16).
        eprintln!(
            "logkeeper: {verb} is incomplete: the jobs were stopped and their files and registration removed, but the service manager may still list them until it reloads; run the failed command(s) by hand"
        );
        return Ok(exit::FAILED);
    }
    Ok(exit::OK)
}
