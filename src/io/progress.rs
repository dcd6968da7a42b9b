//! Progress of the run in this process: a phase and bytes done of a total,
//! for a terminal progress bar to read.
//!
//! Invariants:
//! - Reporting costs the hot loops one relaxed atomic add per read or write
//!   buffer (hundreds of KiB), never per line, and never blocks.
//! - The counters are process-wide: one foreground run at a time reads
//!   meaningfully (`sync now` runs stores one after another). The daemon's
//!   concurrent runs add into the same counters, which nothing displays.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

/// A phase of the compaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Scan,
    Write,
    Swap,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "",
            Phase::Scan => "scan",
            Phase::Write => "write",
            Phase::Swap => "swap",
        }
    }
}

static PHASE: AtomicU8 = AtomicU8::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);
static TOTAL: AtomicU64 = AtomicU64::new(0);

/// Enter `phase`, which will process `total` bytes.
pub fn begin(phase: Phase, total: u64) {
    DONE.store(0, Relaxed);
    TOTAL.store(total, Relaxed);
    PHASE.store(phase as u8, Relaxed);
}

/// `bytes` more of the current phase are done.
#[inline]
pub fn advance(bytes: u64) {
    DONE.fetch_add(bytes, Relaxed);
}

/// The run ended (or has not started).
pub fn end() {
    begin(Phase::Idle, 0);
}

/// The current phase, bytes done and total.
pub fn snapshot() -> (Phase, u64, u64) {
    let phase = match PHASE.load(Relaxed) {
        1 => Phase::Scan,
        2 => Phase::Write,
        3 => Phase::Swap,
        _ => Phase::Idle,
    };
    (phase, DONE.load(Relaxed), TOTAL.load(Relaxed))
}
