//! The harness itself (`common`): its waits fail with what happened.
#![cfg(feature = "failpoints")]

use crate::common::*;

/// `Run::paused` waits for the run to pause at its failpoint. A run that
/// exits before it gets there (here: its log's directory is missing, so it
/// never takes the lock) can never pause: the wait fails at once, with the
/// run's exit and stderr, instead of "timed out" after a fixed 30 s.
#[test]
fn a_run_that_exits_before_its_pause_point_fails_the_wait_with_its_output() {
    let env = Env::new();
    env.keyed_store("m", &env.path("gone/events.jsonl"));
    let flag = env.path("paused");
    let wait = std::panic::catch_unwind(|| {
        env.lk(["sync", "now", "--force"])
            .paused("before-recover", &flag)
    });
    let why = match wait {
        Ok(mut child) => {
            let _ = child.kill();
            panic!("the run paused at before-recover, though it cannot get there");
        }
        Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(
        why.contains("exited") && why.contains("before it paused at before-recover"),
        "{why}"
    );
    assert!(
        why.contains("does not exist"),
        "the run's stderr is missing: {why}"
    );
    assert!(!flag.exists());
}
