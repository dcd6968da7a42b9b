//! `logkeeper schedule install|uninstall|show`: register the stores'
//! schedules with systemd, launchd or cron.

use clap::Subcommand;
use logkeeper::Paths;
use logkeeper::config::Config;
use logkeeper::schedule::install::{self, Backend, Context, Mode, Plan};

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
                println!("{}", serde_json::to_string_pretty(&reg)?);
            } else {
                match &reg {
                    Some(r) => print!("{}", describe(r)),
                    None => println!(
                        "no schedule installed for {} (install one with `logkeeper schedule install`)",
                        paths.config.display()
                    ),
                }
            }
            Ok(crate::cli::exit::of_registration(reg.as_ref()))
        }
    }
}

fn finish(ctx: &Context, plan: &Plan, dry_run: bool) -> anyhow::Result<u8> {
    let verb = if plan.install { "install" } else { "uninstall" };
    if dry_run {
        println!(
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
            println!("\n# file {} ({state})", f.path.display());
            print!("{}", f.content);
        }
        for p in &plan.remove {
            println!("\n# remove {}", p.display());
        }
        if let Some(c) = &plan.crontab {
            match &c.after {
                Some(after) => {
                    println!(
                        "\n# crontab ({})",
                        if c.before == c.after {
                            "unchanged"
                        } else {
                            "new content"
                        }
                    );
                    print!("{after}");
                }
                None => println!("\n# crontab: removed (`crontab -r`)"),
            }
        }
        let cmds: Vec<_> = plan.pre_commands.iter().chain(&plan.commands).collect();
        if !cmds.is_empty() {
            println!("\n# commands");
            for c in cmds {
                println!("{}", c.display());
            }
        }
        for n in &plan.notes {
            println!("\n# note: {n}");
        }
        return Ok(exit::OK);
    }
    let changed = plan.changes_anything();
    install::apply(ctx, plan)?;
    for f in &plan.files {
        println!(
            "{} {}",
            if f.changed() { "wrote" } else { "unchanged" },
            f.path.display()
        );
    }
    for p in &plan.remove {
        println!("removed {}", p.display());
    }
    if let Some(c) = &plan.crontab {
        println!(
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
    for c in plan.pre_commands.iter().chain(&plan.commands) {
        println!("ran {}", c.display());
    }
    for n in &plan.notes {
        println!("note: {n}");
    }
    if !changed {
        println!("{verb}: nothing to change");
    }
    Ok(exit::OK)
}
