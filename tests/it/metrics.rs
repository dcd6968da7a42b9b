//! The Prometheus textfile, read through a real node_exporter (Debian's
//! `prometheus-node-exporter`) and checked by a real `promtool`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// node_exporter serving only the textfile collector; killed on drop.
struct NodeExporter {
    child: Child,
    port: u16,
}

impl NodeExporter {
    fn start(textfile_dir: &Path) -> NodeExporter {
        need("prometheus-node-exporter", "prometheus-node-exporter");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(["--collector.disable-defaults", "--collector.textfile"])
            .arg(format!(
                "--collector.textfile.directory={}",
                textfile_dir.display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-node-exporter");
        let ne = NodeExporter { child, port };
        wait_for("node_exporter to serve", Duration::from_secs(20), || {
            ne.try_get("/metrics").is_some()
        });
        ne
    }

    fn try_get(&self, path: &str) -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        let (head, body) = body.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?;
        (status == "200").then(|| body.to_string())
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `name{labels}` → value for every sample of an exposition page.
fn samples(page: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut out = BTreeMap::new();
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        out.insert((name.to_string(), labels), value.parse().unwrap());
    }
    out
}

struct Page(BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Page {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let key = (
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        *self
            .0
            .get(&key)
            .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
    }
}

fn config(env: &Env, metrics_file: &Path) {
    gen_log(&env.path("good.jsonl"), 2_000, 100, 2, false);
    env.write_config(&format!(
        r#"metrics_file = "{}"

[[store]]
name = "good"
log = "good.jsonl"
key = ["/item_type", "/item/id"]
op = "/change_type"
delete = ["DEL"]
schedule = "0 * * * *"

[[store]]
name = "bad"
log = "no-such-dir/events.jsonl"

[[store]]
name = "fresh"
log = "fresh.jsonl"
"#,
        metrics_file.display()
    ));
}

#[test]
fn node_exporter_serves_the_metrics_of_an_ok_and_a_failed_store() {
    let env = Env::new();
    let dir = env.path("textfile");
    std::fs::create_dir(&dir).unwrap();
    let prom = dir.join("logkeeper.prom");
    config(&env, &prom);
    let ne = NodeExporter::start(&dir);

    env.lk(["sync", "now", "good", "bad"]).status(1);
    let rec = env.last_run("good").unwrap();
    let page = Page(samples(&ne.try_get("/metrics").expect("/metrics")));
    let good = [("store", "good")];
    let bad = [("store", "bad")];
    let fresh = [("store", "fresh")];
    assert_eq!(page.get("node_textfile_scrape_error", &[]), 0.0);
    let with = |s: &[(&'static str, &'static str)], k, v| {
        let mut l = s.to_vec();
        l.push((k, v));
        l
    };
    assert_eq!(
        page.get("logkeeper_last_run_outcome", &with(&good, "outcome", "ok")),
        1.0
    );
    assert_eq!(
        page.get(
            "logkeeper_last_run_outcome",
            &with(&good, "outcome", "error")
        ),
        0.0
    );
    assert_eq!(
        page.get("logkeeper_health", &with(&good, "health", "ok")),
        1.0
    );
    assert_eq!(
        page.get("logkeeper_runs_total", &with(&good, "outcome", "ok")),
        1.0
    );
    assert_eq!(
        page.get("logkeeper_keys_live", &good),
        rec["stats"]["keys_live"].as_f64().unwrap()
    );
    assert_eq!(
        page.get("logkeeper_last_run_before_bytes", &good),
        rec["stats"]["bytes_before"].as_f64().unwrap()
    );
    assert_eq!(
        page.get("logkeeper_log_bytes", &good),
        std::fs::metadata(env.path("good.jsonl")).unwrap().len() as f64
    );
    assert_eq!(page.get("logkeeper_quarantined_lines_total", &good), 2.0);
    assert_eq!(
        page.get("logkeeper_schedule_interval_seconds", &good),
        3600.0
    );
    assert!(page.get("logkeeper_last_success_timestamp_seconds", &good) > 1.7e9);

    assert_eq!(
        page.get(
            "logkeeper_last_run_outcome",
            &with(&bad, "outcome", "error")
        ),
        1.0
    );
    assert_eq!(
        page.get("logkeeper_health", &with(&bad, "health", "failed")),
        1.0
    );
    assert_eq!(
        page.get("logkeeper_runs_total", &with(&bad, "outcome", "error")),
        1.0
    );
    assert!(page.get("logkeeper_last_run_timestamp_seconds", &bad) > 1.7e9);
    assert_eq!(
        page.get("logkeeper_last_success_timestamp_seconds", &bad),
        0.0
    );

    // Never run: every series, with zeros.
    assert_eq!(
        page.get("logkeeper_health", &with(&fresh, "health", "never_run")),
        1.0
    );
    assert_eq!(
        page.get("logkeeper_runs_total", &with(&fresh, "outcome", "ok")),
        0.0
    );
    assert_eq!(
        page.get("logkeeper_last_run_timestamp_seconds", &fresh),
        0.0
    );

    need("promtool", "prometheus");
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&prom).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn counters_come_from_the_state_and_survive_new_processes() {
    let env = Env::new();
    let dir = env.path("textfile");
    std::fs::create_dir(&dir).unwrap();
    let prom = dir.join("logkeeper.prom");
    config(&env, &prom);
    for _ in 0..3 {
        env.lk(["sync", "now", "bad"]).status(1);
    }
    env.lk(["sync", "now", "good", "--force"]).status(0);
    env.lk(["sync", "now", "good", "--force"]).status(0);
    let page = Page(samples(&std::fs::read_to_string(&prom).unwrap()));
    let get = |s, o| page.get("logkeeper_runs_total", &[("store", s), ("outcome", o)]);
    assert_eq!((get("bad", "error"), get("good", "ok")), (3.0, 2.0));
    assert_eq!(
        env.last_run("good").unwrap()["totals"]["runs_ok"].as_u64(),
        Some(2)
    );

    // --metrics-file overrides the config's; the file keeps no temp beside it.
    let other = dir.join("other.prom");
    env.lk(["sync", "now", "good", "--metrics-file"])
        .arg(&other)
        .status(0);
    let page = Page(samples(&std::fs::read_to_string(&other).unwrap()));
    assert_eq!(
        page.get(
            "logkeeper_runs_total",
            &[("store", "good"), ("outcome", "skipped")]
        ) + page.get(
            "logkeeper_runs_total",
            &[("store", "good"), ("outcome", "ok")]
        ),
        3.0
    );
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn daemon_writes_metrics_at_start_up_before_any_run() {
    let env = Env::new();
    let dir = env.path("textfile");
    std::fs::create_dir(&dir).unwrap();
    let prom = dir.join("lk.prom");
    gen_log(&env.path("a.jsonl"), 100, 10, 0, false);
    env.write_config("[[store]]\nname = \"a\"\nlog = \"a.jsonl\"\n");
    let mut d = env.daemon(&["--metrics-file", prom.to_str().unwrap()]);
    wait_for("the metrics file", Duration::from_secs(20), || {
        prom.exists()
    });
    let page = Page(samples(&std::fs::read_to_string(&prom).unwrap()));
    assert_eq!(
        page.get(
            "logkeeper_health",
            &[("store", "a"), ("health", "never_run")]
        ),
        1.0
    );
    assert!(d.stop(Duration::from_secs(20)).success());

    // With a schedule, the catch-up run at start-up is in the file after it.
    env.write_config("[[store]]\nname = \"a\"\nlog = \"a.jsonl\"\nschedule = \"* * * * *\"\n");
    let mut d = env.daemon(&["--metrics-file", prom.to_str().unwrap()]);
    d.wait_line("store a: ok", Duration::from_secs(30));
    wait_for("the run in the metrics", Duration::from_secs(20), || {
        let page = Page(samples(&std::fs::read_to_string(&prom).unwrap()));
        page.get("logkeeper_runs_total", &[("store", "a"), ("outcome", "ok")]) == 1.0
    });
    assert!(d.stop(Duration::from_secs(20)).success());
}

#[test]
fn a_run_holding_the_lock_shows_as_in_progress() {
    let env = Env::new();
    let dir = env.path("textfile");
    std::fs::create_dir(&dir).unwrap();
    let prom = dir.join("logkeeper.prom");
    config(&env, &prom);
    // A writer holds the log's lock, so the run waits at its swap, holding
    // the store lock; meanwhile another store's run writes the metrics.
    let writer = std::fs::File::open(env.path("good.jsonl")).unwrap();
    writer.lock().unwrap();
    let mut slow = env.lk(["sync", "now", "good"]).spawn();
    let lock = env.path("good.jsonl.lock");
    wait_for(
        "the run to hold the store lock",
        Duration::from_secs(20),
        || std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&slow.id().to_string())),
    );
    env.lk(["sync", "now", "bad"]).status(1);
    let page = Page(samples(&std::fs::read_to_string(&prom).unwrap()));
    assert_eq!(
        page.get("logkeeper_run_in_progress", &[("store", "good")]),
        1.0
    );
    assert_eq!(
        page.get("logkeeper_run_in_progress", &[("store", "bad")]),
        0.0
    );
    writer.unlock().unwrap();
    assert!(wait_exit(&mut slow, Duration::from_secs(60)).success());
    let page = Page(samples(&std::fs::read_to_string(&prom).unwrap()));
    assert_eq!(
        page.get("logkeeper_run_in_progress", &[("store", "good")]),
        0.0
    );
}
