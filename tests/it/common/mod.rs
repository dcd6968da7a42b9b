//! The one harness every integration test drives logkeeper through: a temp
//! directory with its own config and state, the real binary, real files.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_logkeeper");

/// A sandbox: config, state and logs under one temp dir.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn config(&self) -> PathBuf {
        self.path("config.toml")
    }
    pub fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// A command for the real binary, pinned to this sandbox.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("LOGKEEPER_CONFIG", self.config())
            .env("LOGKEEPER_STATE_DIR", self.state())
            .env_remove("LOGKEEPER_FAILPOINT")
            .env_remove("LOGKEEPER_LOG")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// Start a fluent run: `env.lk(["sync", "now"]).status(0)`.
    pub fn lk<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = self.cmd();
        c.args(args);
        Run {
            cmd: c,
            stdin: None,
            stdout: None,
        }
    }

    /// Declare the standard keyed store (`/item_type` + `/item/id`, op
    /// `/change_type`, delete `DEL`) on `log`.
    pub fn keyed_store(&self, name: &str, log: &Path) {
        self.keyed_store_with(name, log, &[]);
    }

    /// [`Env::keyed_store`] with more `store add` flags, e.g.
    /// `["--keep-rotated", "1"]`.
    pub fn keyed_store_with(&self, name: &str, log: &Path, extra: &[&str]) {
        self.lk(["store", "add", name, "--log"])
            .arg(log)
            .args([
                "--key",
                "/item_type",
                "--key",
                "/item/id",
                "--op",
                "/change_type",
                "--delete",
                "DEL",
            ])
            .args(extra)
            .status(0);
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).unwrap();
    }
}

/// One invocation of the binary, with expectations.
pub struct Run {
    cmd: Command,
    stdin: Option<Vec<u8>>,
    /// Where stdout goes instead of a pipe (e.g. `/dev/full`).
    stdout: Option<std::fs::File>,
}

/// What a finished run printed.
pub struct Done {
    pub out: Output,
}

impl Run {
    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }
    pub fn args<I, S>(mut self, a: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(a);
        self
    }
    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }
    pub fn envs<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        self.cmd.envs(vars);
        self
    }
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }
    /// Send stdout to `file` (then [`Done::stdout`] is empty).
    pub fn stdout_to(mut self, file: std::fs::File) -> Self {
        self.stdout = Some(file);
        self
    }

    /// Run to completion, whatever the exit.
    pub fn output(mut self) -> Done {
        use std::io::Write;
        if self.stdin.is_some() {
            self.cmd.stdin(Stdio::piped());
        }
        let stdout = self.stdout.take().map_or_else(Stdio::piped, Stdio::from);
        let mut child = self
            .cmd
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn logkeeper");
        if let Some(input) = self.stdin.take() {
            child.stdin.take().unwrap().write_all(&input).unwrap();
        }
        Done {
            out: child.wait_with_output().unwrap(),
        }
    }

    /// Run and require exit code `code`.
    pub fn status(self, code: i32) -> Done {
        let d = self.output();
        assert_eq!(
            d.out.status.code(),
            Some(code),
            "expected exit {code}\n--- stdout:\n{}\n--- stderr:\n{}",
            d.stdout(),
            d.stderr()
        );
        d
    }

    /// Spawn with the failpoint pause at `point` (feature `failpoints`):
    /// the run creates `flag` there and waits until the test removes it.
    /// Returns once the run is paused. Polls for what it waits for: the
    /// flag (paused), or the run's exit (it will never pause: fails at once
    /// with its exit and output). Only a run still going after
    /// [`PAUSE_DEADLINE`] without getting there fails by time, saying what
    /// it is doing (its process state, whether it waits for a file lock).
    pub fn paused(self, point: &str, flag: &Path) -> Child {
        let mut child = self
            .env("LOGKEEPER_PAUSE", point)
            .env("LOGKEEPER_PAUSE_FILE", flag)
            .spawn();
        let t0 = std::time::Instant::now();
        loop {
            if flag.exists() {
                return child;
            }
            if let Some(st) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "the run exited ({st}) before it paused at {point} (a point it never reached: did it fail first?)\n--- stdout:\n{}\n--- stderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            if t0.elapsed() > PAUSE_DEADLINE {
                let pid = child.id();
                let state = proc_state(pid);
                let locked = blocked_on_a_lock(pid);
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the run (pid {pid}) was still going after {PAUSE_DEADLINE:?} and had not paused at {point}: process state {state}, waiting for a file lock: {locked}"
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn spawn(mut self) -> Child {
        self.cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn logkeeper")
    }
}

impl Done {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout()))
    }
    pub fn stdout_has(self, s: &str) -> Self {
        assert!(
            self.stdout().contains(s),
            "stdout lacks {s:?}:\n{}",
            self.stdout()
        );
        self
    }
    pub fn stderr_has(self, s: &str) -> Self {
        assert!(
            self.stderr().contains(s),
            "stderr lacks {s:?}:\n{}",
            self.stderr()
        );
        self
    }
}

