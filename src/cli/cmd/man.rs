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
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
        }
    }
    Ok(exit::OK)
}
