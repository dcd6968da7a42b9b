//! Deployments as they are (issue 15, G8): logkeeper run by root, by
//! another user sharing the app's group, or in a PID namespace of its own.
//! Real users (`lk-app` writes, `lk-ops` runs logkeeper, both in
//! `lk-shared`; `.ci/run` creates them, and so does [`users`] when root).

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

const PROGRAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/programs");
pub(crate) const APP: &str = "lk-app";
const OPS: &str = "lk-ops";
const GROUP: &str = "lk-shared";
/// Keys of the users' own (primary) groups in the id map.
const APP_GID: &str = "lk-app's group";
const OPS_GID: &str = "lk-ops's group";

/// The ids of the test users and group, creating them if needed; `None`
/// (with a loud message) when not root: these tests need real users.
pub(crate) fn users() -> Option<HashMap<&'static str, u32>> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED: this deployment test needs root (to act as other users); CI runs as root"
        );
        return None;
    }
    need("setpriv", "util-linux");
    let sh = |c: &str| {
        let ok = Command::new("sh").arg("-c").arg(c).status().unwrap();
        assert!(ok.success(), "{c}");
    };
    sh(&format!(
        "getent group {GROUP} >/dev/null || groupadd {GROUP}"
    ));
    for u in [APP, OPS] {
        sh(&format!(
            "id {u} >/dev/null 2>&1 || useradd --no-create-home --shell /usr/sbin/nologin -G {GROUP} {u}"
        ));
    }
    let id = |args: &[&str]| -> u32 {
        let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        text.trim()
            .rsplit(':')
            .nth(if args[0] == "getent" { 1 } else { 0 })
            .unwrap()
            .parse()
            .unwrap()
    };
    Some(HashMap::from([
        (APP, id(&["id", "-u", APP])),
        (OPS, id(&["id", "-u", OPS])),
        (APP_GID, id(&["id", "-g", APP])),
        (OPS_GID, id(&["id", "-g", OPS])),
        (GROUP, id(&["getent", "group", GROUP])),
    ]))
}

/// A sandbox other users can traverse.
fn shared_env() -> Env {
    let env = Env::new();
    set_mode(env.dir.path(), 0o755);
    env
}

/// `path` owned by `uid:gid` with `mode`.
fn own(path: &Path, uid: u32, gid: u32, mode: u32) {
    chown(path, Some(uid), Some(gid)).unwrap();
    set_mode(path, mode);
}

/// A command run as `user` (its own group plus its supplementary ones).
pub(crate) fn as_user(user: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", user, "--regid", user, "--init-groups", "--"])
        .arg(program);
    c
}

/// logkeeper, pinned to `env`, run as `user` (root: as is).
pub(crate) fn lk_as(env: &Env, user: &str, args: &[&str]) -> Command {
    let mut c = if user == "root" {
        Command::new(BIN)
    } else {
        as_user(user, BIN)
    };
    for (k, v) in env.cmd().get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.args(args)
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
    c
}

