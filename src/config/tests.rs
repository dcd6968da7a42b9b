//! Config tests: error messages, path resolution, edits, durations.

use super::*;

/// The error of the first broken store (B.8: a broken store does not fail
/// the whole file; naming it does).
fn store_error(text: &str) -> String {
    let c = Config::parse(Path::new("/c.toml"), text).unwrap();
    assert!(c.stores.is_empty(), "{:?}", c.stores);
    c.store(&c.broken[0].name).unwrap_err().to_string()
}

#[test]
fn errors_name_file_line_and_field() {
    let e =
        store_error("# mine\n[[store]]\nname = \"a\"\nlog = \"/tmp/a.jsonl\"\nkey = [\"item\"]\n");
    assert!(e.starts_with("/c.toml:5"), "{e}");
    assert!(e.contains("`key`") && e.contains("JSON pointer"), "{e}");

    let e = store_error("[[store]]\nname = \"a\"\nlog = 3\n");
    assert!(e.starts_with("/c.toml:3"), "{e}");

    let e = store_error("[[store]]\nname = \"a\"\nlog = \"x\"\nsched = \"\"\n");
    assert!(e.starts_with("/c.toml:4") && e.contains("sched"), "{e}");

    // An error outside the store tables still refuses the file.
    let e = Config::parse(
        Path::new("/c.toml"),
        "bogus = 1\n[[store]]\nname = \"a\"\nlog = \"x\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("/c.toml:1") && e.contains("bogus"), "{e}");
}

// Issue 16 B.8: each store is checked on its own; the valid ones load.
#[test]
fn a_broken_store_is_set_apart_and_the_others_load() {
    let text = "[[store]]\nname = \"ok\"\nlog = \"/a\"\n\n[[store]]\nname = \"bad\"\nlog = \"/b\"\nkeep_rotatd = 1\n\n[[store]]\nname = \"ok\"\nlog = \"/c\"\n";
    let c = Config::parse(Path::new("/c.toml"), text).unwrap();
    assert_eq!(c.stores.len(), 1);
    let names: Vec<(&str, Option<usize>)> =
        c.broken.iter().map(|b| (b.name.as_str(), b.line)).collect();
    assert_eq!(names, [("bad", Some(8)), ("ok", Some(11))]);
    assert!(
        c.store("bad")
            .unwrap_err()
            .to_string()
            .contains("keep_rotatd")
    );
    assert_eq!(c.select(&[], true).unwrap().len(), 1);
    // Declared twice: the first, valid, store is the one of that name.
    assert_eq!(c.store("ok").unwrap().log(), Some(Path::new("/a")));
}

#[test]
fn relative_logs_resolve_against_the_config_folder() {
    let c = Config::parse(
        Path::new("/etc/lk/c.toml"),
        "[[store]]\nname = \"a\"\nlog = \"logs/a.jsonl\"\n",
    )
    .unwrap();
    assert_eq!(c.stores[0].log(), Some(Path::new("/etc/lk/logs/a.jsonl")));
    assert_eq!(
        c.stores[0].log_policy().map(|p| p.keep_rotated),
        Some(DEFAULT_KEEP_ROTATED)
    );
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

/// A setting of the other kind is refused when the config is loaded (not
/// at run time), and the error names the file, the line, the store and the
/// setting.
#[test]
fn a_setting_of_the_wrong_kind_is_refused_at_load_naming_store_setting_and_file() {
    let cases = [
        (
            "log = \"/l/a.jsonl\"",
            "keep_files = 3",
            "keep_files",
            "only applies to a segmented store",
        ),
        (
            "log = \"/l/a.jsonl\"",
            "min_dirty_ratio = 0.2",
            "min_dirty_ratio",
            "only applies to a segmented store",
        ),
        (
            "log = \"/l/a.jsonl\"",
            "seq = \"/seq\"",
            "seq",
            "only applies to a segmented store",
        ),
        (
            "segments = \"/s/e-{seq}.jsonl\"",
            "keep_rotated = 2",
            "keep_rotated",
            "does not apply to a segmented store",
        ),
        (
            "segments = \"/s/e-{seq}.jsonl\"",
            "min_growth = 0.5",
            "min_growth",
            "does not apply to a segmented store",
        ),
        (
            "segments = \"/s/e-{seq}.jsonl\"",
            "rotate_bytes = 10",
            "rotate_bytes",
            "does not apply to a segmented store",
        ),
    ];
    for (kind, setting, field, why) in cases {
        let text = format!("[[store]]\nname = \"orders\"\n{kind}\n{setting}\n");
        let c = Config::parse(Path::new("/etc/lk/c.toml"), &text).unwrap();
        assert!(c.stores.is_empty(), "{text}");
        let e = c.store("orders").unwrap_err();
        assert!(
            matches!(e, Error::Config(crate::error::ConfigError::Invalid { .. })),
            "{e:?}"
        );
        let e = e.to_string();
        assert!(e.starts_with("/etc/lk/c.toml:4"), "file and line: {e}");
        assert!(e.contains(&format!("`{field}`")), "setting: {e}");
        assert!(e.contains("store \"orders\""), "store: {e}");
        assert!(e.contains(why), "{e}");
    }
}

#[test]
fn each_kind_carries_its_own_settings_and_path() {
    let text = "[[store]]\nname = \"a\"\nlog = \"/l/a.jsonl\"\nmin_growth = 0.5\nrotate_bytes = 9\n\n[[store]]\nname = \"f\"\nsegments = \"/s/e-{seq}.jsonl\"\nkeep_files = 4\n";
    let c = Config::parse(Path::new("/c.toml"), text).unwrap();
    let (a, f) = (&c.stores[0], &c.stores[1]);
    let p = a.log_policy().unwrap();
    assert_eq!((p.min_growth, p.rotate_bytes), (0.5, Some(9)));
    assert!(a.segments().is_none());
    assert_eq!(a.path(), Path::new("/l/a.jsonl"));
    assert_eq!(f.segments().unwrap().keep_files, Some(4));
    assert!(f.log().is_none() && f.log_policy().is_none());
    // The pattern is what the store is known by, never opened as a log.
    assert_eq!(f.path(), Path::new("/s/e-{seq}.jsonl"));
}
