//! Config files, paths and `store add / list / remove` through the CLI.

use crate::common::*;

#[test]
fn config_errors_name_file_line_and_field_and_exit_2() {
    let env = Env::new();
    env.write_config(
        "# stores\n[[store]]\nname = \"a\"\nlog = \"a.jsonl\"\nschedule = \"every day\"\n",
    );
    let d = env.lk(["sync", "now", "--all"]).status(2);
    let msg = d.stderr();
    assert!(
        msg.contains(&format!("{}:5", env.config().display())),
        "{msg}"
    );
    assert!(
        msg.contains("`schedule`") && msg.contains("5-field crontab"),
        "{msg}"
    );

    env.write_config("[[store]]\nname = \"a\"\nlog = \"a.jsonl\"\nkeep_rotatd = 2\n");
    env.lk(["status"])
        .status(2)
        .stderr_has("keep_rotatd")
        .stderr_has(":4");
}

#[test]
fn unreadable_config_is_a_config_error_said_once() {
    let env = Env::new();
    // A directory where the config file should be.
    std::fs::create_dir_all(env.config()).unwrap();
    let d = env.lk(["status"]).status(2);
    let msg = d.stderr();
    assert!(msg.contains(&env.config().display().to_string()), "{msg}");
    assert_eq!(msg.matches("Is a directory").count(), 1, "{msg}");
    std::fs::remove_dir(env.config()).unwrap();
    // Not UTF-8.
    std::fs::write(env.config(), b"[[store]]\nname = \"\xff\"\n").unwrap();
    env.lk(["status"])
        .status(2)
        .stderr_has("cannot read config");
}

