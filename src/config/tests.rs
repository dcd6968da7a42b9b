//! Config tests: error messages, path resolution, edits, durations.

use super::*;

#[test]
fn errors_name_file_line_and_field() {
    let text = "# mine\n[[store]]\nname = \"a\"\nlog = \"/tmp/a.jsonl\"\nkey = [\"item\"]\n";
    let e = Config::parse(Path::new("/c.toml"), text)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/c.toml:5"), "{e}");
    assert!(e.contains("`key`") && e.contains("JSON pointer"), "{e}");

    let e = Config::parse(Path::new("/c.toml"), "[[store]]\nname = \"a\"\nlog = 3\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/c.toml:3"), "{e}");

    let e = Config::parse(
        Path::new("/c.toml"),
        "[[store]]\nname = \"a\"\nlog = \"x\"\nsched = \"\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("sched"), "{e}");
}

#[test]
fn relative_logs_resolve_against_the_config_folder() {
    let c = Config::parse(
        Path::new("/etc/lk/c.toml"),
        "[[store]]\nname = \"a\"\nlog = \"logs/a.jsonl\"\n",
    )
    .unwrap();
    assert_eq!(c.stores[0].log, Path::new("/etc/lk/logs/a.jsonl"));
    assert_eq!(c.stores[0].keep_rotated, DEFAULT_KEEP_ROTATED);
}

#[test]
fn add_and_remove_keep_comments() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.toml");
    std::fs::write(
        &p,
        "# my stores\n\n[[store]] # first\nname = \"a\" # keep me\nlog = \"/tmp/a\"\n",
    )
    .unwrap();
    add_store(
        &p,
        &NewStore {
            name: "b".into(),
            log: "/tmp/b".into(),
            key: vec!["/id".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let t = std::fs::read_to_string(&p).unwrap();
    assert!(
        t.contains("# my stores") && t.contains("# keep me") && t.contains("name = \"b\""),
        "{t}"
    );
    remove_store(&p, "a").unwrap();
    let t = std::fs::read_to_string(&p).unwrap();
    assert!(
        t.contains("# my stores") && !t.contains("# keep me") && t.contains("\"b\""),
        "{t}"
    );
    assert!(
        add_store(
            &p,
            &NewStore {
                name: "b".into(),
                log: "/tmp/c".into(),
                ..Default::default()
            }
        )
        .is_err()
    );
}

#[test]
fn durations_parse() {
    assert_eq!(
        parse_duration("7d").unwrap(),
        Duration::from_secs(7 * 86400)
    );
    assert!(parse_duration("7 fortnights").is_err());
    // Would overflow u64 seconds: an error, not a panic or a wrap.
    assert!(parse_duration("18446744073709551615w").is_err());
    assert!(parse_duration("30500000000000000d").is_err());
}