/// `../shared`, beside the repository, if present.
pub fn shared_dir() -> Option<PathBuf> {
    let p = std::env::var_os("LOGKEEPER_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    p.join("bench/gen_log.py").exists().then_some(p)
}

/// Generate a log with `../shared/bench/gen_log.py` when it is there (CI
/// always has it), else with logkeeper's own demo generator.
pub fn gen_log(path: &Path, events: usize, keys: usize, malformed: usize, torn: bool) {
    if let Some(shared) = shared_dir() {
        let mut c = Command::new("python3");
        c.arg(shared.join("bench/gen_log.py"))
            .arg(path)
            .args(["--events", &events.to_string(), "--keys", &keys.to_string()])
            .args(["--malformed", &malformed.to_string()]);
        if torn {
            c.arg("--torn");
        }
        let st = c.status().expect("run gen_log.py");
        assert!(st.success());
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have ../shared beside the repository"
        );
        logkeeper::testing::DemoLog {
            events,
            keys,
            malformed,
            torn,
            seed: 7,
        }
        .write(path)
        .unwrap();
    }
}

/// An independent reference fold (serde_json `Value` per line, the way a
/// user would write it): latest line per (item_type, item.id), `DEL` drops
/// the key, in the order of each key's last write. Malformed lines and the
/// torn last line are skipped. Returns the surviving lines.
pub fn reference_fold(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut latest: HashMap<(String, String), (u64, Vec<u8>)> = HashMap::new();
    let mut seq = 0u64;
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => &bytes[..=i],
        None => &bytes[..0],
    };
    for line in complete.split(|&b| b == b'\n') {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let (Some(t), Some(id)) = (v.get("item_type"), v.pointer("/item/id")) else {
            continue;
        };
        let k = (t.to_string(), id.to_string());
        seq += 1;
        if v.get("change_type").and_then(Value::as_str) == Some("DEL") {
            latest.remove(&k);
        } else {
            latest.insert(k, (seq, line.to_vec()));
        }
    }
    let mut v: Vec<(u64, Vec<u8>)> = latest.into_values().collect();
    v.sort();
    v.into_iter().map(|(_, l)| l).collect()
}

pub fn fold_file(path: &Path) -> Vec<Vec<u8>> {
    reference_fold(&std::fs::read(path).unwrap())
}

/// Files in `dir` whose names start with `prefix`.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Rotated files of `log` (`<name>.<timestamp>Z`).
pub fn rotated(log: &Path) -> Vec<PathBuf> {
    let name = log.file_name().unwrap().to_string_lossy().into_owned();
    files_with_prefix(log.parent().unwrap(), &format!("{name}.2"))
}

/// Temp files left beside `log`.
pub fn temps(log: &Path) -> Vec<PathBuf> {
    let name = log.file_name().unwrap().to_string_lossy().into_owned();
    files_with_prefix(log.parent().unwrap(), &format!(".{name}.lk-tmp."))
}

/// Every logkeeper temp file (a name with `.lk-tmp.`) under each of `dirs`,
/// at any depth: after a run that recovered, there must be none in the
/// log's directory or the state dir.
pub fn temps_under(dirs: &[&Path]) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&p, out);
            } else if e.file_name().to_string_lossy().contains(".lk-tmp.") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for d in dirs {
        walk(d, &mut out);
    }
    out.sort();
    out
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

