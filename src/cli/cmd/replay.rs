//! `logkeeper replay NAME`: print the folded state.

use std::io::Write;

use logkeeper::Paths;
use logkeeper::config::Config;

use crate::cli::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store to replay
    pub name: String,
}

pub fn run(paths: &Paths, args: &Args) -> anyhow::Result<u8> {
    let config = Config::load(&paths.config)?;
    let store = config.store(&args.name)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    if store.segments.is_some() {
        let r = logkeeper::replay_segments(store, &mut out)?;
        out.flush()?;
        if r.malformed > 0 {
            eprintln!(
                "logkeeper: skipped {} malformed line(s) in {} segment(s) (a sync moves those of sealed segments to the quarantine file)",
                r.malformed, r.files
            );
        }
        return Ok(exit::OK);
    }
    // C.15: like `sync now`, a log that does not exist yet is no state,
    // not an error.
    if let Err(e) = std::fs::symlink_metadata(&store.log)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        eprintln!(
            "logkeeper: {} does not exist yet: no state to replay",
            store.log.display()
        );
        return Ok(exit::OK);
    }
    let found = logkeeper::replay(store, &mut out)?;
    out.flush()?;
    if found.malformed > 0 {
        eprintln!(
            "logkeeper: skipped {} malformed line(s) in {} (a sync moves them to the quarantine file)",
            found.malformed,
            store.log.display()
        );
    }
    Ok(exit::OK)
}
