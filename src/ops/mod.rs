//! Operations: what an operator's tools see of the runs.
//!
//! - [`metrics`]: the Prometheus textfile for node_exporter;
//! - [`hooks`]: `on_failure` / `on_success` commands;
//! - [`memory`]: handing freed memory back to the OS between runs.

pub mod hooks;
pub mod memory;
pub mod metrics;
