//! `schedule install|uninstall|show` against the real tools: rendered units
//! pass `systemd-analyze verify`; converted `OnCalendar=` fire at exactly
//! logkeeper's own times per `systemd-analyze calendar`; launchd plists parse;
//! the cron backend edits a real crontab and keeps every other byte.

#[path = "it/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use common::*;
use logkeeper::Schedule;
use logkeeper::testing::CronFields;

/// A recording stand-in for systemctl/launchctl (their user managers do not
/// run in a container): appends its arguments to `calls.log`.
fn recorder(env: &Env) -> String {
    let script = env.path("record.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\n",
            env.path("calls.log").display()
        ),
    )
    .unwrap();
    set_mode(&script, 0o755);
    script.to_string_lossy().into_owned()
}

fn calls(env: &Env) -> String {
    std::fs::read_to_string(env.path("calls.log")).unwrap_or_default()
}

/// Two stores with schedules (one with both day fields restricted).
fn two_stores(env: &Env) {
    env.keyed_store("marshal", &env.path("m.jsonl"));
    env.lk(["store", "add", "journal", "--log"])
        .arg(env.path("j.jsonl"))
        .args(["--schedule", "0 3 1 * mon-fri"])
        .status(0);
    let text = std::fs::read_to_string(env.config()).unwrap();
    let text = text.replacen(
        "delete = [\"DEL\"]\n",
        "delete = [\"DEL\"]\nschedule = \"*/15 9-17 * * mon-fri\"\njitter = \"30s\"\n",
        1,
    );
    env.write_config(&text);
}

fn install_env(env: &Env) -> Vec<(&'static str, String)> {
    vec![
        ("HOME", env.path("home").to_string_lossy().into_owned()),
        (
            "XDG_CONFIG_HOME",
            env.path("xdg").to_string_lossy().into_owned(),
        ),
        ("LOGKEEPER_SYSTEMCTL", recorder(env)),
        ("LOGKEEPER_LAUNCHCTL", recorder(env)),
    ]
}

fn lk_install<'a>(env: &Env, args: impl IntoIterator<Item = &'a str>) -> Done {
    env.lk(args).envs(install_env(env)).status(0)
}

fn unit_dir(env: &Env) -> PathBuf {
    env.path("xdg/systemd/user")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn verify(units: &[PathBuf]) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(units)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify {units:?}: {}\n{err}",
        out.status
    );
}

