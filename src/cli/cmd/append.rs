//! `logkeeper append NAME [LINE...]`: append by the writer protocol.

use std::io::Read;

use crate::LogWriter;
use crate::Paths;
use crate::config::Config;

use crate::cli::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store whose log to append to
    pub name: String,
    /// JSON values, one per line to append (read from stdin, one per line, if none)
    pub lines: Vec<String>,
    /// fdatasync after appending
    #[arg(long)]
    pub sync: bool,
}

pub fn run(paths: &Paths, args: &Args) -> anyhow::Result<u8> {
    let config = Config::load(&paths.config)?;
    let store = config.store(&args.name)?;
    if store.segments().is_some() {
        anyhow::bail!(crate::Error::Config(
            crate::error::ConfigError::WrongStoreKind {
                store: store.name.clone(),
                msg: "is a directory of segments its app rotates itself; append through that app (logkeeper never writes to the active segment)",
            }
        ));
    }
    let lines: Vec<Vec<u8>> = if args.lines.is_empty() {
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input)?;
        let mut v: Vec<Vec<u8>> = input.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        if v.last().is_some_and(Vec::is_empty) {
            v.pop();
        }
        v
    } else {
        args.lines.iter().map(|l| l.as_bytes().to_vec()).collect()
    };
    if lines.is_empty() {
        return Ok(exit::OK);
    }
    LogWriter::open(store.path())?
        .sync_each(args.sync)
        .append_all(&lines)?;
    Ok(exit::OK)
}
