//! The planning layer: what a run of a store will do, decided by pure
//! functions over what the run observed (a listing, the store's state, its
//! policy, the time), as tantivy's merge policies and lsm-tree's
//! compaction strategies are. Nothing here does I/O, so every rule is
//! unit-tested with fake listings; `job/` executes the choices.
//!
//! - [`log`]: a store of one live log: skip (`min_growth`), keep (the fold
//!   changes nothing), rewrite, or archive (`rotate_bytes`); which rotated
//!   files to prune (`keep_rotated`, `max_age`).
//! - [`segmented`]: a directory of segments: drop (retention), check
//!   (health), merge (dirty ratio, lag) and the merge groups.
//! - [`Busy`]: the one set of files the planners leave alone.

mod busy;
pub mod log;
pub mod retention;
pub mod segmented;

pub use busy::Busy;
