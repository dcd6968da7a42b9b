//! The terminal progress bar of `sync now`: reads the library's progress
//! counters (logkeeper::ops::progress) from a thread and draws them with
//! indicatif on stderr.
//!
//! Shown only when stderr is a terminal, the output is not `--json` and
//! `CI` is unset; and only once a run has lasted [`DELAY`], so short runs
//! print nothing extra. The bar is cleared when the run ends, before its
//! summary line is printed.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use logkeeper::ops::progress::{self, Phase};

/// How long a run goes before its progress is shown.
pub const DELAY: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(100);

/// Whether progress may be drawn at all.
pub fn wanted(json: bool) -> bool {
    !json && std::env::var_os("CI").is_none() && std::io::stderr().is_terminal()
}

/// A progress bar for one store's run; dropped when the run ends.
pub struct Bar {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Bar {
    pub fn start(store: &str) -> Bar {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let store = store.to_string();
        let thread = std::thread::spawn(move || draw(&store, &flag));
        Bar {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn draw(store: &str, stop: &AtomicBool) {
    let t0 = Instant::now();
    while t0.elapsed() < DELAY {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(TICK.min(DELAY.saturating_sub(t0.elapsed())));
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} {msg:5} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(store.to_string());
    let mut shown = None;
    while !stop.load(Ordering::Relaxed) {
        let (phase, done, total) = progress::snapshot();
        if shown != Some(phase) {
            // A new phase starts its own count and rate.
            bar.reset();
            bar.set_message(if phase == Phase::Idle {
                "lock"
            } else {
                phase.as_str()
            });
            shown = Some(phase);
        }
        bar.set_length(total.max(done));
        bar.set_position(done);
        std::thread::sleep(TICK);
    }
    bar.finish_and_clear();
}
