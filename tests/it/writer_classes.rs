//! The writers real apps have (docs/writers.md, "Writer classes"), as real separate
//! programs, while `sync now --force` compacts their log at least 50 times:
//! after a final run, the live log's fold must hold exactly what each writer
//! last wrote per key: 0 keys missing, 0 stale values, 0 deleted keys alive
//! again, 0 duplicated lines.
//!
//! A, B and D are `tests/it/programs/writer.py` (python3); C is
//! `tests/it/programs/cwriter.go`, built here with `go build` (CI installs
//! golang-go). Each writer owns its keys, so its own write order is the
//! truth. The figures are printed (`--nocapture`) for the record.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use logkeeper::testing::XorShift;

use serde_json::Value;

use crate::common::*;

pub(crate) const PROGRAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/programs");

/// The Go writer, built once per test binary into the cargo target's temp
/// dir (GOCACHE and GOPATH there too, so no HOME is assumed).
pub(crate) fn go_writer() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-writer");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("cwriter");
        let go = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(Path::new(PROGRAMS).join("cwriter.go"))
            .env("GOCACHE", dir.join("cache"))
            .env("GOPATH", dir.join("gopath"))
            .env("GO111MODULE", "off")
            .env("HOME", &dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("`go` is needed to build the Go writer (apt-get install golang-go): {e}")
            });
        assert!(
            go.status.success(),
            "go build failed: {}",
            String::from_utf8_lossy(&go.stderr)
        );
        out
    })
}

/// One running writer program.
struct Writer {
    class: char,
    name: String,
    truth: PathBuf,
    child: Child,
}

fn start(env: &Env, class: char, log: &Path) -> Writer {
    let name = format!("{class}{}", std::process::id() % 1000);
    let truth = env.path(&format!("truth-{class}.json"));
    let stop = env.path("stop");
    let mut cmd = if class == 'C' {
        let mut c = Command::new(go_writer());
        c.arg(log).arg(&name).arg(&truth).arg(&stop);
        c
    } else {
        let mut c = Command::new("python3");
        c.arg(Path::new(PROGRAMS).join("writer.py"))
            .arg(class.to_string())
            .arg(log)
            .arg(&name)
            .arg(&truth)
            .arg(&stop)
            .arg(BIN)
            .arg("m");
        for (k, v) in env.cmd().get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c
    };
    let child = cmd
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start writer {class} (python3 needed): {e}"));
    Writer {
        class,
        name,
        truth,
        child,
    }
}

/// What one scenario measured.
#[derive(Debug, Default)]
struct Figures {
    lines: u64,
    compactions: u64,
    kills: u64,
    missing: u64,
    stale: u64,
    deleted_alive: u64,
    duplicated: u64,
}

/// Run `classes` on one log while compacting it `runs` times (SIGKILLing
/// about one run in three at a random instant when `kill`), stop them, run
/// once more, and compare the fold with each writer's truth.
fn scenario(classes: &[char], keep_rotated: u32, runs: u64, kill: bool) -> Figures {
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 300, 0, false);
    env.keyed_store_with("m", &log, &["--keep-rotated", &keep_rotated.to_string()]);
    let mut writers: Vec<Writer> = classes.iter().map(|&c| start(&env, c, &log)).collect();
    // Every writer has written before the first run.
    wait_for("writers to start", Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        writers
            .iter()
            .all(|w| text.contains(&format!("\"{}\"", w.name)))
    });
    let mut f = Figures::default();
    let mut rng = XorShift::new(0x9e3779b97f4a7c15 ^ keep_rotated as u64 ^ (kill as u64) << 7);
    let deadline = Instant::now() + Duration::from_secs(120);
    while f.compactions < runs {
        assert!(
            Instant::now() < deadline,
            "only {} of {runs} runs rewrote the log in 120 s: {f:?}",
            f.compactions
        );
        if kill && rng.next_u64().is_multiple_of(3) {
            let mut child = env.lk(["sync", "now", "--force", "--wait"]).spawn();
            // The kill instant is the randomised variable under test.
            std::thread::sleep(Duration::from_micros(rng.next_u64() % 40_000));
            if child.try_wait().unwrap().is_none() {
                f.kills += 1;
            }
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        let d = env.lk(["sync", "now", "--force", "--json"]).output();
        assert_eq!(
            d.out.status.code(),
            Some(0),
            "a run failed: {} {}",
            d.stdout(),
            d.stderr()
        );
        if d.json()["runs"][0]["stats"]["rewritten"] == true {
            f.compactions += 1;
        }
        for w in writers.iter_mut() {
            assert!(
                w.child.try_wait().unwrap().is_none(),
                "writer {} died",
                w.class
            );
        }
    }
    std::fs::write(env.path("stop"), b"").unwrap();
    let mut truths = Vec::new();
    for w in writers.iter_mut() {
        let st = wait_exit(&mut w.child, Duration::from_secs(30));
        assert!(st.success(), "writer {} failed", w.class);
        let t: Value = serde_json::from_slice(&std::fs::read(&w.truth).unwrap()).unwrap();
        f.lines += t["lines"].as_u64().unwrap();
        truths.push((w.name.clone(), t["truth"].clone()));
    }
    env.lk(["sync", "now", "--force"]).status(0);

    let text = std::fs::read(&log).unwrap();
    let mut seen = HashSet::new();
    for l in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if !seen.insert(l) {
            f.duplicated += 1;
        }
    }
    let mut folded: HashMap<(String, String), i64> = HashMap::new();
    for l in fold_file(&log) {
        let v: Value = serde_json::from_slice(&l).unwrap();
        if let (Some(t), Some(seq)) = (v["item_type"].as_str(), v["seq"].as_i64()) {
            folded.insert((t.to_string(), v["item"]["id"].to_string()), seq);
        }
    }
    for (name, truth) in truths {
        for (key, want) in truth.as_object().unwrap() {
            let got = folded.get(&(name.clone(), key.clone()));
            let wrong = match (want.as_i64(), got) {
                (Some(_), None) => {
                    f.missing += 1;
                    true
                }
                (Some(w), Some(&g)) if w != g => {
                    f.stale += 1;
                    true
                }
                (None, Some(_)) => {
                    f.deleted_alive += 1;
                    true
                }
                _ => false,
            };
            if wrong {
                explain(&env, &name, key, want, got);
            }
        }
    }
    eprintln!(
        "writers {classes:?} keep_rotated={keep_rotated}: {} lines written, {} compactions, {} kills; missing {}, stale {}, deleted alive {}, duplicated {}",
        f.lines, f.compactions, f.kills, f.missing, f.stale, f.deleted_alive, f.duplicated
    );
    f
}

