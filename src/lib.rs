//! logkeeper keeps append-only JSONL event logs small, durable and
//! observable: a single-flight sync and compaction job per store, run by
//! hand, by the OS scheduler or by its own scheduler, recorded for `status`.
//!
//! One run of the job ([`job::sync_store`]) is a pipeline; each step lives
//! in one place:
//! 1. **lock** the store, single flight (G5): `job/lock.rs`;
//! 2. **recover** what a crashed run left (temp files, stray links) and carry
//!    late writes of lock-ignoring writers: `job/mod.rs`, `io/durable.rs`,
//!    `job/rotation.rs`, `job/late.rs`;
//! 3. **cut** the log after its last complete line: `fold/scan.rs`;
//! 4. **fold** `[0, cut)` to each key's last write, listing malformed lines:
//!    `fold/` (classify, scan, the JSON scanner);
//! 5. **swap**: snapshot to a temp file, quarantine, tail under the writers'
//!    lock, rename (G1, G2, G3, G4): `job/compact.rs`, `job/quarantine.rs`,
//!    `io/ranges.rs`;
//! 6. **prune** rotated files: `job/rotation.rs`;
//! 7. **record** the run atomically: `job/record.rs`; `status.rs` judges it
//!    (G6).
//!
//! Scheduling is apart from the job: `schedule/expr.rs` (cron expressions),
//! `schedule/daemon/` (the in-process scheduler), `schedule/install/`
//! (systemd, launchd, cron registration). The binary (`main.rs`, `cli/`)
//! only parses arguments, calls this library, prints and maps exit codes.
//!
//! The guarantees G1-G6 that comments cite, the file formats and the crash
//! reasoning per step are in `docs/design.md` in the repository.
//!
//! Entry points: [`config::Config`] loads stores, or
//! [`config::StoreConfig::builder`] builds one in code; [`paths::Paths`]
//! says where state lives; [`job::sync_store`] runs the job;
//! [`status::store_status`] reports health; [`writer::LogWriter`] appends by
//! the writer protocol; [`replay::replay`] prints the folded state;
//! [`schedule::daemon::Daemon`] runs every store's schedule inside your
//! tokio runtime.

pub mod config;
pub mod demo;
pub mod error;
#[doc(hidden)]
pub mod failpoint;
pub mod fold;
pub mod io;
pub mod job;
pub mod ops;
pub mod paths;
pub mod replay;
pub mod schedule;
pub mod status;
pub mod writer;

pub use error::{Error, Result};

/// This build's version, recorded in lock holders and run records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
