//! The integration tests, in one binary so they link once. Each module drives
//! the real `logkeeper` binary or the public library through `common`.
//!
//! The calendar tests that set `TZ` for the whole process live in their own
//! binary (`tests/schedule.rs`), so they cannot leak into these.

mod architecture;
mod common;

mod bad_input;
mod compaction;
mod config;
mod crash;
mod daemon;
mod deploy;
mod disk_faults;
mod dry_run;
mod growth;
mod harness;
mod hooks;
mod late_writes;
mod lock;
mod long_lines;
mod metrics;
mod papercuts;
mod progress;
mod random_kills;
mod replay_asof;
mod security;
mod segments;
mod shell;
mod signals;
mod status;
mod three_writers;
mod verify;
mod visibility;
mod writer_classes;
mod writers;
