//! `logkeeper demo [DIR]`: the first thing a new user runs.

use crate::cli::out::{out, outln};
use std::path::PathBuf;

use chrono::Local;
use logkeeper::demo::{DemoFeed, DemoLog, setup, setup_feed};
use logkeeper::job::{SyncOptions, sync_store};
use logkeeper::status::store_status;

use crate::cli::exit;
use crate::cli::render::{self, human_bytes};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to create the demo store (default: a new temp directory, kept)
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
        None => tempfile::Builder::new()
            .prefix("logkeeper-demo-")
            .tempdir()?
            .keep(),
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
    let flags = format!(
        "--config {} --state-dir {}",
        demo.paths.config.display(),
        demo.paths.state_dir.display()
    );
    outln!("\n$ logkeeper {flags} sync now demo --force");
    let store = &demo.store;
    let rec = sync_store(
        &demo.paths,
        store,
        &SyncOptions {
            trigger: logkeeper::job::Trigger::Demo,
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

    let feed_bytes: u64 = std::fs::read_dir(&feed_dir)?
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
    outln!("\n$ logkeeper {flags} sync now feed");
    let feed_rec = sync_store(
        &demo.paths,
        &feed_store,
        &SyncOptions {
            trigger: logkeeper::job::Trigger::Demo,
            force: false,
            wait: false,
        },
    );
    render::print_run(&feed_rec);
    outln!("\n$ logkeeper {flags} status");
    let now = Local::now();
    let st = vec![
        store_status(&demo.paths, store, now),
        store_status(&demo.paths, &feed_store, now),
    ];
    out!("{}", render::table(&st));
    outln!("\nTry next:");
    outln!("  logkeeper {flags} replay demo | head -3");
    outln!(
        "  logkeeper {flags} append demo '{{\"change_type\":\"SET\",\"item_type\":\"Task\",\"item\":{{\"id\":\"task-new\"}}}}'"
    );
    outln!("  logkeeper {flags} replay feed | head -3");
    outln!("  logkeeper {flags} status --json");
    let code = exit::of_runs(&[rec, feed_rec], 0);
    Ok(if code != exit::OK {
        code
    } else {
        exit::of_statuses(&st)
    })
}
