//! `logkeeper demo [DIR]`: the first thing a new user runs.

use crate::cli::out::{out, outln};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use crate::demo::{DemoFeed, DemoLog, setup, setup_feed};
use crate::job::{SyncOptions, sync_store};
use crate::status::store_status;
use chrono::Local;

use crate::cli::exit;
use crate::cli::render::{self, human_bytes};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to create the demo store (default: logkeeper-demo-UID in the
    /// temp directory, reset and reused by each demo)
    pub dir: Option<PathBuf>,
    /// Events in the generated log
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Distinct keys in the generated log
    #[arg(long, default_value_t = 20_000)]
    pub keys: usize,
}

pub fn run(args: &Args) -> anyhow::Result<u8> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => default_dir()?,
    };
    let spec = DemoLog {
        events: args.events,
        keys: args.keys.max(1),
        ..DemoLog::default()
    };
    let demo = setup(&dir, &spec)?;
    let feed = DemoFeed::default();
    let (feed_dir, feed_store) = setup_feed(&demo, &feed)?;
    let before = std::fs::metadata(&demo.log)?.len();
    outln!(
        "logkeeper demo in {}",
        demo.paths.config.parent().unwrap_or(&dir).display()
    );
    outln!(
        "  wrote {}: {} events over {} keys, {} ({} malformed lines, a torn last line)",
        demo.log.display(),
        spec.events,
        spec.keys,
        human_bytes(before),
        spec.malformed
    );
    outln!("  config {}", demo.paths.config.display());
    outln!("  state  {}", demo.paths.state_dir.display());
    let lk = invocation();
    let flags = format!(
        "{lk} --config {} --state-dir {}",
        demo.paths.config.display(),
        demo.paths.state_dir.display()
    );
    outln!("\n$ {flags} sync now demo --force");
    let store = &demo.store;
    let rec = sync_store(
        &demo.paths,
        store,
        &SyncOptions {
            trigger: crate::job::Trigger::Demo,
            force: true,
            wait: false,
        },
    );
    render::print_run(&rec);
    let after = std::fs::metadata(&demo.log)?.len();
    outln!(
        "  before {} -> after {} ({:.1}x smaller); the torn last line stays for its writer",
        human_bytes(before),
        human_bytes(after),
        before as f64 / after.max(1) as f64
    );

    let feed_rec = sync_feed(&demo.paths, &feed_dir, &feed_store, &feed, &flags)?;
    outln!("\n$ {flags} status");
    let now = Local::now();
    let st = vec![
        store_status(&demo.paths, store, now),
        store_status(&demo.paths, &feed_store, now),
    ];
    out!("{}", render::table(&st));
    try_next(&flags, &dir);
    let code = exit::of_runs(&[rec, feed_rec], 0);
    Ok(if code != exit::OK {
        code
    } else {
        exit::of_statuses(&st)
    })
}

/// What to try next, and how to remove the demo.
fn try_next(flags: &str, dir: &std::path::Path) {
    outln!("\nTry next:");
    outln!("  {flags} replay demo | head -3");
    outln!(
        "  {flags} append demo '{{\"change_type\":\"SET\",\"item_type\":\"Task\",\"item\":{{\"id\":\"task-new\"}}}}'"
    );
    outln!("  {flags} replay feed | head -3");
    outln!("  {flags} status --json");
    outln!(
        "\nThe demo takes {} in {}; the next `logkeeper demo` resets and reuses it (or: rm -r {}).",
        human_bytes(du(dir)),
        dir.display(),
        crate::schedule::install::shell_quote(&dir.display().to_string())
    );
}

/// The segmented half of the demo: what the feed holds, and its first run.
fn sync_feed(
    paths: &crate::Paths,
    feed_dir: &std::path::Path,
    feed_store: &crate::StoreConfig,
    feed: &DemoFeed,
    flags: &str,
) -> anyhow::Result<crate::RunRecord> {
    let feed_bytes: u64 = std::fs::read_dir(feed_dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    outln!(
        "\n  wrote {}/: {} segments of {} events the app rotated itself ({}; one malformed line, one torn last line)",
        feed_dir.display(),
        feed.segments,
        feed.events_per_segment,
        human_bytes(feed_bytes)
    );
    outln!("\n$ {flags} sync now feed");
    let feed_rec = sync_store(
        paths,
        feed_store,
        &SyncOptions {
            trigger: crate::job::Trigger::Demo,
            force: false,
            wait: false,
        },
    );
    render::print_run(&feed_rec);
    Ok(feed_rec)
}

/// How to run this very binary from a shell (C.17): `logkeeper` if that is
/// what PATH finds, else this executable's path (after `cargo run` it is
/// not on PATH).
fn invocation() -> String {
    let me = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("logkeeper"))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::canonicalize(p).ok())
    });
    match me {
        Some(me) if on_path.as_ref() != Some(&me) => {
            crate::schedule::install::shell_quote(&me.display().to_string())
        }
        _ => "logkeeper".into(),
    }
}

/// The default demo directory, one per user, reused by every demo (C.17:
/// each demo used to leave ~51 MB in a new temp dir). Reused only if it is
/// ours and no one else can write to it; else a fresh temp dir.
fn default_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("logkeeper-demo-{uid}"));
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
            Ok(dir)
        }
        Ok(m) if m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0 => Ok(dir),
        _ => Ok(tempfile::Builder::new()
            .prefix("logkeeper-demo-")
            .tempdir()?
            .keep()),
    }
}

/// Bytes under `dir` (not following links).
fn du(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => du(&e.path()),
                _ => e.metadata().map_or(0, |m| m.len()),
            })
            .sum()
    })
}
