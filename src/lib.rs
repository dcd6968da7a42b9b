//! logkeeper keeps append-only JSONL event logs small, durable and
//! observable: a single-flight sync and compaction job with a per-store lock,
//! snapshot-plus-tail compaction through a temp file and an atomic rename,
//! rotation and pruning, and atomic run records that `status` reports.
//!
//! The library is the whole product; the `logkeeper` binary only parses
//! arguments and prints. Entry points:
//! - [`config::Config`] loads stores; [`paths::Paths`] resolves where things live;
//! - [`job::sync_store`] runs the job for one store and records it;
//! - [`status::store_status`] reports a store's health;
//! - [`writer::LogWriter`] appends by the writer protocol;
//! - [`fold`] folds a log (also what `replay` prints).

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
