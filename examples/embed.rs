//! Embedding logkeeper in a program, without the CLI or a config file.
//!
//! The program keeps a task journal: one thread appends events by the
//! writer protocol while the main thread compacts the log on its own
//! schedule (every few milliseconds here; a real program would use minutes,
//! or run [`logkeeper::Daemon`] in its tokio runtime).
//! At the end it replays the log and checks the state is exactly the latest
//! event of each live task, in the order of their last writes, and exits 1
//! if not.
//!
//! Run it with `cargo run --example embed`.

use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

use logkeeper::{LogWriter, Outcome, Paths, StoreConfig, SyncOptions, replay, sync_store};

/// Events the writer appends, over this many task ids.
const EVENTS: usize = 20_000;
const TASKS: usize = 50;

/// Event `i`: task `i % TASKS`, revision `i`; in the last round every fifth
/// task is deleted.
fn event(i: usize) -> String {
    let id = i % TASKS;
    let op = if i >= EVENTS - TASKS && id.is_multiple_of(5) {
        "DEL"
    } else {
        "SET"
    };
    format!(r#"{{"id":{id},"op":"{op}","rev":{i}}}"#)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("tasks.jsonl");
    // The store, built in code: keyed by the task id, `DEL` deletes.
    let store = StoreConfig::builder("tasks", &log)
        .key(["/id"])
        .op("/op")
        .delete(["DEL"])
        .keep_rotated(1)
        .build()?;
    // Where run records go. No config file is read by sync_store.
    let paths = Paths {
        config: dir.path().join("config.toml"),
        state_dir: dir.path().join("state"),
    };

    // Opening creates the log, so the first compaction finds it.
    let mut w = LogWriter::open(&log)?;
    let writer = std::thread::spawn(move || -> logkeeper::Result<()> {
        for i in 0..EVENTS {
            w.append(event(i).as_bytes())?;
        }
        Ok(())
    });

    // Compact on our own schedule while the writer runs, then once more.
    let mut runs = 0;
    let mut rewritten = 0;
    loop {
        let done = writer.is_finished();
        let rec = sync_store(&paths, &store, &SyncOptions::default());
        if rec.outcome != Outcome::Ok {
            return Err(format!(
                "run {runs}: {} ({})",
                rec.outcome.as_str(),
                rec.error.or(rec.reason).unwrap_or_default()
            )
            .into());
        }
        runs += 1;
        rewritten += usize::from(rec.stats.rewritten);
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    writer.join().map_err(|_| "the writer panicked")??;

    // The folded state: each live task's last event, in last-write order.
    let mut out = Vec::new();
    let found = replay(&store, &mut out)?;
    let want: String = (EVENTS - TASKS..EVENTS)
        .filter(|i| !(i % TASKS).is_multiple_of(5))
        .map(|i| event(i) + "\n")
        .collect();
    let got = String::from_utf8(out)?;
    if got != want {
        return Err(format!(
            "replay differs from the expected state:\n--- got\n{got}--- want\n{want}"
        )
        .into());
    }
    let size = std::fs::metadata(&log)?.len();
    println!(
        "embed: {EVENTS} events over {TASKS} tasks, {runs} compactions ({rewritten} rewrote the log), {} live tasks, log now {size} bytes",
        found.keys_live
    );
    if rewritten == 0 || found.keys_live != (TASKS - TASKS / 5) as u64 {
        return Err("expected at least one rewrite and 40 live tasks".into());
    }
    Ok(())
}
