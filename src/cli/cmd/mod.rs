//! One module per subcommand, each with its clap arguments and a `run` that
//! takes the resolved [`crate::paths::Paths`] (never the whole `Cli`).

pub mod append;
pub mod completions;
pub mod daemon;
pub mod demo;
pub mod dry_run;
pub mod man;
pub mod replay;
pub mod schedule;
pub mod status;
pub mod store;
pub mod sync;
