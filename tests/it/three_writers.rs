//! G1 with writers in three languages at once: the Rust library writer,
//! `logkeeper append`, and a Python writer running the recipe of `docs/writers.md`
//! word for word, each appending uniquely keyed lines while compactions run.
//! At the end every line is present exactly once and none is torn.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::*;

/// The Python code block of the writer protocol section of `docs/writers.md`.
fn readme_python_recipe() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/writers.md")).unwrap();
    let section = &readme[readme
        .find("## Writer protocol")
        .expect("docs/writers.md has a writer protocol section")..];
    let start = section
        .find("```python\n")
        .expect("the section has a python block")
        + "```python\n".len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_string()
}

fn line(writer: &str, i: usize) -> String {
    format!(
        r#"{{"change_type":"SET","item_type":"{writer}","item":{{"id":{i}}},"pad":"{}"}}"#,
        "p".repeat(i % 50)
    )
}

#[test]
fn rust_cli_and_python_writers_lose_nothing_during_compactions() {
    let per_writer: usize = std::env::var("LOGKEEPER_WRITER_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let min_compactions = 20;
    let env = Env::new();
    let log = env.path("events.jsonl");
    gen_log(&log, 2_000, 500, 0, false);
    env.keyed_store("m", &log);

    // Python: the documented recipe, then a loop calling it.
    let script = env.path("writer.py");
    std::fs::write(
        &script,
        format!(
            "{}\nimport sys, time\nfor i in range({per_writer}):\n    append(sys.argv[1], ('{}' % (i, 'p' * (i % 50))).encode())\n    time.sleep(0.0003)\n",
            readme_python_recipe(),
            r#"{"change_type":"SET","item_type":"Py","item":{"id":%d},"pad":"%s"}"#
        ),
    )
    .unwrap();
    let mut python = Command::new("python3")
        .arg(&script)
        .arg(&log)
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");

    // logkeeper append: 100 invocations of per_writer/100 lines each.
    let batches = 200;
    let mut cli = {
        let env_cmd = env.cmd();
        let mut sh = Command::new("bash");
        let mut input = String::new();
        for b in 0..batches {
            let lines: Vec<String> = (b * per_writer / batches..(b + 1) * per_writer / batches)
                .map(|i| line("Cli", i))
                .collect();
            input.push_str(&format!(
                "\"$LK\" append m <<'EOF' || exit 1\n{}\nEOF\nsleep 0.015\n",
                lines.join("\n")
            ));
        }
        let cli_script = env.path("cli_writer.sh");
        std::fs::write(&cli_script, input).unwrap();
        sh.arg(&cli_script).env("LK", env_cmd.get_program());
        for (k, v) in env_cmd.get_envs() {
            if let Some(v) = v {
                sh.env(k, v);
            }
        }
        sh.spawn().unwrap()
    };

    // The Rust library writer, in a thread.
    let rust_log = log.clone();
    let rust = std::thread::spawn(move || {
        let mut w = logkeeper::LogWriter::open(&rust_log).unwrap();
        for i in 0..per_writer {
            w.append(line("Rust", i).as_bytes()).unwrap();
            // Pace the writers so they overlap many compactions.
            std::thread::sleep(std::time::Duration::from_micros(300));
        }
    });

    // Compactions through the library API, in-process (fast, so many of them
    // overlap the writers).
    let paths = logkeeper::Paths {
        config: env.config(),
        state_dir: env.state(),
    };
    let config = logkeeper::Config::load(&env.config()).unwrap();
    let store = config.store("m").unwrap();
    let opts = logkeeper::SyncOptions {
        force: true,
        ..Default::default()
    };
    let mut compactions = 0;
    let mut during = 0;
    let mut hb = logkeeper::LogWriter::open(&log).unwrap();
    loop {
        let writers_running = python.try_wait().unwrap().is_none()
            || cli.try_wait().unwrap().is_none()
            || !rust.is_finished();
        if !writers_running {
            break;
        }
        hb.append(
            format!(
                r#"{{"change_type":"SET","item_type":"HB","item":{{"id":0}},"n":{compactions}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let rec = logkeeper::sync_store(&paths, store, &opts);
        assert_eq!(rec.outcome, logkeeper::Outcome::Ok, "{rec:?}");
        if rec.stats.rewritten {
            compactions += 1;
            if writers_running {
                during += 1;
            }
        }
    }
    rust.join().unwrap();
    assert!(cli.wait().unwrap().success());
    let py = python.wait_with_output().unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );

    assert!(
        during >= min_compactions,
        "only {during} compactions ran while the writers wrote"
    );
    // One more through the CLI, after the writers finished.
    env.lk(["sync", "now", "--force"]).status(0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'));
    let mut seen: HashMap<(String, u64), usize> = HashMap::new();
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}"));
        let w = v["item_type"].as_str().unwrap().to_string();
        if ["Py", "Cli", "Rust"].contains(&w.as_str()) {
            let i = v["item"]["id"].as_u64().unwrap();
            assert_eq!(l, line(&w, i as usize), "line changed");
            *seen.entry((w, i)).or_default() += 1;
        }
    }
    for w in ["Py", "Cli", "Rust"] {
        for i in 0..per_writer as u64 {
            let n = seen.get(&(w.to_string(), i)).copied().unwrap_or(0);
            assert_eq!(n, 1, "{w} line {i} present {n} times");
        }
    }
    eprintln!(
        "three writers: {} lines each, {compactions} compactions ({during} while writing), 0 lost",
        per_writer
    );
    let _ = std::io::stderr().flush();
}
