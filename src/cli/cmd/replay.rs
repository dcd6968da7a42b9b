//! `logkeeper replay NAME`: print the folded state, now or as it was.

use std::io::Write;

use crate::Paths;
use crate::config::{Config, StoreConfig};

use crate::cli::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store to replay
    pub name: String,
    /// Print the state as of TIME: at the latest retained point at or
    /// before it, or exactly at it with the store's `time` pointer (RFC
    /// 3339, local "YYYY-MM-DD HH:MM[:SS]" or "YYYY-MM-DD", or Unix seconds)
    #[arg(long, value_name = "TIME", conflicts_with = "points")]
    pub as_of: Option<String>,
    /// List the retained points --as-of can use
    #[arg(long)]
    pub points: bool,
    /// With --points: one JSON document (fields in docs/replay.md)
    #[arg(long, requires = "points")]
    pub json: bool,
}

pub fn run(paths: &Paths, args: &Args) -> anyhow::Result<u8> {
    let config = Config::load(&paths.config)?;
    let store = config.store(&args.name)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    if args.points {
        return points(paths, store, args.json, &mut out);
    }
    if let Some(t) = &args.as_of {
        return as_of(paths, store, t, &mut out);
    }
    if store.segments().is_some() {
        let r = crate::replay_segments(store, &mut out)?;
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
    if let Err(e) = std::fs::symlink_metadata(store.path())
        && e.kind() == std::io::ErrorKind::NotFound
    {
        eprintln!(
            "logkeeper: {} does not exist yet: no state to replay",
            store.path().display()
        );
        return Ok(exit::OK);
    }
    let found = crate::replay(store, &mut out)?;
    out.flush()?;
    if found.malformed > 0 {
        eprintln!(
            "logkeeper: skipped {} malformed line(s) in {} (a sync moves them to the quarantine file)",
            found.malformed,
            store.path().display()
        );
    }
    Ok(exit::OK)
}

/// `replay --points [--json]`: the retained points a replay can go back to.
fn points(
    paths: &Paths,
    store: &StoreConfig,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<u8> {
    let points = crate::replay_points(paths, store)?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "store": store.name, "points": points })
            )?
        )?;
    } else {
        writeln!(
            out,
            "{:<26} {:<8} {:>10} {:>12}  FILE",
            "TIME", "KIND", "LINES", "BYTES"
        )?;
        for p in &points {
            writeln!(
                out,
                "{:<26} {:<8} {:>10} {:>12}  {}",
                p.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                p.kind,
                p.lines,
                p.bytes,
                p.file.display()
            )?;
        }
    }
    out.flush()?;
    Ok(exit::OK)
}

/// `replay --as-of TIME`: the state at that time, with what it is on stderr.
fn as_of(paths: &Paths, store: &StoreConfig, t: &str, out: &mut impl Write) -> anyhow::Result<u8> {
    let at = crate::parse_time(t)?;
    let r = crate::replay_as_of(paths, store, at, &mut *out)?;
    out.flush()?;
    let when = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let point = r
        .point
        .time
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if r.exact {
        eprintln!(
            "logkeeper: store {} exactly as of {when} (by {}): {} line(s), folded from every retained line up to then ({} file(s)); {} later line(s) skipped",
            store.name,
            store.time.as_deref().unwrap_or(""),
            r.lines_out,
            r.files,
            r.skipped_after
        );
    } else {
        eprintln!(
            "logkeeper: store {} as of {when}: {} line(s), the state at the {} point {point} ({})",
            store.name,
            r.lines_out,
            r.point.kind,
            r.point.file.display()
        );
    }
    if r.untimed > 0 {
        eprintln!(
            "logkeeper: note: {} line(s) have no readable time at {}: kept",
            r.untimed,
            store.time.as_deref().unwrap_or("")
        );
    }
    if r.malformed > 0 {
        eprintln!("logkeeper: skipped {} malformed line(s)", r.malformed);
    }
    Ok(exit::OK)
}