fn run(mut c: Command) -> std::process::Output {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A keyed store on `log`, with extra TOML lines; the config readable by all.
fn store(env: &Env, log: &Path, extra: &str) {
    env.write_config(&format!(
        "[[store]]\nname = \"m\"\nlog = \"{}\"\nkey = [\"/item_type\", \"/item/id\"]\nop = \"/change_type\"\ndelete = [\"DEL\"]\n{extra}\n",
        log.display()
    ));
    set_mode(&env.config(), 0o644);
}

/// Every file under `dir` that `user` may read, with its bytes.
fn readable_by(user: &str, dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for p in files_with_prefix(dir, "") {
        // `cat` of a planted FIFO would block; only regular files hold data.
        if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let o = run({
            let mut c = as_user(user, "cat");
            c.arg(&p);
            c
        });
        if o.status.success() {
            out.push((p, o.stdout));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---- 1. The blind census -------------------------------------------------

/// Who runs logkeeper in a blind-census scenario.
#[derive(Clone, Copy, Debug)]
enum Blind {
    /// As `lk-ops`, the log's owner; the writer is `lk-app`.
    OtherUser,
    /// As root inside `unshare -p --mount-proc`; the writer outside it.
    PidNamespace,
}

/// A class-B writer (flock per append, one fd for life) that the census
/// cannot see, 30 compactions with `keep_rotated`, then the fold checked
/// against the writer's truth. Returns (missing, stale).
fn blind_scenario(ids: &HashMap<&str, u32>, how: Blind, keep: u32) -> (u64, u64) {
    let env = shared_env();
    let data = env.path("data");
    std::fs::create_dir(&data).unwrap();
    let log = data.join("events.jsonl");
    gen_log(&log, 2_000, 300, 0, false);
    let (runner, writer) = match how {
        Blind::OtherUser => (OPS, APP),
        Blind::PidNamespace => ("root", "root"),
    };
    if let Blind::OtherUser = how {
        own(&data, ids[OPS], ids[GROUP], 0o2770);
        own(&log, ids[OPS], ids[GROUP], 0o660);
        std::fs::create_dir(env.state()).unwrap();
        own(&env.state(), ids[OPS], ids[OPS_GID], 0o700);
    }
    store(
        &env,
        &log,
        &format!("keep_rotated = {keep}\nblind_grace = \"2s\""),
    );
    let truth = data.join("truth.json");
    let stop = env.path("stop");
    let py = Path::new("/usr/bin/python3");
    let mut w = if writer == "root" {
        Command::new(py)
    } else {
        as_user(writer, py)
    };
    let mut child = w
        .arg(Path::new(PROGRAMS).join("writer.py"))
        .args(["B"])
        .arg(&log)
        .arg("Bw")
        .arg(&truth)
        .arg(&stop)
        // Quiet gaps between lines (longer than a run): a run that cannot
        // see the writer finds its file with nothing new and must still
        // keep it.
        .env("WRITER_PAUSE", "0.02")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the writer's first line", Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("\"Bw\""))
    });
    let sync = |args: &[&str]| {
        let c = lk_as(&env, runner, args);
        match how {
            Blind::OtherUser => c,
            Blind::PidNamespace => {
                let mut u = Command::new("unshare");
                u.args(["-p", "-f", "--mount-proc"])
                    .arg(c.get_program())
                    .args(c.get_args())
                    .current_dir(env.dir.path())
                    .stdin(Stdio::null());
                for (k, v) in c.get_envs() {
                    if let Some(v) = v {
                        u.env(k, v);
                    }
                }
                u
            }
        }
    };
    let mut compactions = 0;
    let mut said_blind = true;
    let deadline = Instant::now() + Duration::from_secs(120);
    while compactions < 30 {
        assert!(Instant::now() < deadline, "only {compactions} compactions");
        let o = run(sync(&["sync", "now", "--force", "--json"]));
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let stats = &v["runs"][0]["stats"];
        said_blind &= stats["writers"]["blind"]
            .as_array()
            .is_some_and(|b| !b.is_empty());
        if stats["rewritten"] == true {
            compactions += 1;
        }
        assert!(child.try_wait().unwrap().is_none(), "the writer died");
    }
    let st = run(sync(&["status"]));
    std::fs::write(&stop, b"").unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    let o = run(sync(&["sync", "now", "--force"]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let t: Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    let mut folded: HashMap<String, i64> = HashMap::new();
    for l in fold_file(&log) {
        let v: Value = serde_json::from_slice(&l).unwrap();
        if v["item_type"] == "Bw" {
            folded.insert(v["item"]["id"].to_string(), v["seq"].as_i64().unwrap());
        }
    }
    let (mut missing, mut stale) = (0, 0);
    for (key, want) in t["truth"].as_object().unwrap() {
        match (want.as_i64(), folded.get(key)) {
            (Some(_), None) => missing += 1,
            (Some(w), Some(&g)) if w != g => stale += 1,
            (None, Some(_)) => stale += 1,
            _ => {}
        }
    }
    eprintln!(
        "blind census {how:?} keep_rotated={keep}: {} lines written, {compactions} compactions; missing {missing}, stale {stale}",
        t["lines"]
    );
    assert!(said_blind, "a run's census did not say it was incomplete");
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("census incomplete"),
        "{}",
        text(&st)
    );
    (missing, stale)
}

#[test]
fn blind_census_of_another_users_writer_loses_no_line() {
    let Some(ids) = users() else { return };
    for keep in [0, 3] {
        let (missing, stale) = blind_scenario(&ids, Blind::OtherUser, keep);
        assert_eq!((missing, stale), (0, 0), "keep_rotated={keep}");
    }
}

#[test]
fn blind_census_in_a_pid_namespace_loses_no_line() {
    let Some(ids) = users() else { return };
    need("unshare", "util-linux");
    for keep in [0, 3] {
        let (missing, stale) = blind_scenario(&ids, Blind::PidNamespace, keep);
        assert_eq!((missing, stale), (0, 0), "keep_rotated={keep}");
    }
}

// ---- 2. Planted names ----------------------------------------------------

/// Who runs logkeeper over a directory that `lk-app` can write.
#[derive(Clone, Copy, Debug)]
enum Runner {
    /// Root, over `lk-app`'s own directory.
    Root,
    /// `lk-ops`, the log's owner, in a directory shared with `lk-app`.
    Ops,
}

/// A store whose directory `lk-app` can write, a victim file only the
/// runner may read, and `plant` run to plant a name; then one run.
/// Checks the victim is byte-identical and nothing of it reached a file
/// `lk-app` can read. Returns the run's output and how long it took.
fn planted(
    ids: &HashMap<&str, u32>,
    runner: Runner,
    plant: impl Fn(&Path, &Path),
) -> (std::process::Output, Duration) {
    let env = shared_env();
    let data = env.path("data");
    std::fs::create_dir(&data).unwrap();
    let log = data.join("events.jsonl");
    let victim = env.path("victim.jsonl");
    let secret = b"{\"item_type\":\"secret\",\"item\":{\"id\":1},\"change_type\":\"SET\",\"pw\":\"hunter2\"}\n";
    let mut victim_bytes = secret.repeat(3);
    victim_bytes.extend_from_slice(b"victim tail without newline");
    std::fs::write(&victim, &victim_bytes).unwrap();
    gen_log(&log, 500, 50, 1, false);
    let user = match runner {
        Runner::Root => {
            own(&data, ids[APP], ids[APP_GID], 0o755);
            own(&log, ids[APP], ids[APP_GID], 0o644);
            own(&victim, 0, 0, 0o600);
            "root"
        }
        Runner::Ops => {
            own(&data, ids[OPS], ids[GROUP], 0o2770);
            own(&log, ids[OPS], ids[GROUP], 0o660);
            own(&victim, ids[OPS], ids[OPS_GID], 0o600);
            std::fs::create_dir(env.state()).unwrap();
            own(&env.state(), ids[OPS], ids[OPS_GID], 0o700);
            OPS
        }
    };
    store(&env, &log, "");
    plant(&log, &victim);
    let t0 = Instant::now();
    let mut child = lk_as(&env, user, &["sync", "now", "--force"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_exit(&mut child, Duration::from_secs(20));
    let took = t0.elapsed();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        victim_bytes,
        "{runner:?}: the victim file changed\n{}",
        text(&o)
    );
    let mut seen = readable_by(APP, env.dir.path());
    seen.extend(readable_by(APP, &data));
    for (p, bytes) in seen {
        assert!(
            !contains(&bytes, b"hunter2"),
            "{runner:?}: {} (readable by {APP}) holds the victim's lines\n{}",
            p.display(),
            text(&o)
        );
    }
    (o, took)
}

/// `lk-app` plants `name` (beside the log) as a symlink to the victim.
fn plant_link(suffix: &'static str) -> impl Fn(&Path, &Path) {
    move |log: &Path, victim: &Path| {
        let mut s = log.as_os_str().to_owned();
        s.push(suffix);
        let o = run({
            let mut c = as_user(APP, "ln");
            c.arg("-s").arg(victim).arg(&s);
            c
        });
        assert!(o.status.success(), "plant: {}", text(&o));
    }
}

#[test]
fn planted_lock_symlink_is_never_followed() {
    let Some(ids) = users() else { return };
    for runner in [Runner::Root, Runner::Ops] {
        let (o, _) = planted(&ids, runner, plant_link(".lock"));
        assert_eq!(o.status.code(), Some(1), "{runner:?}: {}", text(&o));
    }
}

#[test]
fn planted_quarantine_symlink_is_never_followed() {
    let Some(ids) = users() else { return };
    for runner in [Runner::Root, Runner::Ops] {
        let (o, _) = planted(&ids, runner, plant_link(".quarantine"));
        assert_eq!(o.status.code(), Some(1), "{runner:?}: {}", text(&o));
        let why = match runner {
            Runner::Root => "refuses a directory that another user can write",
            Runner::Ops => "never follows",
        };
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(why),
            "{runner:?}: {}",
            text(&o)
        );
    }
}

#[test]
fn planted_log_symlink_to_a_private_file_is_refused() {
    let Some(ids) = users() else { return };
    for runner in [Runner::Root, Runner::Ops] {
        let (o, _) = planted(&ids, runner, |log, victim| {
            std::fs::remove_file(log).unwrap();
            let o = run({
                let mut c = as_user(APP, "ln");
                c.arg("-s").arg(victim).arg(log);
                c
            });
            assert!(o.status.success(), "plant: {}", text(&o));
        });
        assert_eq!(o.status.code(), Some(1), "{runner:?}: {}", text(&o));
    }
}

#[test]
fn planted_quarantine_fifo_ends_the_run_within_a_second() {
    let Some(ids) = users() else { return };
    for runner in [Runner::Root, Runner::Ops] {
        let (o, took) = planted(&ids, runner, |log, _| {
            let mut q = log.as_os_str().to_owned();
            q.push(".quarantine");
            let o = run({
                let mut c = as_user(APP, "mkfifo");
                c.arg(&q);
                c
            });
            assert!(o.status.success(), "plant: {}", text(&o));
        });
        assert_eq!(o.status.code(), Some(1), "{runner:?}: {}", text(&o));
        assert!(
            took < Duration::from_secs(1),
            "{runner:?}: the run took {took:?}"
        );
        eprintln!("{runner:?}: the FIFO run ended in {took:?}");
    }
}

// ---- 3. Foreign state dir ------------------------------------------------

#[test]
fn state_dir_made_by_another_user_is_refused() {
    let Some(ids) = users() else { return };
    let env = shared_env();
    let log = env.path("events.jsonl");
    gen_log(&log, 500, 50, 0, false);
    let before = std::fs::read(&log).unwrap();
    let victim = env.path("victim.jsonl");
    std::fs::write(&victim, b"{\"pw\":\"hunter2\"}\n").unwrap();
    set_mode(&victim, 0o600);
    store(&env, &log, "");
    // lk-app made the state dir first, with a late-write state that
    // watches the victim.
    let sd = env.state().join("stores/m");
    std::fs::create_dir_all(&sd).unwrap();
    for d in [env.state(), env.state().join("stores"), sd.clone()] {
        own(&d, ids[APP], ids[APP_GID], 0o755);
    }
    std::fs::write(
        sd.join("late-writes.json"),
        format!(
            "{{\"committed\":{{\"live\":null,\"watches\":[{{\"rotated\":\"{}\",\"carried\":0,\"dev\":0,\"ino\":0}}]}}}}",
            victim.display()
        ),
    )
    .unwrap();
    own(&sd.join("late-writes.json"), ids[APP], ids[APP_GID], 0o644);
    let o = run(lk_as(&env, "root", &["sync", "now", "--force"]));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("never trusted"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&log).unwrap(), before, "the log changed");
    for p in files_with_prefix(env.dir.path(), "events.jsonl") {
        assert!(!contains(&std::fs::read(&p).unwrap(), b"hunter2"), "{p:?}");
    }
}

// ---- 4. Ownership kept ---------------------------------------------------

fn getfacl(p: &Path) -> String {
    need("getfacl", "acl");
    let o = Command::new("getfacl").arg("-cp").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn setfacl(p: &Path, spec: &str) {
    need("setfacl", "acl");
    let o = Command::new("setfacl")
        .args(["-m", spec])
        .arg(p)
        .output()
        .unwrap();
    assert!(o.status.success(), "setfacl: {}", text(&o));
}

/// `lk-app` appends one line; whether it could.
fn app_appends(log: &Path) -> bool {
    let mut c = as_user(APP, "sh");
    c.arg("-c")
        .arg("printf '%s\\n' '{\"item_type\":\"T\",\"item\":{\"id\":9},\"change_type\":\"SET\"}' >> \"$1\"")
        .arg("sh")
        .arg(log);
    run(c).status.success()
}

/// A log of `lk-app:lk-shared` 0660 with an ACL entry for `nobody`.
fn app_log(ids: &HashMap<&str, u32>, env: &Env) -> PathBuf {
    let log = env.path("data/events.jsonl");
    gen_log(&log, 2_000, 100, 0, false);
    own(&log, ids[APP], ids[GROUP], 0o660);
    setfacl(&log, "u:nobody:r");
    store(env, &log, "");
    log
}

#[test]
fn root_rewrite_keeps_owner_group_mode_and_acls() {
    let Some(ids) = users() else { return };
    let env = shared_env();
    std::fs::create_dir(env.path("data")).unwrap();
    set_mode(&env.path("data"), 0o755);
    let log = app_log(&ids, &env);
    let (acl, m) = (getfacl(&log), std::fs::metadata(&log).unwrap());
    let o = run(lk_as(&env, "root", &["sync", "now", "--force"]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let after = std::fs::metadata(&log).unwrap();
    assert_ne!(after.ino(), m.ino(), "the log was not rewritten");
    assert_eq!(
        (after.uid(), after.gid(), after.mode()),
        (m.uid(), m.gid(), m.mode())
    );
    assert!(
        getfacl(&log).contains("user:nobody:r--"),
        "{}",
        getfacl(&log)
    );
    assert_eq!(getfacl(&log), acl);
    assert!(app_appends(&log), "the app cannot append to its log");
    // Files made beside the log belong to the log's owner.
    let lock = env.path("data/events.jsonl.lock");
    assert_eq!(std::fs::metadata(&lock).unwrap().uid(), ids[APP]);
}

#[test]
fn another_users_run_keeps_the_apps_access_or_refuses_untouched() {
    let Some(ids) = users() else { return };
    let env = shared_env();
    let data = env.path("data");
    std::fs::create_dir(&data).unwrap();
    own(&data, ids[APP], ids[GROUP], 0o2770);
    let log = app_log(&ids, &env);
    std::fs::create_dir(env.state()).unwrap();
    own(&env.state(), ids[OPS], ids[OPS_GID], 0o700);
    let before = std::fs::read(&log).unwrap();
    let m = std::fs::metadata(&log).unwrap();
    let o = run(lk_as(&env, OPS, &["sync", "now", "--force"]));
    let after = std::fs::metadata(&log).unwrap();
    if after.ino() == m.ino() {
        // Refused: untouched, and it says what to do.
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("sudo -u lk-app"),
            "{}",
            text(&o)
        );
        assert_eq!(std::fs::read(&log).unwrap(), before);
    } else {
        assert_eq!((after.uid(), after.gid()), (m.uid(), m.gid()));
    }
    assert!(
        getfacl(&log).contains("user:nobody:r--"),
        "{}",
        getfacl(&log)
    );
    assert!(app_appends(&log), "the app cannot append to its log");
}

// ---- 5. The lock file (issue 16 B.9) ---------------------------------------

#[test]
fn lock_file_never_locks_the_owner_out() {
    let Some(ids) = users() else { return };
    let env = shared_env();
    let data = env.path("data");
    std::fs::create_dir(&data).unwrap();
    own(&data, ids[APP], ids[APP_GID], 0o755);
    let log = data.join("events.jsonl");
    let lock = data.join("events.jsonl.lock");
    gen_log(&log, 500, 50, 0, false);
    own(&log, ids[APP], ids[APP_GID], 0o644);
    std::fs::create_dir(env.state()).unwrap();
    own(&env.state(), ids[APP], ids[APP_GID], 0o700);
    store(&env, &log, "");
    let owner_run = || run(lk_as(&env, APP, &["sync", "now", "--force"]));

    // A lock left by a root run of an older version: root's, the log's mode.
    std::fs::write(&lock, b"").unwrap();
    own(&lock, 0, 0, 0o644);
    for _ in 0..2 {
        let o = owner_run();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    assert_eq!(std::fs::metadata(&lock).unwrap().uid(), ids[APP]);

    // A log of mode 0444 (made read-only for a while): the lock stays
    // usable by its owner.
    std::fs::remove_file(&lock).unwrap();
    set_mode(&log, 0o444);
    for _ in 0..2 {
        let o = owner_run();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    assert_eq!(mode(&lock) & 0o600, 0o600);
    set_mode(&log, 0o644);

    // A lock the owner can neither open nor replace: the error says how
    // to fix it.
    own(&data, 0, 0, 0o755);
    own(&lock, 0, 0, 0o600);
    let o = owner_run();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("chown lk-app:lk-app"),
        "{}",
        text(&o)
    );
}

#[test]
fn root_run_leaves_the_lock_to_the_logs_owner() {
    let Some(ids) = users() else { return };
    let env = shared_env();
    let data = env.path("data");
    std::fs::create_dir(&data).unwrap();
    let log = data.join("events.jsonl");
    gen_log(&log, 500, 50, 0, false);
    own(&log, ids[APP], ids[APP_GID], 0o640);
    store(&env, &log, "");
    let o = run(lk_as(&env, "root", &["sync", "now", "--force"]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lock = data.join("events.jsonl.lock");
    let m = std::fs::metadata(&lock).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o777),
        (ids[APP], ids[APP_GID], 0o640)
    );
    // The owner's own later runs use it (in a dir it can write).
    own(&data, ids[APP], ids[APP_GID], 0o755);
    let env2_state = env.path("app-state");
    std::fs::create_dir(&env2_state).unwrap();
    own(&env2_state, ids[APP], ids[APP_GID], 0o700);
    let o = run({
        let mut c = lk_as(&env, APP, &["sync", "now", "--force"]);
        c.env("LOGKEEPER_STATE_DIR", &env2_state);
        c
    });
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

// ---- 6. Messages that say what to do (issue 16 C.13) ---------------------

#[test]
fn unreadable_log_says_what_to_do() {
    let Some(ids) = users() else { return };
    let env = shared_env();
    let data = env.path("data");
    std::fs::create_dir(&data).unwrap();
    own(&data, ids[APP], ids[APP_GID], 0o755);
    let log = data.join("events.jsonl");
    gen_log(&log, 100, 10, 0, false);
    own(&log, ids[APP], ids[APP_GID], 0o200);
    std::fs::create_dir(env.state()).unwrap();
    own(&env.state(), ids[APP], ids[APP_GID], 0o700);
    store(&env, &log, "");
    let o = run(lk_as(&env, APP, &["sync", "now", "--force"]));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("open log")
            && err.contains("chmod u+rw")
            && err.contains("nothing was changed"),
        "{}",
        text(&o)
    );
}

#[test]
fn dangling_symlinked_log_says_what_to_do() {
    let env = Env::new();
    let link = env.path("events.jsonl");
    std::os::unix::fs::symlink(env.path("gone/real.jsonl"), &link).unwrap();
    env.keyed_store("m", &link);
    let d = env.lk(["sync", "now"]).status(1);
    assert!(
        d.stderr().contains("which does not exist") && d.stderr().contains("ln -sfn"),
        "{}",
        d.stderr()
    );
}

// ---- 7. Temp files a crash left (leftovers item 3) -------------------------

/// A run killed while replacing a lock file it cannot write (a root-owned
/// one, left by an older root run) left `.events.jsonl.lock.lk-tmp.*`
/// beside the log for good. The next run removes it, but only a file it can
/// prove is its own: a symlink or another user's file under such a name is
/// left alone (and never followed).
#[test]
fn crash_while_replacing_the_lock_leaves_no_temp_file_after_the_next_run() {
    let Some(ids) = users() else { return };
    for point in crash_points(logkeeper::testing::FailpointPipeline::Lock) {
        let env = shared_env();
        let data = env.path("data");
        std::fs::create_dir(&data).unwrap();
        own(&data, ids[APP], ids[APP_GID], 0o755);
        let log = data.join("events.jsonl");
        gen_log(&log, 500, 50, 0, false);
        own(&log, ids[APP], ids[APP_GID], 0o644);
        store(&env, &log, "");
        lock_replaced_by_a_killed_run(&ids, &env, point.name(), &data.join("events.jsonl.lock"));
    }
}

/// The same for a segmented store, whose lock is `<dir>/.<name>.lock`.
#[test]
fn crash_while_replacing_a_segmented_stores_lock_leaves_no_temp_file() {
    let Some(ids) = users() else { return };
    for point in crash_points(logkeeper::testing::FailpointPipeline::Lock) {
        let env = shared_env();
        let dir = env.path("feed");
        std::fs::create_dir(&dir).unwrap();
        own(&dir, ids[APP], ids[APP_GID], 0o755);
        for seq in [1u64, 11] {
            let seg = dir.join(format!("events-{seq:020}.jsonl"));
            std::fs::write(&seg, format!("{{\"seq\":{seq}}}\n")).unwrap();
            own(&seg, ids[APP], ids[APP_GID], 0o644);
        }
        env.write_config(&format!(
            "[[store]]\nname = \"feed\"\nsegments = \"{}/events-{{seq}}.jsonl\"\n",
            dir.display()
        ));
        set_mode(&env.config(), 0o644);
        lock_replaced_by_a_killed_run(&ids, &env, point.name(), &dir.join(".feed.lock"));
    }
}

/// `lock` is root's 0644 (the owner cannot write it); kill lk-app's run at
/// `point`, mid-replacement; plant a symlink and lk-ops' file under the
/// lock's temp names; the next run of lk-app's removes only its own.
fn lock_replaced_by_a_killed_run(ids: &HashMap<&str, u32>, env: &Env, point: &str, lock: &Path) {
    let dir = lock.parent().unwrap();
    std::fs::create_dir(env.state()).unwrap();
    own(&env.state(), ids[APP], ids[APP_GID], 0o700);
    std::fs::write(lock, b"").unwrap();
    own(lock, 0, 0, 0o644);

    let mut killed = lk_as(env, APP, &["sync", "now", "--force"]);
    killed.env("LOGKEEPER_FAILPOINT", point);
    let o = run(killed);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        o.status.signal(),
        Some(9),
        "{point}: not killed there: {}",
        text(&o)
    );
    let prefix = format!(".{}.lk-tmp.", lock.file_name().unwrap().to_string_lossy());
    let left = files_with_prefix(dir, &prefix);
    assert_eq!(
        left.len(),
        1,
        "{point}: the crash left no temp file: {left:?}"
    );

    // Names a run must not touch: a symlink (to a file of the app's) and
    // another user's file.
    let precious = env.path("precious");
    std::fs::write(&precious, b"keep me").unwrap();
    let link = dir.join(format!("{prefix}planted-link"));
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    let foreign = dir.join(format!("{prefix}planted-by-ops"));
    std::fs::write(&foreign, b"ops").unwrap();
    own(&foreign, ids[OPS], ids[OPS_GID], 0o600);

    let o = run(lk_as(env, APP, &["sync", "now", "--force"]));
    assert_eq!(o.status.code(), Some(0), "{point}: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("recovered: removed"),
        "{point}: {}",
        text(&o)
    );
    assert_eq!(
        files_with_prefix(dir, &prefix),
        vec![foreign.clone(), link.clone()],
        "{point}: the crash's temp file is still there, or a planted name was removed"
    );
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
    assert_eq!(std::fs::metadata(lock).unwrap().uid(), ids[APP], "{point}");
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_file(&foreign).unwrap();
    let left = temps_under(&[dir, &env.state()]);
    assert!(left.is_empty(), "{point}: temp files left: {left:?}");
}

// ---- 8. Segmented stores: the owner pre-check (leftovers item 4) -----------

/// Every name under `dir` with its owner, mode and bytes (directories by
/// name only).
fn snapshot(dir: &Path) -> Vec<(PathBuf, u32, u32, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let bytes = if m.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            (p, m.uid(), m.mode(), bytes)
        })
        .collect();
    v.sort();
    v
}

/// A segmented store of lk-app's, run by lk-ops (who shares its group and
/// may write its directory): refused before anything is changed, as a log
/// store is (no lock file, no prune, no merge), saying whom to run it as.
/// Run as lk-app itself, the same store runs.
#[test]
fn another_users_run_of_a_segmented_store_refuses_untouched() {
    let Some(ids) = users() else { return };
    let env = shared_env();
    let dir = env.path("feed");
    std::fs::create_dir(&dir).unwrap();
    own(&dir, ids[APP], ids[GROUP], 0o2770);
    for f in 0..8u64 {
        let seg = dir.join(format!("events-{:020}.jsonl", f * 10 + 1));
        let lines: String = (0..10)
            .map(|i| {
                format!(
                    "{{\"seq\":{},\"account\":\"a{}\",\"op\":\"SET\"}}\n",
                    f * 10 + i + 1,
                    i % 3
                )
            })
            .collect();
        std::fs::write(&seg, lines).unwrap();
        own(&seg, ids[APP], ids[GROUP], 0o660);
    }
    env.write_config(&format!(
        "[[store]]\nname = \"feed\"\nsegments = \"{}/events-{{seq}}.jsonl\"\nkeep_files = 4\nkey = [\"/account\"]\nop = \"/op\"\nmin_dirty_ratio = 0.0\nfile_delete_delay = \"0s\"\n",
        dir.display()
    ));
    set_mode(&env.config(), 0o644);
    let ops_state = env.path("ops-state");
    std::fs::create_dir(&ops_state).unwrap();
    own(&ops_state, ids[OPS], ids[OPS_GID], 0o700);
    let before = snapshot(&dir);
    let o = run({
        let mut c = lk_as(&env, OPS, &["sync", "now", "--force"]);
        c.env("LOGKEEPER_STATE_DIR", &ops_state);
        c
    });
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("sudo -u lk-app") && err.contains("nothing was changed"),
        "{}",
        text(&o)
    );
    assert_eq!(snapshot(&dir), before, "the directory was changed");

    // Its owner's run does the work.
    let app_state = env.path("app-state");
    std::fs::create_dir(&app_state).unwrap();
    own(&app_state, ids[APP], ids[APP_GID], 0o700);
    let o = run({
        let mut c = lk_as(&env, APP, &["sync", "now", "--force"]);
        c.env("LOGKEEPER_STATE_DIR", &app_state);
        c
    });
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_ne!(snapshot(&dir), before, "the owner's run changed nothing");
}
