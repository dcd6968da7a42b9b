//! The process exit codes of the product contract (PRODUCT.md), in one
//! place for the binary (`cli/exit.rs` decides which applies) and for the
//! library's hooks (`LOGKEEPER_EXIT_CODE`): 0 ok; 1 a run failed, or status
//! found a failed store; 2 usage or config error; 3 status found a store
//! overdue or never run; 75 busy (sysexits EX_TEMPFAIL).

/// Success: the runs succeeded, or status found every store healthy.
pub const OK: u8 = 0;
/// A run failed; status found a failed store.
pub const FAILED: u8 = 1;
/// Usage or configuration error.
pub const USAGE: u8 = 2;
/// Status found a store overdue or never run.
pub const OVERDUE: u8 = 3;
/// The store's lock (or the daemon's) is held by another process.
pub const BUSY: u8 = 75;