#[test]
fn replay_into_a_closed_pipe_ends_quietly() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    let mut text = String::new();
    for i in 0..20000 {
        text.push_str(&format!(
            "{{\"item_type\":\"t\",\"item\":{{\"id\":{i}}},\"change_type\":\"SET\"}}\n"
        ));
    }
    std::fs::write(&log, text).unwrap();
    env.keyed_store("s", &log);
    let mut child = env
        .cmd()
        .args(["replay", "s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe like `| head -1`.
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    assert!(first.contains("item_type"), "{first}");
    drop(out);
    let done = child.wait_with_output().unwrap();
    assert_quiet_end(&done);
}

/// Exit 0, or killed by SIGPIPE as Unix filters are, and nothing on stderr.
fn assert_quiet_end(done: &std::process::Output) {
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(
        done.status.code() == Some(0) || done.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        done.status
    );
    assert!(done.stderr.is_empty(), "{stderr}");
}

#[test]
fn status_and_store_list_into_a_closed_pipe_end_quietly() {
    let env = Env::new();
    for i in 0..3 {
        let log = env.path(&format!("s{i}.jsonl"));
        std::fs::write(&log, "{\"id\":1}\n").unwrap();
        env.keyed_store(&format!("s{i}"), &log);
    }
    // Every store healthy, so `status` exits 0 whether it finished writing
    // before the reader went away or met the closed pipe.
    env.lk(["sync", "now", "--all", "--force"]).status(0);
    for args in [&["status"][..], &["store", "list"], &["status", "--json"]] {
        let mut child = env
            .cmd()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before the command prints anything.
        drop(child.stdout.take());
        let done = child.wait_with_output().unwrap();
        assert_quiet_end(&done);
    }
}

#[test]
fn missing_config_says_how_to_create_one() {
    let env = Env::new();
    env.lk(["status"]).status(2).stderr_has("store add");
}

#[test]
fn store_add_list_remove_keep_the_users_comments() {
    let env = Env::new();
    env.write_config("# my logkeeper config\n");
    env.lk([
        "store",
        "add",
        "a",
        "--log",
        "logs/a.jsonl",
        "--key",
        "/id",
        "--schedule",
        "@daily",
    ])
    .status(0);
    env.lk(["store", "add", "b", "--log", "b.jsonl"]).status(0);
    env.lk(["store", "add", "b", "--log", "c.jsonl"])
        .status(2)
        .stderr_has("already exists");
    env.lk(["store", "add", "c", "--log", "c.jsonl", "--key", "id"])
        .status(2)
        .stderr_has("JSON pointer");
    let list = env.lk(["store", "list"]).status(0).stdout();
    assert!(
        list.contains(&format!("a\t{}", env.path("logs/a.jsonl").display())),
        "{list}"
    );
    assert!(
        list.contains("b\t") && list.contains("append-only"),
        "{list}"
    );
    env.lk(["store", "remove", "a"]).status(0);
    env.lk(["store", "remove", "a"]).status(2);
    let text = std::fs::read_to_string(env.config()).unwrap();
    assert!(text.starts_with("# my logkeeper config\n"), "{text}");
    assert!(!text.contains("name = \"a\""));
}

#[test]
fn flags_override_environment_paths() {
    let env = Env::new();
    let other = env.path("other.toml");
    env.lk(["--config"])
        .arg(&other)
        .args(["store", "add", "x", "--log", "x.jsonl"])
        .status(0);
    assert!(other.exists());
    assert!(!env.config().exists());
    env.lk(["store", "list"]).status(0).stdout_has("no stores");
}

#[test]
fn xdg_dirs_are_used_when_nothing_else_is_set() {
    let env = Env::new();
    let mut c = env.cmd();
    c.env_remove("LOGKEEPER_CONFIG")
        .env_remove("LOGKEEPER_STATE_DIR")
        .env("XDG_CONFIG_HOME", env.path("xdgc"))
        .env("XDG_STATE_HOME", env.path("xdgs"))
        .args(["store", "add", "x", "--log", "x.jsonl"]);
    assert!(c.status().unwrap().success());
    assert!(env.path("xdgc/logkeeper/config.toml").exists());
    std::fs::write(env.path("x.jsonl"), "{}\n").unwrap();
    let mut c = env.cmd();
    c.env_remove("LOGKEEPER_CONFIG")
        .env_remove("LOGKEEPER_STATE_DIR")
        .env("XDG_CONFIG_HOME", env.path("xdgc"))
        .env("XDG_STATE_HOME", env.path("xdgs"))
        .args(["sync", "now"]);
    assert!(c.status().unwrap().success());
    assert!(env.path("xdgs/logkeeper/stores/x/last-run.json").exists());
}

#[test]
fn demo_runs_in_its_own_directory_and_exits_0() {
    let env = Env::new();
    let dir = env.path("demo");
    let d = env
        .lk(["demo"])
        .arg(&dir)
        .args(["--events", "20000", "--keys", "2000"])
        .status(0);
    let out = d.stdout();
    assert!(out.contains("demo: ok in"), "{out}");
    assert!(out.contains("3 quarantined"), "{out}");
    assert!(out.contains("STORE  HEALTH"), "{out}");
    assert!(dir.join("state/stores/demo/last-run.json").exists());
    assert!(
        !env.config().exists(),
        "the demo must not touch the user's config"
    );
}

#[test]
fn demo_refuses_a_directory_with_the_users_files_and_reruns_its_own() {
    let env = Env::new();
    let dir = env.path("proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("events.jsonl"), b"{\"mine\":1}\n").unwrap();
    std::fs::write(dir.join("config.toml"), b"# mine\n").unwrap();
    env.lk(["demo"])
        .arg(&dir)
        .args(["--events", "2000", "--keys", "200"])
        .status(2)
        .stderr_has("not made by `logkeeper demo`");
    assert_eq!(
        std::fs::read(dir.join("events.jsonl")).unwrap(),
        b"{\"mine\":1}\n"
    );
    assert_eq!(std::fs::read(dir.join("config.toml")).unwrap(), b"# mine\n");

    // Its own directory can be used again.
    let own = env.path("again");
    for _ in 0..2 {
        env.lk(["demo"])
            .arg(&own)
            .args(["--events", "2000", "--keys", "200"])
            .status(0);
    }
}

#[test]
fn store_add_expands_a_quoted_tilde() {
    let env = Env::new();
    env.lk(["store", "add", "t", "--log", "~/logs/t.jsonl"])
        .env("HOME", env.path("home"))
        .status(0);
    let text = std::fs::read_to_string(env.config()).unwrap();
    let want = format!("log = \"{}\"", env.path("home/logs/t.jsonl").display());
    assert!(text.contains(&want), "{text}");
}

#[test]
fn store_add_takes_min_growth_rotate_bytes_jitter_and_file_delete_delay() {
    let env = Env::new();
    env.lk(["store", "add", "a", "--log"])
        .arg(env.path("a.jsonl"))
        .args([
            "--min-growth",
            "0.5",
            "--rotate-bytes",
            "1000",
            "--jitter",
            "5m",
        ])
        .status(0);
    env.lk(["store", "add", "f", "--segments"])
        .arg(env.path("f/events-{seq}.jsonl"))
        .args(["--file-delete-delay", "10s"])
        .status(0);
    let text = std::fs::read_to_string(env.config()).unwrap();
    for line in [
        "min_growth = 0.5",
        "rotate_bytes = 1000",
        "jitter = \"5m\"",
        "file_delete_delay = \"10s\"",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    // A bad value is refused and the file left as it was.
    env.lk(["store", "add", "b", "--log"])
        .arg(env.path("b.jsonl"))
        .args(["--jitter", "5x"])
        .status(2)
        .stderr_has("jitter");
    assert_eq!(std::fs::read_to_string(env.config()).unwrap(), text);
}
