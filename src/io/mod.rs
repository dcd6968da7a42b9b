//! File I/O primitives the job is built on.

pub mod durable;
pub mod locks;
#[cfg(target_os = "linux")]
pub(crate) mod mapped;
pub mod progress;
pub mod ranges;
pub mod rewrite;
pub mod safe;
pub mod sys;
pub(crate) mod table;