/// Print where every line of one key is, to diagnose a failure.
fn explain(env: &Env, name: &str, key: &str, want: &Value, got: Option<&i64>) {
    eprintln!("writer {name} key {key}: truth {want}, fold {got:?}; its lines:");
    let needle = format!("\"item_type\":\"{name}\",\"item\":{{\"id\":{key}}}");
    for p in files_with_prefix(env.dir.path(), "") {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        let mut off = 0;
        for l in bytes.split(|&b| b == b'\n') {
            let text = String::from_utf8_lossy(l);
            if text.contains(&needle) {
                eprintln!(
                    "  {}@{off}: {text}",
                    p.file_name().unwrap().to_string_lossy()
                );
            }
            off += l.len() + 1;
        }
    }
}

fn assert_exact(f: &Figures) {
    assert_eq!(
        (f.missing, f.stale, f.deleted_alive, f.duplicated),
        (0, 0, 0, 0),
        "{f:?}"
    );
    assert!(f.lines > 0, "the writers wrote nothing: {f:?}");
}

fn each_keep(classes: &[char]) {
    let t = Instant::now();
    for keep in [0, 1, 3] {
        assert_exact(&scenario(classes, keep, 50, false));
    }
    eprintln!("{classes:?}: {:?}", t.elapsed());
}

#[test]
fn lockless_reopening_writer_a_keeps_every_key_exact() {
    each_keep(&['A']);
}

#[test]
fn flock_fd_for_life_writer_b_keeps_every_key_exact() {
    each_keep(&['B']);
}

#[test]
fn go_open_write_write_close_writer_c_keeps_every_key_exact() {
    each_keep(&['C']);
}

#[test]
fn protocol_writer_d_keeps_every_key_exact() {
    each_keep(&['D']);
}

#[test]
fn writers_a_b_c_together_on_one_log_keep_every_key_exact() {
    each_keep(&['A', 'B', 'C']);
}

#[test]
fn writers_a_b_c_d_with_runs_killed_at_random_keep_every_key_exact() {
    for keep in [0, 1, 3] {
        let f = scenario(&['A', 'B', 'C', 'D'], keep, 50, true);
        assert!(f.kills > 0, "no run was killed mid-way: {f:?}");
        assert_exact(&f);
    }
}

/// An append-only store with `rotate_bytes`: its rotated files are the
/// archive, read before the live log. While a lock-less writer (A) and the
/// writer protocol (D) append during 30 rotations, every line each wrote is
/// in archive-then-live order exactly once: the tail and the lines A writes
/// to the old inode after a swap stay in the archive they belong to, and
/// are never also copied into the live log.
#[test]
fn rotated_archives_and_the_live_log_hold_each_line_once_in_write_order() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    std::fs::write(&log, b"").unwrap();
    env.write_config(&format!(
        "[[store]]\nname = \"m\"\nlog = \"{}\"\nrotate_bytes = 2000\nkeep_rotated = 100000\n",
        log.display()
    ));
    let mut writers: Vec<Writer> = ['A', 'D'].iter().map(|&c| start(&env, c, &log)).collect();
    let mut rotations = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while rotations < 30 {
        assert!(
            Instant::now() < deadline,
            "only {rotations} rotations in 120 s"
        );
        let d = env.lk(["sync", "now", "--force", "--json"]).status(0);
        if d.json()["runs"][0]["stats"]["rewritten"] == true {
            rotations += 1;
        }
    }
    std::fs::write(env.path("stop"), b"").unwrap();
    let mut expected = HashMap::new();
    for w in writers.iter_mut() {
        assert!(wait_exit(&mut w.child, Duration::from_secs(30)).success());
        let t: Value = serde_json::from_slice(&std::fs::read(&w.truth).unwrap()).unwrap();
        expected.insert(w.name.clone(), t["lines"].as_u64().unwrap());
    }
    env.lk(["sync", "now", "--force"]).status(0);

    let mut files = rotated(&log);
    files.push(log.clone());
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    for f in &files {
        for line in std::fs::read(f).unwrap().split(|&b| b == b'\n') {
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            if let (Some(name), Some(seq)) = (v["item_type"].as_str(), v["seq"].as_u64()) {
                seen.entry(name.to_string()).or_default().push(seq);
            }
        }
    }
    for (name, lines) in &expected {
        let got = seen.remove(name).unwrap_or_default();
        let want: Vec<u64> = (1..=*lines).collect();
        let dups = got.len() as i64 - HashSet::<u64>::from_iter(got.iter().copied()).len() as i64;
        assert_eq!(dups, 0, "writer {name}: {dups} lines in two places");
        assert_eq!(got, want, "writer {name}: lines missing or out of order");
    }
    println!(
        "rotate_bytes: {rotations} rotations, {} archives, lines {expected:?}: 0 duplicated, 0 missing, in order",
        files.len() - 1
    );
}
