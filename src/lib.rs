//! logkeeper keeps append-only JSONL event logs small, durable and
//! observable: a single-flight sync and compaction job per store, run by
//! hand, by the OS scheduler or by its own scheduler, recorded for `status`.
//!
//! This crate is both the `logkeeper` command ([`run`] is all its `main`
//! does) and a library for programs that keep such a log themselves.
//!
//! # Using it from Rust
//!
//! A *store* is one log and how to fold it: the JSON pointers of each
//! event's key, an optional operation field whose values delete the key,
//! a schedule. Build one in code with [`StoreConfig::builder`], or read the
//! TOML config the command uses with [`Config::load`]. [`Paths`] says where
//! the run records go.
//!
//! - **Write**: [`LogWriter`] appends events by the writer protocol (each
//!   line whole, under an exclusive `flock`), safe while a run compacts.
//! - **Compact**: [`sync_store`] runs the job once and returns its
//!   [`RunRecord`] (also written to disk, and never a panic); [`SyncOptions`]
//!   says what started it ([`Trigger`]) and whether to wait for a busy store.
//! - **Read**: [`replay`] writes the folded state, each live key's last
//!   event; [`replay_segments`] does so for a directory of segment files;
//!   [`replay_as_of`] gives the state as it was at a retained point
//!   ([`replay_points`] lists them, [`parse_time`] reads a time).
//! - **Observe**: [`store_status`] judges a store's health from its records
//!   ([`Health`]); the exit codes of the command are in [`exit_code`].
//! - **Schedule**: [`Daemon`] fires every store's [`Schedule`] inside your
//!   tokio runtime until its [`DaemonHandle`] stops it, reporting each
//!   [`DaemonEvent`].
//!
//! Errors are split by operation ([`ConfigError`], [`LockError`],
//! [`SyncError`], [`ReplayError`], [`ScheduleError`], [`AppendError`]) under
//! one [`Error`]; [`Error::class`] says whose move it is: the caller's input,
//! a busy lock, or a failure.
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
//!
//! `examples/embed.rs` is a complete program: it builds a store, writes
//! events from one thread while compacting from another, and replays.
//!
//! # How a run works
//!
//! One run is a pipeline (lock, recover, cut, fold, verify, swap or rewrite
//! in place, carry late writes, prune, record, hook), each step crash-safe
//! on its own. The pipeline, with the file that implements each step, the
//! guarantees (G1-G7) the code's comments cite, the file formats and the
//! crash reasoning per step are described once, in `docs/design.md` (in the
//! repository and the published crate); the external contract is
//! `PRODUCT.md`.
//!
//! Inside the crate, imports point down the layers io ← fold ← config ←
//! job ← status, metrics, replay ← daemon, install ← cli; the
//! `architecture` test checks it.

// The modules are the crate's own (`pub(crate)` by being private to the
// root): the re-exports below are the semver surface, plus `exit_code`,
// `testing` and the CLI's [`run`].
mod cli;
mod config;
mod demo;
mod error;
pub mod exit_code;
mod failpoint;
mod fold;
mod io;
mod job;
mod ops;
mod paths;
mod plan;
mod replay;
mod rng;
mod schedule;
mod status;
pub mod testing;
mod writer;

pub use cli::run;
pub use config::{Config, StoreBuilder, StoreConfig};
pub use error::{
    AppendError, ConfigError, Error, ErrorClass, LockError, ReplayError, Result, ScheduleError,
    SyncError,
};
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
