//! `logkeeper man [--dir DIR]`: the man page (roff, from the clap
//! definition), or with `--dir` one page per command and subcommand
//! (`logkeeper.1`, `logkeeper-sync-now.1`, ...), which the main page's
//! SUBCOMMANDS section refers to.

use crate::cli::out::outln;
use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::cli::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write every page into DIR (e.g. ~/.local/share/man/man1) instead of
    /// printing the main page
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<u8> {
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("write man pages into {}", dir.display()))?;
            outln!("wrote the man pages into {}", dir.display());
            outln!("{}", where_man_looks(dir));
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
        }
    }
    Ok(exit::OK)
}

/// How `man` will find pages in `dir` (C.17): it searches the `man1`
/// folders of the roots on its path (`manpath`, which `MANPATH` sets), so
/// say whether `dir`'s root is one, and if not, how to add it.
fn where_man_looks(dir: &std::path::Path) -> String {
    let dir = crate::paths::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if dir.file_name().is_none_or(|n| n != "man1") {
        return format!(
            "note: man looks for these (section 1) pages in a folder named man1 under one of its roots; write them into ROOT/man1 instead, e.g. `logkeeper man --dir ~/.local/share/man/man1`, or read one with `man -l {}`",
            dir.join("logkeeper.1").display()
        );
    }
    let root = dir.parent().unwrap_or(&dir);
    let searched = std::process::Command::new("manpath")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match searched {
        Some(path) if path.split(':').any(|p| std::path::Path::new(p) == root) => {
            format!(
                "man searches {}: `man logkeeper` shows the page",
                root.display()
            )
        }
        Some(_) => format!(
            "man does not search {root} yet (see `manpath`): add it with\n  export MANPATH=\"{root}:$(manpath)\"\nin your shell profile (on a man-db system {home} is searched once ~/.local/bin is on PATH), then `man logkeeper`",
            root = root.display(),
            home = "~/.local/share/man",
        ),
        None => format!(
            "man finds these pages when {root} is on its search path: `export MANPATH=\"{root}:$MANPATH\"` (a leading or trailing ':' keeps the system's pages), then `man logkeeper`",
            root = root.display()
        ),
    }
}
