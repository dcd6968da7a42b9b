//! What logkeeper's own integration tests need besides the public API, in
//! one place. Not covered by semver: an embedder has no use for these.
//!
//! Each item is here because a test drives a state that the binary cannot
//! reach on demand, or checks a file format against the library's reader:
//! - [`Failpoint`]: the named crash points (feature `failpoints`), which
//!   the crash tests loop over ([`Failpoint::ALL`]);
//! - [`read_quarantine`] / [`QuarantineEntry`]: the quarantine file as the
//!   library reads it back;
//! - [`RunRecords`]: a store's run records, read (history) or planted (a
//!   success hours ago, to judge an overdue store);
//! - [`StoreLock`] / [`Wait`]: hold a store's lock as a run would, to see
//!   `status` report the holder;
//! - [`DemoLog`]: the demo's realistic log generator;
//! - [`CronFields`]: the cron-to-systemd/launchd translation, checked
//!   against the OS's own calendar evaluation;
//! - [`XorShift`]: the fixed-seed randomness of the unit and integration
//!   tests (deterministic in CI, seeds from the environment where a test
//!   offers a long search).

pub use crate::demo::DemoLog;
pub use crate::failpoint::{Failpoint, Kind as FailpointKind, Pipeline as FailpointPipeline};
pub use crate::job::lock::{StoreLock, Wait};
pub use crate::job::quarantine::{Entry as QuarantineEntry, read as read_quarantine};
pub use crate::job::record::RunRecords;
pub use crate::rng::XorShift;
pub use crate::schedule::install::calendar::CronFields;
