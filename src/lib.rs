//! logkeeper keeps append-only JSONL event logs small, durable and
//! observable: a single-flight sync and compaction job per store, run by
//! hand, by the OS scheduler or by its own scheduler, recorded for `status`.
//!
//! One run of the job ([`job::sync_store`]) is a pipeline; each step lives
//! in one place:
//! 1. **lock** the store, single flight (G5): `job/lock.rs`;
//! 2. **recover** what a crashed run left (temp files, stray links) and carry
//!    late writes of lock-ignoring writers: `job/log.rs`, `io/durable.rs`,
//!    `job/rotation.rs`, `job/late.rs`;
//! 3. **cut** the log after its last complete line: `fold/scan.rs`;
//! 4. **fold** `[0, cut)` to each key's last write, listing malformed lines:
//!    `fold/` (classify, scan, the JSON scanner);
//! 5. **swap**: snapshot to a temp file, quarantine, tail under the writers'
//!    lock, rename (G1, G2, G3, G4): `job/compact.rs`, `job/quarantine.rs`,
//!    `io/ranges.rs`;
//! 6. **prune** rotated files: `job/rotation.rs`;
//! 7. **record** the run atomically: `job/record.rs`; `status.rs` judges it
//!    (G6);
//! 8. **hook**: the store's `on_failure` / `on_success` command, then the
//!    history line: `ops/hooks.rs`. The caller (the `sync` command, the
//!    daemon) then rewrites the metrics file: `ops/metrics.rs`.
//!
//! What a run does (skip, keep, rewrite or archive the log, prune; for a
//! segmented store drop, check, merge) is decided by the pure planners in
//! `plan/` and executed by `job/` (docs/design.md, "The pipeline").
//!
//! A *segmented* store (a directory of `events-<seq>.jsonl` files its app
//! rotates itself) runs its own steps after the lock, all in
//! `job/segmented/`: retention of the oldest sealed files, health of new
//! sealed files, keyed compaction under the first input's name.
//!
//! Progress counters (`ops/progress.rs`) are advanced by the scan and the
//! copy for a terminal progress bar. Scheduling is apart from the job:
//! `config/schedule.rs` (cron expressions),
//! `schedule/daemon/` (the in-process scheduler), `schedule/install/`
//! (systemd, launchd, cron registration). The binary (`main.rs`, `cli/`)
//! only parses arguments, calls this library, prints and maps exit codes.
//!
//! The guarantees G1-G6 that comments cite, the file formats and the crash
//! reasoning per step are in `docs/design.md` in the repository.
//!
//! # Using it from Rust
//!
//! - [`StoreConfig::builder`] builds a validated store in code (or
//!   [`Config::load`] reads the TOML config the CLI uses);
//! - [`Paths`] says where run records go;
//! - [`sync_store`] runs the job once and returns its [`RunRecord`] (also
//!   written to disk); [`SyncOptions`] says what started it ([`Trigger`]);
//! - [`LogWriter`] appends events by the writer protocol, safe during a run;
//! - [`replay`] writes the folded state (each key's last event);
//!   [`replay_as_of`] the state as it was at a retained point
//!   ([`replay_points`]);
//! - [`store_status`] judges a store's health from its records;
//! - [`Daemon`] fires every store's schedule inside your tokio runtime until
//!   its [`DaemonHandle`] stops it.
//!
//! Errors are one [`Error`] enum; [`Error::class`] says whose move it is.
//! `examples/embed.rs` is a complete program: it builds a store, writes
//! events from one thread while compacting from another, and replays.
//!
//! ```no_run
//! # fn main() -> logkeeper::Result<()> {
//! use logkeeper::{LogWriter, Paths, StoreConfig, SyncOptions, sync_store};
//! let store = StoreConfig::builder("tasks", "/var/lib/app/tasks.jsonl")
//!     .key(["/id"])
//!     .build()?;
//! let paths = Paths {
//!     config: "/etc/app/logkeeper.toml".into(),
//!     state_dir: "/var/lib/app/logkeeper".into(),
//! };
//! LogWriter::open(store.path())?.append(br#"{"id":1,"title":"write docs"}"#)?;
//! let record = sync_store(&paths, &store, &SyncOptions::default());
//! println!("{}: {:?}", record.store, record.outcome);
//! # Ok(())
//! # }
//! ```

// The modules are not API. The binary and the integration tests reach
// into some of them (`#[doc(hidden)]`); an embedder uses the re-exports
// below, which are the semver surface.
#[doc(hidden)]
pub mod config;
#[doc(hidden)]
pub mod demo;
mod error;
pub mod exit_code;
#[doc(hidden)]
pub mod failpoint;
mod fold;
mod io;
#[doc(hidden)]
pub mod job;
#[doc(hidden)]
pub mod ops;
#[doc(hidden)]
pub mod paths;
mod plan;
mod replay;
#[doc(hidden)]
pub mod schedule;
#[doc(hidden)]
pub mod status;
#[doc(hidden)]
pub mod writer;

pub use config::{Config, StoreBuilder, StoreConfig};
pub use error::{Error, ErrorClass, Result};
pub use io::sys::ignore_sigxfsz;
pub use job::record::{Outcome, RunRecord, Stats, Timings};
pub use job::{SyncOptions, Trigger, sync_store};
pub use paths::Paths;
pub use replay::asof::{AsOf, Point, parse_time, points as replay_points, replay_as_of};
pub use replay::{Replayed, SegmentsReplayed, replay, replay_segments};
pub use schedule::Schedule;
pub use schedule::daemon::{Daemon, DaemonHandle, DaemonOptions, Event as DaemonEvent};
pub use status::{Health, StoreStatus, store_status};
pub use writer::LogWriter;

/// This build's version, recorded in lock holders and run records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
