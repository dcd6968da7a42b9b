//! Scheduling: cron expressions, the in-process daemon, and registration
//! with the OS scheduler.

pub mod daemon;
pub mod expr;
pub mod install;

pub use expr::Schedule;
