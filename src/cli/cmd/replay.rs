//! `logkeeper replay NAME`: print the folded state.

use std::io::Write;

use logkeeper::config::Config;

use logkeeper::paths::Paths;

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
    let plan = logkeeper::replay::replay(store, &mut out)?;
    out.flush()?;
    if !plan.bad.is_empty() {
        eprintln!(
            "logkeeper: skipped {} malformed line(s) in {} (a sync moves them to the quarantine file)",
            plan.bad.len(),
            store.log.display()
        );
    }
    Ok(0)
}
