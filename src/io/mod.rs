//! File I/O primitives the job is built on.

pub mod durable;
