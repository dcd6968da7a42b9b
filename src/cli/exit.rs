//! Which exit code of the product contract applies, decided here and only
//! here (the numbers live in `crate::exit_code`, which the hooks share): 0 ok; 1 a run failed, or status found a failed store (or a broken
//! schedule registration); 2 usage or config error; 3 status found a store
//! overdue or never run; 75 busy (sysexits EX_TEMPFAIL).

use crate::ErrorClass;
use crate::job::record::{Outcome, RunRecord};
use crate::schedule::install::Registration;
use crate::status::{Health, StoreStatus};

pub use crate::exit_code::{BUSY, FAILED, OK, OVERDUE, USAGE};

/// The exit code for an error that reached `main`: by the class of the
/// library error in its chain, else a failure.
pub fn of_error(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<crate::Error>())
        .map_or(FAILED, |e| match e.class() {
            ErrorClass::Usage => USAGE,
            ErrorClass::Busy => BUSY,
            _ => FAILED,
        })
}

/// Whether the error is a closed stdout (`| head`): not a failure of ours.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// For `sync now`: 1 if any run failed, else 2 if a store was refused for
/// its invalid config (`broken`), else 75 if any found its store busy,
/// else 0.
pub fn of_runs(runs: &[RunRecord], broken: usize) -> u8 {
    let code = |o: Outcome| o.exit_code();
    if runs.iter().any(|r| code(r.outcome) == FAILED) {
        FAILED
    } else if broken > 0 {
        USAGE
    } else if runs.iter().any(|r| code(r.outcome) == BUSY) {
        BUSY
    } else {
        OK
    }
}

/// For `status`: 1 if any store failed, else 2 if any store's config is
/// invalid, else 3 if any is overdue or never ran, else 0.
pub fn of_statuses(statuses: &[StoreStatus]) -> u8 {
    if statuses.iter().any(|s| s.health == Health::Failed) {
        FAILED
    } else if statuses.iter().any(|s| s.health == Health::ConfigError) {
        USAGE
    } else if statuses
        .iter()
        .any(|s| matches!(s.health, Health::Overdue | Health::NeverRun))
    {
        OVERDUE
    } else {
        OK
    }
}

/// For `schedule show`: 1 if the registration has problems.
pub fn of_registration(reg: Option<&Registration>) -> u8 {
    if reg.is_some_and(|r| !r.problems.is_empty()) {
        FAILED
    } else {
        OK
    }
}
