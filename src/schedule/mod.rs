//! Scheduling: cron expressions, the in-process daemon, and registration
//! with the OS scheduler.

pub mod daemon;
pub mod install;

// The cron expression is configuration: it lives in config (which must
// not import schedule) and is re-exported here under its old path.
pub use crate::config::schedule as expr;
pub use expr::Schedule;

/// The 64-bit FNV-1a hash: stable across builds and machines (unlike std's
/// randomised hasher), which the config id in file and unit names needs.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