#[test]
fn systemd_units_in_both_modes_pass_systemd_analyze_verify() {
    need("systemd-analyze", "systemd");
    let env = Env::new();
    two_stores(&env);
    let d = lk_install(&env, ["schedule", "install", "--backend", "systemd"]);
    assert!(d.stdout().contains("wrote"), "{}", d.stdout());
    let units = files_in(&unit_dir(&env));
    assert_eq!(units.len(), 1, "{units:?}");
    let unit = std::fs::read_to_string(&units[0]).unwrap();
    assert!(unit.contains(&format!(
        "Environment=\"LOGKEEPER_CONFIG={}\"",
        env.config().display()
    )));
    assert!(unit.contains(&format!(
        "Environment=\"LOGKEEPER_STATE_DIR={}\"",
        env.state().display()
    )));
    assert!(unit.contains("daemon\n"));
    assert!(unit.contains("Restart=on-failure"));
    verify(&units);
    let c = calls(&env);
    assert!(c.contains("--user daemon-reload"), "{c}");
    assert!(c.contains("--user enable --now logkeeper-"), "{c}");

    // Switching to timer mode replaces the daemon unit with one timer and
    // one service per store.
    lk_install(
        &env,
        [
            "schedule",
            "install",
            "--backend",
            "systemd",
            "--mode",
            "timer",
        ],
    );
    let units = files_in(&unit_dir(&env));
    let names: Vec<String> = units
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // Two stores, a timer and a service each, plus the OnFailure= template.
    assert_eq!(names.len(), 5, "{names:?}");
    let template = names.iter().find(|n| n.ends_with("-failure@.service"));
    let template = template.unwrap_or_else(|| panic!("no failure template in {names:?}"));
    assert!(
        names
            .iter()
            .filter(|n| *n != template)
            .all(|n| n.contains("-sync-")),
        "{names:?}"
    );
    verify(&units);
    // The template verifies as the instance a failure starts.
    let instance = unit_dir(&env).join(template.replace("@.", "@marshal."));
    std::fs::copy(unit_dir(&env).join(template), &instance).unwrap();
    verify(std::slice::from_ref(&instance));
    std::fs::remove_file(&instance).unwrap();
    for p in &units {
        let t = std::fs::read_to_string(p).unwrap();
        if p.to_string_lossy().ends_with("failure@.service") {
            assert!(t.contains(" status %i\n"), "{t}");
        } else if p.extension().unwrap() == "service" {
            assert!(t.contains("SuccessExitStatus=75"), "{t}");
            assert!(t.contains("--trigger timer"), "{t}");
            let store = p.file_stem().unwrap().to_string_lossy();
            let store = store.rsplit("-sync-").next().unwrap();
            assert!(
                t.contains(&format!(
                    "OnFailure={}",
                    template.replace("@.", &format!("@{store}."))
                )),
                "{t}"
            );
        } else {
            assert!(t.contains("Persistent=true"), "{t}");
        }
    }
    let journal_timer = std::fs::read_to_string(
        units
            .iter()
            .find(|p| p.to_string_lossy().ends_with("journal.timer"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        journal_timer.contains("OnCalendar=*-*-01 03:00:00\nOnCalendar=Mon..Fri *-*-* 03:00:00\n"),
        "{journal_timer}"
    );
    let marshal_timer = std::fs::read_to_string(
        units
            .iter()
            .find(|p| p.to_string_lossy().ends_with("marshal.timer"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        marshal_timer.contains("RandomizedDelaySec=30s"),
        "{marshal_timer}"
    );

    // A second install changes nothing; uninstall removes everything, twice.
    let d = lk_install(
        &env,
        [
            "schedule",
            "install",
            "--backend",
            "systemd",
            "--mode",
            "timer",
        ],
    );
    assert!(
        d.stdout().contains("install: nothing to change"),
        "{}",
        d.stdout()
    );
    lk_install(&env, ["schedule", "uninstall"]);
    assert!(files_in(&unit_dir(&env)).is_empty());
    let d = lk_install(&env, ["schedule", "uninstall"]);
    assert!(d.stdout().contains("nothing to change"), "{}", d.stdout());
}

#[test]
fn dry_run_prints_files_and_commands_and_touches_nothing() {
    let env = Env::new();
    two_stores(&env);
    let d = lk_install(&env, ["schedule", "install", "--dry-run"]);
    let out = d.stdout();
    assert!(out.contains("# dry run"), "{out}");
    assert!(out.contains("ExecStart="), "{out}");
    assert!(out.contains("--user enable --now logkeeper-"), "{out}");
    assert!(!unit_dir(&env).exists());
    assert!(calls(&env).is_empty());
    assert!(
        !env.state().exists()
            || files_in(&env.state())
                .iter()
                .all(|p| !p.to_string_lossy().contains("schedule-"))
    );
}

#[test]
fn two_configs_get_distinct_names() {
    let a = Env::new();
    let b = Env::new();
    two_stores(&a);
    two_stores(&b);
    // b installs into a's unit dir.
    b.lk(["schedule", "install", "--backend", "systemd"])
        .envs(install_env(&a))
        .status(0);
    lk_install(&a, ["schedule", "install", "--backend", "systemd"]);
    assert_eq!(
        files_in(&unit_dir(&a)).len(),
        2,
        "one config overwrote the other's unit"
    );
}

#[test]
fn status_and_show_report_missing_files_and_a_vanished_binary() {
    let env = Env::new();
    two_stores(&env);
    // Install from a copy of the binary, then delete the copy.
    let bin = env.path("lk-copy");
    std::fs::copy(BIN, &bin).unwrap();
    set_mode(&bin, 0o755);
    let mut c = Command::new(&bin);
    c.args([
        "schedule",
        "install",
        "--backend",
        "systemd",
        "--mode",
        "timer",
    ])
    .env("LOGKEEPER_CONFIG", env.config())
    .env("LOGKEEPER_STATE_DIR", env.state());
    c.envs(install_env(&env));
    // A test thread forking at the moment the copy was written leaves its
    // child holding the write fd until it execs: ETXTBSY for a moment.
    let t0 = std::time::Instant::now();
    let st = loop {
        match c.status() {
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && t0.elapsed() < std::time::Duration::from_secs(10) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    assert!(st.success());
    let st = env.lk(["status", "--json"]).output().json();
    let reg = &st["schedule_install"];
    assert_eq!(reg["backend"], "systemd");
    assert_eq!(reg["mode"], "timer");
    assert_eq!(reg["binary_exists"], true);
    assert_eq!(reg["problems"].as_array().unwrap().len(), 0, "{reg}");

    std::fs::remove_file(&bin).unwrap();
    let timer = files_in(&unit_dir(&env))
        .into_iter()
        .find(|p| p.extension().unwrap() == "timer")
        .unwrap();
    std::fs::remove_file(&timer).unwrap();
    let st = env.lk(["status", "--json"]).output().json();
    let reg = &st["schedule_install"];
    assert_eq!(reg["binary_exists"], false);
    let problems = reg["problems"].to_string();
    assert!(problems.contains("no longer exists"), "{problems}");
    assert!(
        problems.contains(&format!("{} is missing", timer.display())),
        "{problems}"
    );
    env.lk(["status"]).output().stdout_has("(MISSING)");
    env.lk(["schedule", "show"])
        .status(1)
        .stdout_has("no longer exists");
}

/// The next `n` elapse times `systemd-analyze calendar` gives for `spec`
/// after `base`, in timezone `tz`.
fn systemd_elapses(spec: &str, base: DateTime<Utc>, n: usize, tz: &str) -> Vec<DateTime<Utc>> {
    let out = Command::new("systemd-analyze")
        .args(["calendar", &format!("--iterations={n}")])
        .arg(format!("--base-time=@{}", base.timestamp()))
        .arg(spec)
        .env("TZ", tz)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze calendar {spec:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Outside UTC each elapse has an "(in UTC):" line; in UTC only the
    // "Next elapse:" / "Iter. #N:" lines.
    let utc: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("(in UTC): "))
        .collect();
    let lines: Vec<&str> = if utc.is_empty() {
        text.lines()
            .filter_map(|l| l.split_once(": ").map(|(k, v)| (k.trim(), v)))
            .filter(|(k, _)| *k == "Next elapse" || k.starts_with("Iter. #"))
            .map(|(_, v)| v)
            .collect()
    } else {
        utc
    };
    lines
        .into_iter()
        .map(|t| {
            let t = t.trim_end_matches(" UTC");
            // "Mon 2026-11-23 15:00:00"
            let naive = NaiveDateTime::parse_from_str(&t[4..], "%Y-%m-%d %H:%M:%S").unwrap();
            Utc.from_utc_datetime(&naive)
        })
        .collect()
}

/// logkeeper's own next `n` fire times after `base` (in the process's
/// local zone, which the caller pins with TZ).
fn own_fires(expr: &str, base: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let s = Schedule::parse(expr).unwrap();
    let mut t = base.with_timezone(&Local);
    (0..n)
        .map(|_| {
            t = s.next_after(&t).unwrap();
            t.with_timezone(&Utc)
        })
        .collect()
}

const TABLE: &[&str] = &[
    "*/15 * * * *",
    "*/7 * * * *",
    "5/20 * * * *",
    "0 * * * *",
    "30 2 * * *",
    "0 9-17 * * mon-fri",
    "*/30 9-17 * * 1-5",
    "0 0 * * sun",
    "0 0 * * 7",
    "15 14 1 * *",
    "0 22 * * 1,3,5",
    "0 0 1 jan,jul *",
    "0 12 1-7 * *",
    "0 6 1,15 * mon",
    "0 0 13 * fri",
    "0 4 */2 * *",
    // A day field starting with '*' counts as unrestricted: cron ANDs.
    "0 0 */2 * mon",
    "0 3 * * */2",
    "45 23 L * *",
    "@daily",
    "@hourly",
    "@weekly",
    "@monthly",
    "@yearly",
    "0 0 29 2 *",
    "0 5 * feb-apr sat,sun",
];

fn check_table(tz: &str, bases: &[&str]) {
    // SAFETY: this test binary's tests do not read the environment
    // concurrently with this write except through chrono's Local, which
    // re-reads TZ; the calendar tests below run serially under a mutex.
    unsafe { std::env::set_var("TZ", tz) };
    let mut checked = 0;
    for base in bases {
        let base = DateTime::parse_from_rfc3339(base)
            .unwrap()
            .with_timezone(&Utc);
        for expr in TABLE {
            let fields = match CronFields::from_expr(expr) {
                Ok(f) => f,
                Err(m) => {
                    assert!(m.contains("--mode daemon"), "{expr}: {m}");
                    continue;
                }
            };
            let mut union: Vec<DateTime<Utc>> = fields
                .to_systemd()
                .iter()
                .flat_map(|spec| systemd_elapses(spec, base, 20, tz))
                .collect();
            union.sort();
            union.dedup();
            union.truncate(20);
            let own = own_fires(expr, base, 20);
            assert_eq!(
                union,
                own,
                "{expr} -> {:?} in {tz} from {base}",
                fields.to_systemd()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 15 * bases.len(),
        "only {checked} expressions checked"
    );
}

static TZ_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn on_calendar_fires_exactly_when_the_cron_expression_does_utc() {
    need("systemd-analyze", "systemd");
    let _g = TZ_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    check_table("UTC", &["2026-11-23T11:07:00Z", "2027-02-27T23:59:30Z"]);
}

#[test]
fn on_calendar_fires_exactly_when_the_cron_expression_does_across_dst() {
    need("systemd-analyze", "systemd");
    let _g = TZ_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // Summer and winter time, away from the changes: exact.
    check_table(
        "Europe/Berlin",
        &["2026-05-02T21:58:00Z", "2026-11-27T22:50:00Z"],
    );
    // The change nights: where a fire time falls on a skipped or repeated
    // local time, systemd has its own rules; install must say so, and
    // everywhere else the times must still agree.
    let spring = DateTime::parse_from_rfc3339("2026-03-28T22:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let fall = DateTime::parse_from_rfc3339("2026-10-24T21:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let (mut exact, mut differ) = (0, 0);
    for base in [spring, fall] {
        for expr in TABLE {
            let Ok(fields) = CronFields::from_expr(expr) else {
                continue;
            };
            let conflict = fields.dst_conflict(&Local, base.with_timezone(&Local).date_naive(), 3);
            let mut union: Vec<DateTime<Utc>> = fields
                .to_systemd()
                .iter()
                .flat_map(|spec| systemd_elapses(spec, base, 20, "Europe/Berlin"))
                .collect();
            union.sort();
            union.dedup();
            union.truncate(20);
            let own = own_fires(expr, base, 20);
            if conflict.is_none() {
                assert_eq!(union, own, "{expr} in Europe/Berlin from {base}");
                exact += 1;
            } else if union != own {
                differ += 1;
            }
        }
    }
    eprintln!("DST nights: {exact} exact, {differ} differing (reported by install)");
    assert!(exact >= 15 && differ >= 1, "exact {exact}, differ {differ}");
    // And `schedule install --mode timer` reports it rather than differ silently.
    let env = Env::new();
    env.lk(["store", "add", "x", "--log"])
        .arg(env.path("x.jsonl"))
        .args(["--schedule", "30 2 * * *"])
        .status(0);
    let r = env
        .lk([
            "schedule",
            "install",
            "--backend",
            "systemd",
            "--mode",
            "timer",
            "--dry-run",
        ])
        .envs(install_env(&env));
    r.env("TZ", "Europe/Berlin")
        .status(0)
        .stdout_has("DST change skips or repeats");
}

#[test]
fn timer_mode_refuses_what_it_cannot_express_and_suggests_daemon_mode() {
    let env = Env::new();
    env.lk(["store", "add", "x", "--log"])
        .arg(env.path("x.jsonl"))
        .args(["--schedule", "0 0 L * *"])
        .status(0);
    let r = env
        .lk([
            "schedule",
            "install",
            "--backend",
            "systemd",
            "--mode",
            "timer",
            "--dry-run",
        ])
        .envs(install_env(&env));
    r.status(2).stderr_has("--mode daemon");
    // Daemon mode takes it.
    lk_install(
        &env,
        ["schedule", "install", "--backend", "systemd", "--dry-run"],
    );
    // launchd: a product too large to enumerate is refused, not approximated.
    let env = Env::new();
    env.lk(["store", "add", "x", "--log"])
        .arg(env.path("x.jsonl"))
        .args(["--schedule", "*/2 */2 * * mon-fri"])
        .status(0);
    let r = env
        .lk([
            "schedule",
            "install",
            "--backend",
            "launchd",
            "--mode",
            "timer",
        ])
        .envs(install_env(&env));
    r.status(2).stderr_has("--mode daemon");
}

#[test]
fn launchd_plists_parse_with_the_expected_calendar_entries() {
    let env = Env::new();
    two_stores(&env);
    lk_install(
        &env,
        [
            "schedule",
            "install",
            "--backend",
            "launchd",
            "--mode",
            "timer",
        ],
    );
    let agents = files_in(&env.path("home/Library/LaunchAgents"));
    assert_eq!(agents.len(), 2, "{agents:?}");
    for p in &agents {
        let v = plist::Value::from_file(p).unwrap();
        let d = v.as_dictionary().unwrap();
        let label = d["Label"].as_string().unwrap();
        assert_eq!(p.file_stem().unwrap().to_string_lossy(), label);
        let args: Vec<&str> = d["ProgramArguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_string().unwrap())
            .collect();
        assert_eq!(
            args[0],
            std::fs::canonicalize(BIN).unwrap().to_string_lossy()
        );
        assert!(args.ends_with(&["--trigger", "timer"]), "{args:?}");
        let env_vars = d["EnvironmentVariables"].as_dictionary().unwrap();
        assert_eq!(
            env_vars["LOGKEEPER_CONFIG"].as_string().unwrap(),
            env.config().to_string_lossy()
        );
        let entries: Vec<Vec<(String, u64)>> = d["StartCalendarInterval"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e.as_dictionary()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_unsigned_integer().unwrap()))
                    .collect()
            })
            .collect();
        let has = |want: &[(&str, u64)]| {
            entries.iter().any(|e| {
                e.len() == want.len()
                    && want
                        .iter()
                        .all(|(k, v)| e.iter().any(|(k2, v2)| k2 == k && v2 == v))
            })
        };
        if label.ends_with(".journal") {
            // "0 3 1 * mon-fri": the 1st OR Monday..Friday.
            assert_eq!(entries.len(), 6, "{entries:?}");
            assert!(has(&[("Day", 1), ("Hour", 3), ("Minute", 0)]));
            for wd in 1..=5 {
                assert!(
                    has(&[("Weekday", wd), ("Hour", 3), ("Minute", 0)]),
                    "{entries:?}"
                );
            }
        } else {
            // "*/15 9-17 * * mon-fri": 5 days x 9 hours x 4 minutes.
            assert_eq!(entries.len(), 180);
            assert!(has(&[("Weekday", 5), ("Hour", 17), ("Minute", 45)]));
            assert!(!has(&[("Weekday", 6), ("Hour", 17), ("Minute", 45)]));
        }
    }
    let c = calls(&env);
    assert!(c.contains("bootstrap gui/"), "{c}");
    lk_install(
        &env,
        [
            "schedule",
            "install",
            "--backend",
            "launchd",
            "--mode",
            "daemon",
        ],
    );
    let agents = files_in(&env.path("home/Library/LaunchAgents"));
    assert_eq!(agents.len(), 1, "{agents:?}");
    let v = plist::Value::from_file(&agents[0]).unwrap();
    assert_eq!(
        v.as_dictionary().unwrap()["RunAtLoad"].as_boolean(),
        Some(true)
    );
    lk_install(&env, ["schedule", "uninstall"]);
    assert!(files_in(&env.path("home/Library/LaunchAgents")).is_empty());
}

/// The crontab of user `nobody`, through the real `crontab` command.
fn crontab_of_nobody() -> Option<Vec<u8>> {
    let out = Command::new("crontab")
        .args(["-u", "nobody", "-l"])
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

fn set_crontab_of_nobody(bytes: Option<&[u8]>) {
    use std::io::Write;
    match bytes {
        None => {
            let _ = Command::new("crontab")
                .args(["-u", "nobody", "-r"])
                .output();
        }
        Some(b) => {
            let mut c = Command::new("crontab")
                .args(["-u", "nobody", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(b).unwrap();
            assert!(c.wait().unwrap().success());
        }
    }
}

#[test]
fn cron_backend_keeps_other_lines_byte_for_byte_and_is_idempotent() {
    need("crontab", "cron");
    // SAFETY-free isolation: a real crontab, but of user `nobody` (as root),
    // restored byte for byte afterwards.
    let saved = crontab_of_nobody();
    struct Restore(Option<Vec<u8>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            set_crontab_of_nobody(self.0.as_deref());
        }
    }
    let _restore = Restore(saved);
    let unrelated: &[u8] = b"MAILTO=\"\"\n# my own jobs   (tabs\tand  spaces)\n0 1 * * *\t/usr/bin/true  # nightly\n\n@reboot echo 'hi %% there'\n";
    set_crontab_of_nobody(Some(unrelated));
    let original = crontab_of_nobody().unwrap();

    let a = Env::new();
    let b = Env::new();
    two_stores(&a);
    two_stores(&b);
    let cron = |env: &Env, args: &[&str]| {
        env.lk(args)
            .env("LOGKEEPER_CRONTAB", "crontab -u nobody")
            .status(0)
    };
    cron(&a, &["schedule", "install", "--backend", "cron"]);
    let after_a = crontab_of_nobody().unwrap();
    assert!(
        after_a.starts_with(&original),
        "unrelated lines changed:\n{}",
        String::from_utf8_lossy(&after_a)
    );
    let text = String::from_utf8_lossy(&after_a).into_owned();
    let block: Vec<&str> = text[String::from_utf8_lossy(&original).len()..]
        .lines()
        .collect();
    assert_eq!(block.len(), 4, "{text}");
    assert!(block[0].starts_with("# BEGIN logkeeper "), "{text}");
    assert!(
        block[1].starts_with("*/15 9-17 * * mon-fri LOGKEEPER_CONFIG="),
        "{text}"
    );
    assert!(
        block[1].contains("sync now marshal --trigger cron"),
        "{text}"
    );
    assert!(block[2].starts_with("0 3 1 * mon-fri "), "{text}");
    assert!(block[3].starts_with("# END logkeeper "), "{text}");

    // A second install changes nothing.
    cron(&a, &["schedule", "install", "--backend", "cron"]).stdout_has("crontab: unchanged");
    assert_eq!(crontab_of_nobody().unwrap(), after_a);
    // Another config gets its own block; status sees a's.
    cron(&b, &["schedule", "install", "--backend", "cron"]);
    let both = crontab_of_nobody().unwrap();
    assert!(both.starts_with(&after_a));
    let st = a
        .lk(["status", "--json"])
        .env("LOGKEEPER_CRONTAB", "crontab -u nobody")
        .output()
        .json();
    assert_eq!(st["schedule_install"]["backend"], "cron");
    assert_eq!(st["schedule_install"]["crontab_block"], true);

    // Uninstalling a leaves b's block and the unrelated lines.
    cron(&a, &["schedule", "uninstall"]);
    let left = crontab_of_nobody().unwrap();
    assert!(left.starts_with(&original));
    assert_eq!(&left[original.len()..], &both[after_a.len()..]);
    cron(&a, &["schedule", "uninstall", "--backend", "cron"]).stdout_has("crontab: unchanged");
    cron(&b, &["schedule", "uninstall", "--backend", "cron"]);
    assert_eq!(
        crontab_of_nobody().unwrap(),
        original,
        "uninstall did not restore the crontab byte for byte"
    );
}

#[test]
fn cron_dry_run_without_crontab_prints_the_plan_and_says_cron_is_missing() {
    let env = Env::new();
    two_stores(&env);
    let missing = env.path("no-cron/crontab");
    let d = env
        .lk(["schedule", "install", "--backend", "cron", "--dry-run"])
        .env("LOGKEEPER_CRONTAB", &missing)
        .status(0);
    let out = d.stdout();
    assert!(out.contains("# BEGIN logkeeper"), "{out}");
    assert!(out.contains("sync now marshal --trigger cron"), "{out}");
    assert!(out.contains("cron is not installed"), "{out}");
    // The real install fails, saying the same.
    env.lk(["schedule", "install", "--backend", "cron"])
        .env("LOGKEEPER_CRONTAB", &missing)
        .status(1)
        .stderr_has("cron is not installed");
}

#[test]
fn a_crontab_that_cannot_run_is_a_failure_not_a_usage_error() {
    let env = Env::new();
    env.lk(["store", "add", "x", "--log"])
        .arg(env.path("x.jsonl"))
        .args(["--schedule", "*/30 * * * *"])
        .status(0);
    let missing = env.path("no-such-crontab");
    env.lk(["schedule", "install", "--backend", "cron"])
        .envs(install_env(&env))
        .env("LOGKEEPER_CRONTAB", &missing)
        .status(1)
        .stderr_has("cannot run")
        .stderr_has("no-such-crontab");
}

/// A stand-in systemctl that fails (exit 1, a message on stderr).
fn failing_tool(env: &Env) -> String {
    let script = env.path("fail.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"Failed to connect to bus: No medium found\" >&2\nexit 1\n",
    )
    .unwrap();
    set_mode(&script, 0o755);
    script.to_string_lossy().into_owned()
}

// Issue 16 C.16: uninstall said "ran systemctl --user disable ..." and exited
// 0 when systemctl failed or did not exist.
#[test]
fn uninstall_reports_a_failed_or_missing_systemctl() {
    let env = Env::new();
    two_stores(&env);
    lk_install(&env, ["schedule", "install", "--backend", "systemd"]);
    assert_eq!(files_in(&unit_dir(&env)).len(), 1);
    let mut vars = install_env(&env);
    vars.retain(|(k, _)| *k != "LOGKEEPER_SYSTEMCTL");
    vars.push(("LOGKEEPER_SYSTEMCTL", failing_tool(&env)));
    let d = env
        .lk(["schedule", "uninstall", "--backend", "systemd"])
        .envs(vars.clone())
        .status(1);
    let (out, err) = (d.stdout(), d.stderr());
    assert!(!out.contains("ran "), "{out}");
    assert!(
        err.contains("disable") && err.contains("No medium found"),
        "{err}"
    );
    assert!(err.contains("may still be active"), "{err}");
    // Absent altogether: the same, with the reason.
    lk_install(&env, ["schedule", "install", "--backend", "systemd"]);
    vars.retain(|(k, _)| *k != "LOGKEEPER_SYSTEMCTL");
    vars.push((
        "LOGKEEPER_SYSTEMCTL",
        env.path("no-such-systemctl").display().to_string(),
    ));
    let d = env
        .lk(["schedule", "uninstall", "--backend", "systemd"])
        .envs(vars)
        .status(1);
    assert!(
        d.stderr().contains("cannot run") && d.stderr().contains("nothing was removed"),
        "{}",
        d.stderr()
    );
}

// Issue 16 C.16: a failed install left its unit file behind.
#[test]
fn failed_install_leaves_no_unit_file_behind() {
    let env = Env::new();
    two_stores(&env);
    let mut vars = install_env(&env);
    vars.retain(|(k, _)| *k != "LOGKEEPER_SYSTEMCTL");
    vars.push(("LOGKEEPER_SYSTEMCTL", failing_tool(&env)));
    for mode in ["daemon", "timer"] {
        env.lk([
            "schedule",
            "install",
            "--backend",
            "systemd",
            "--mode",
            mode,
        ])
        .envs(vars.clone())
        .status(1)
        .stderr_has("No medium found");
        assert_eq!(files_in(&unit_dir(&env)), Vec::<PathBuf>::new(), "{mode}");
        env.lk(["schedule", "show"])
            .status(0)
            .stdout_has("no schedule installed");
    }
}

/// The registration files of this sandbox's state dir (`schedule-*.json`).
fn markers(env: &Env) -> Vec<PathBuf> {
    files_in(&env.state())
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("schedule-") && n.ends_with(".json")
        })
        .collect()
}

/// `install_env` with `var` replaced by `tool`.
fn env_with(env: &Env, var: &'static str, tool: String) -> Vec<(&'static str, String)> {
    let mut vars = install_env(env);
    vars.retain(|(k, _)| *k != var);
    vars.push((var, tool));
    vars
}

// A failed `systemctl disable` left an active timer that logkeeper had
// forgotten: the marker and the unit files were removed anyway, so a second
// uninstall had nothing to disable.
#[test]
fn uninstall_whose_disable_failed_keeps_the_registration_to_retry() {
    let env = Env::new();
    two_stores(&env);
    lk_install(
        &env,
        [
            "schedule",
            "install",
            "--backend",
            "systemd",
            "--mode",
            "timer",
        ],
    );
    let units = files_in(&unit_dir(&env));
    assert_eq!(units.len(), 5, "{units:?}");
    assert_eq!(markers(&env).len(), 1);
    let failing = env_with(&env, "LOGKEEPER_SYSTEMCTL", failing_tool(&env));
    let d = env.lk(["schedule", "uninstall"]).envs(failing).status(1);
    let err = d.stderr();
    // What failed, that nothing was removed, and what to do.
    assert!(
        err.contains("disable --now") && err.contains("No medium found"),
        "{err}"
    );
    assert!(err.contains("nothing was removed"), "{err}");
    assert!(err.contains("run it again"), "{err}");
    assert!(!d.stdout().contains("removed "), "{}", d.stdout());
    assert_eq!(files_in(&unit_dir(&env)), units, "unit files kept");
    assert_eq!(markers(&env).len(), 1, "the registration is kept");
    env.lk(["schedule", "show"])
        .envs(install_env(&env))
        .status(0)
        .stdout_has("schedule: systemd (timer mode)");
    // The retry disables the same units, then removes everything.
    std::fs::remove_file(env.path("calls.log")).ok();
    env.lk(["schedule", "uninstall"])
        .envs(install_env(&env))
        .status(0);
    let retried = calls(&env);
    assert!(
        retried.contains("--user disable --now") && retried.contains(".timer"),
        "{retried}"
    );
    assert_eq!(files_in(&unit_dir(&env)), Vec::<PathBuf>::new());
    assert_eq!(markers(&env), Vec::<PathBuf>::new());
}

/// A stand-in `crontab` keeping the table in `crontab.txt`; with
/// `FAIL_CRONTAB_EDIT` set, `crontab -` and `crontab -r` fail.
fn file_crontab(env: &Env) -> String {
    let script = env.path("crontab.sh");
    let table = env.path("crontab.txt");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nt={}\nif [ \"$1\" = -l ]; then [ -f \"$t\" ] || {{ echo 'no crontab for you' >&2; exit 1; }}; exec cat \"$t\"; fi\nif [ -n \"$FAIL_CRONTAB_EDIT\" ]; then echo 'crontab: cannot write: Permission denied' >&2; exit 1; fi\nif [ \"$1\" = -r ]; then exec rm \"$t\"; fi\nexec cat > \"$t\"\n",
            table.display()
        ),
    )
    .unwrap();
    set_mode(&script, 0o755);
    script.to_string_lossy().into_owned()
}

#[test]
fn uninstall_whose_crontab_edit_failed_keeps_the_block_and_says_what_to_do() {
    let env = Env::new();
    two_stores(&env);
    let vars = env_with(&env, "LOGKEEPER_CRONTAB", file_crontab(&env));
    env.lk(["schedule", "install", "--backend", "cron"])
        .envs(vars.clone())
        .status(0);
    let block = std::fs::read_to_string(env.path("crontab.txt")).unwrap();
    assert!(block.contains("# BEGIN logkeeper"), "{block}");
    let d = env
        .lk(["schedule", "uninstall"])
        .envs(vars.clone())
        .env("FAIL_CRONTAB_EDIT", "1")
        .status(1);
    let err = d.stderr();
    assert!(err.contains("Permission denied"), "{err}");
    assert!(err.contains("nothing was removed"), "{err}");
    assert!(err.contains("run it again"), "{err}");
    assert_eq!(
        std::fs::read_to_string(env.path("crontab.txt")).unwrap(),
        block
    );
    assert_eq!(markers(&env).len(), 1, "the registration is kept");
    env.lk(["schedule", "uninstall"]).envs(vars).status(0);
    assert!(
        !env.path("crontab.txt").exists(),
        "a crontab of only our block goes"
    );
    assert_eq!(markers(&env), Vec::<PathBuf>::new());
}

/// A stand-in `launchctl` whose `bootout` exits `code` with launchctl's
/// message for it (3: the agent is not loaded; others: a real failure).
fn launchctl_bootout_exiting(env: &Env, code: i32) -> String {
    let script = env.path(&format!("launchctl-{code}.sh"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nif [ \"$1\" = bootout ]; then echo \"Boot-out failed: {code}: error\" >&2; exit {code}; fi\n",
            env.path("calls.log").display()
        ),
    )
    .unwrap();
    set_mode(&script, 0o755);
    script.to_string_lossy().into_owned()
}

// Uninstall's bootout must succeed (or the registration is kept to retry),
// but an agent that is not loaded is already booted out: launchctl says so
// with exit 3 (ESRCH), and the uninstall goes on.
#[test]
fn uninstall_of_a_launchd_agent_that_is_not_loaded_goes_on_and_a_failed_bootout_keeps_it() {
    let env = Env::new();
    two_stores(&env);
    lk_install(
        &env,
        [
            "schedule",
            "install",
            "--backend",
            "launchd",
            "--mode",
            "timer",
        ],
    );
    let agents = files_in(&env.path("home/Library/LaunchAgents"));
    assert!(!agents.is_empty());
    let failing = env_with(
        &env,
        "LOGKEEPER_LAUNCHCTL",
        launchctl_bootout_exiting(&env, 5),
    );
    let d = env.lk(["schedule", "uninstall"]).envs(failing).status(1);
    assert!(d.stderr().contains("nothing was removed"), "{}", d.stderr());
    assert_eq!(files_in(&env.path("home/Library/LaunchAgents")), agents);
    assert_eq!(markers(&env).len(), 1, "the registration is kept");
    let not_loaded = env_with(
        &env,
        "LOGKEEPER_LAUNCHCTL",
        launchctl_bootout_exiting(&env, 3),
    );
    env.lk(["schedule", "uninstall"]).envs(not_loaded).status(0);
    assert_eq!(
        files_in(&env.path("home/Library/LaunchAgents")),
        Vec::<PathBuf>::new()
    );
    assert_eq!(markers(&env), Vec::<PathBuf>::new());
}