pub fn set_mode(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// Run `logkeeper ARGS` in `env` and return its exit code and peak RSS
/// (KiB). The binary is started by a small python3 process that reports
/// its children's `ru_maxrss`: a child forked straight from this large,
/// multi-threaded test process would count the test's own pages, which it
/// shares until its exec, in its high-water mark.
pub fn peak_rss_kib(env: &Env, args: &[&str]) -> (i32, i64) {
    const SCRIPT: &str = "import resource, subprocess, sys\n\
        rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n\
        print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n";
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT, BIN])
        .args(args)
        .env("LOGKEEPER_CONFIG", env.config())
        .env("LOGKEEPER_STATE_DIR", env.state())
        .env_remove("LOGKEEPER_FAILPOINT")
        .output()
        .expect("python3 (the tests need it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|w| w.parse::<i64>().unwrap());
    match (it.next(), it.next()) {
        (Some(rc), Some(kib)) => (rc as i32, kib),
        _ => panic!(
            "no figures from python3: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// How long [`Run::paused`] lets a run that is still going take to reach
/// its pause point: far beyond any run of the tests, even on a loaded
/// machine; a run that exits is reported at once.
pub const PAUSE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// The state letter and kernel wait channel of process `pid` (from
/// `/proc`), e.g. `S (sleeping) in do_sys_poll`, for a failure message.
pub fn proc_state(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    format!("{state} in {}", if wchan.is_empty() { "?" } else { &wchan })
}

/// Poll `cond` every 20 ms until it holds; panic with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether process `pid` is blocked waiting for a file lock (a `->` line
/// of `/proc/locks` names it).
pub fn blocked_on_a_lock(pid: u32) -> bool {
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter(|l| l.contains("->"))
        .any(|l| l.split_whitespace().nth(5) == Some(pid.to_string().as_str()))
}

/// Send signal `sig` to process `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: plain kill(2) on a child we started.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// Wait for a child to exit, killing it and panicking after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: std::time::Duration) -> std::process::ExitStatus {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A running `logkeeper daemon` whose stderr lines are collected as they
/// come, so a test can wait for one. Killed on drop if still running.
pub struct Daemon {
    pub child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Env {
    /// Start `logkeeper daemon` (plus `extra` args) in this sandbox.
    pub fn daemon(&self, extra: &[&str]) -> Daemon {
        let mut child = self.lk(["daemon"]).args(extra).spawn();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Daemon { child, lines }
    }

    /// The store's last-run record, if any.
    pub fn last_run(&self, store: &str) -> Option<Value> {
        let p = self
            .state()
            .join("stores")
            .join(store)
            .join("last-run.json");
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    }

    /// The store's run history, oldest first.
    pub fn history(&self, store: &str) -> Vec<Value> {
        let p = self
            .state()
            .join("stores")
            .join(store)
            .join("history.jsonl");
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
    /// Wait until a stderr line contains `needle`; returns that line.
    pub fn wait_line(&self, needle: &str, timeout: std::time::Duration) -> String {
        let t0 = std::time::Instant::now();
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            assert!(
                t0.elapsed() < timeout,
                "daemon printed no line with {needle:?} within {timeout:?}; stderr so far:\n{}",
                self.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    /// SIGTERM and wait (bounded) for the exit.
    pub fn stop(&mut self, timeout: std::time::Duration) -> std::process::ExitStatus {
        signal(self.pid(), libc::SIGTERM);
        wait_exit(&mut self.child, timeout)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Fail (never skip) when a system tool the tests drive is missing; `.ci/run`
/// installs `package`.
pub fn need(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(
        found,
        "{tool} is not installed: `apt-get install {package}` (.ci/run does this)"
    );
}

/// The crash points (`Failpoint::ALL`, kind `Crash`) that a run of
/// `pipeline` passes: its own and, for a single-log swap or a segmented
/// run, those the two share. A crash test loops over these, so a point
/// added to the code is tested by the loop of its pipeline.
pub fn crash_points(
    pipeline: logkeeper::testing::FailpointPipeline,
) -> Vec<logkeeper::testing::Failpoint> {
    use logkeeper::testing::{Failpoint, FailpointKind as Kind, FailpointPipeline as P};
    let shared = matches!(pipeline, P::Log | P::Segmented);
    let points: Vec<Failpoint> = Failpoint::ALL
        .iter()
        .copied()
        .filter(|f| f.kind() == Kind::Crash)
        .filter(|f| f.pipeline() == pipeline || (shared && f.pipeline() == P::Shared))
        .collect();
    assert!(!points.is_empty(), "no crash point in {pipeline:?}");
    points
}
