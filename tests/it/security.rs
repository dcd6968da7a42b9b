//! Files logkeeper writes are never more readable than the log, temp files
//! cannot be redirected through planted symlinks, and a symlinked log is
//! compacted where it really lives.

use std::os::unix::fs::symlink;

use crate::common::*;

#[test]
fn symlinked_log_is_compacted_in_place_and_the_link_kept() {
    let env = Env::new();
    std::fs::create_dir(env.path("data")).unwrap();
    let real = env.path("data/real.jsonl");
    gen_log(&real, 5_000, 500, 1, true);
    let before = std::fs::read(&real).unwrap();
    let link = env.path("live.jsonl");
    symlink("data/real.jsonl", &link).unwrap();
    env.keyed_store("m", &link);
    env.lk(["sync", "now", "--force"]).status(0);

    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        std::path::Path::new("data/real.jsonl")
    );
    assert_eq!(fold_file(&link), reference_fold(&before));
    assert!(std::fs::read(&link).unwrap().len() < before.len());
    // Rotated and quarantine files sit beside the real file.
    assert_eq!(std::fs::read(&rotated(&real)[0]).unwrap(), before);
    assert!(env.path("data/real.jsonl.quarantine").exists());
    // The lock is beside the configured path, where writers and checks look.
    assert!(env.path("live.jsonl.lock").exists());
}

/// A symlink named like a temp file is not one of logkeeper's (it makes
/// none): the clean-up of a crashed run's temp files neither follows it nor
/// removes it (only this user's regular files are removed).
#[test]
fn planted_symlink_named_like_a_temp_file_is_left_alone_not_followed() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 100, 0, false);
    env.keyed_store("m", &log);
    let victim = env.path("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let trap = env.path(".events.jsonl.lk-tmp.AAAAAA");
    symlink(&victim, &trap).unwrap();
    env.lk(["sync", "now", "--force"]).status(0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        std::fs::symlink_metadata(&trap).is_ok_and(|m| m.file_type().is_symlink()),
        "the planted link was removed or replaced"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn temp_file_names_are_unpredictable_and_private() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 100, 0, false);
    set_mode(&log, 0o640);
    env.keyed_store("m", &log);
    let mut names = Vec::new();
    for i in 0..2 {
        // Something to fold away, so the run writes a snapshot.
        for _ in 0..2 {
            env.lk(["append", "m"])
                .arg(format!(r#"{{"item_type":"T","item":{{"id":1}},"n":{i}}}"#))
                .status(0);
        }
        let d = env
            .lk(["sync", "now", "--force"])
            .env("LOGKEEPER_FAILPOINT", "after-snapshot-write")
            .output();
        assert_eq!(d.out.status.signal(), Some(9));
        let t = temps(&log);
        assert_eq!(t.len(), 1);
        assert_eq!(mode(&t[0]), 0o640, "temp file more readable than the log");
        names.push(t[0].clone());
        // The next run removes it; keep a copy of the name only.
        env.lk(["sync", "now", "--force"]).status(0);
    }
    assert_ne!(names[0], names[1]);
    let suffix = names[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .rsplit('.')
        .next()
        .unwrap()
        .to_string();
    assert!(
        suffix.len() >= 6,
        "temp name suffix {suffix:?} is too short to be unpredictable"
    );
}
