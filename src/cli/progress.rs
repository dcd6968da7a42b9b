//! The terminal progress bar of `sync now`: reads the library's progress
//! counters (crate::io::progress) from a thread and draws them with
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

use crate::io::progress::{self, Phase};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} {msg}").expect("valid template"),
    );
    bar.set_prefix(store.to_string());
    let mut target = Some(ProgressDrawTarget::stderr());
    // The phase on screen, when it was first seen and its bytes then: the
    // rate is the phase's average since.
    let mut seen: Option<(Phase, Instant, u64)> = None;
    while !stop.load(Ordering::Relaxed) {
        let (phase, done, total) = progress::snapshot();
        let now = Instant::now();
        let (_, since, base) = match seen {
            Some(s) if s.0 == phase => s,
            _ => *seen.insert((phase, now, done)),
        };
        let secs = now.duration_since(since).as_secs_f64();
        let rate = (secs > 0.05).then(|| (done - base.min(done)) as f64 / secs);
        bar.set_message(line(phase, done, total, rate));
        if let Some(t) = target.take() {
            bar.set_draw_target(t);
        }
        bar.tick();
        std::thread::sleep(TICK);
    }
    bar.finish_and_clear();
}

/// `scan  [=====>    ] 135.2 MiB/303.0 MiB 1.1 GiB/s`
fn line(phase: Phase, done: u64, total: u64, rate: Option<f64>) -> String {
    use crate::cli::render::human_bytes;
    const WIDTH: usize = 24;
    let name = match phase {
        Phase::Idle => "lock",
        Phase::Swap => "swap (waiting for writers)",
        p => p.as_str(),
    };
    if total == 0 {
        return name.to_string();
    }
    let filled = ((done.min(total) as f64 / total as f64) * WIDTH as f64) as usize;
    format!(
        "{name:5} [{}{}] {}/{} {}",
        "=".repeat(filled),
        " ".repeat(WIDTH - filled),
        human_bytes(done.min(total)),
        human_bytes(total),
        rate.map_or(String::new(), |r| format!("{}/s", human_bytes(r as u64)))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_phase_bytes_done_of_total_and_rate() {
        assert_eq!(
            line(Phase::Scan, 3 << 20, 12 << 20, Some((400 << 20) as f64)),
            "scan  [======                  ] 3.0 MiB/12.0 MiB 400.0 MiB/s"
        );
        assert_eq!(line(Phase::Write, 1, 0, None), "write");
    }
}
