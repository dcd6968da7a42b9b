//! `logkeeper completions SHELL`: print a completion script (clap_complete).

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::cli::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_parser = ["bash", "zsh", "fish"])]
    pub shell: String,
}

pub fn run(args: &Args) -> anyhow::Result<u8> {
    let shell = match args.shell.as_str() {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        _ => Shell::Fish,
    };
    // Into memory first: `generate` panics on a failed write (B.10).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "logkeeper", &mut script);
    std::io::Write::write_all(&mut std::io::stdout(), &script)?;
    Ok(exit::OK)
}
