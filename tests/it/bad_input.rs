//! G3 bad input is kept, not dropped: one test per kind of damage, each
//! checking where every byte went. The "Bad input" table of docs/runs.md documents
//! the same behaviour.

use crate::common::*;
use logkeeper::testing::QuarantineEntry as Entry;
use std::io::Write;

/// Sync a keyed store (`/t` + `/id`, op `/op`, delete `DEL`) over `log`
/// bytes; return the new log, the quarantine entries and the run record.
fn compact(bytes: &[u8]) -> (Vec<u8>, Vec<Entry>, serde_json::Value) {
    let env = Env::new();
    let log = env.path("events.jsonl");
    std::fs::write(&log, bytes).unwrap();
    env.lk(["store", "add", "m", "--log"])
        .arg(&log)
        .args([
            "--key", "/t", "--key", "/id", "--op", "/op", "--delete", "DEL",
        ])
        .status(0);
    let rec = env
        .lk(["sync", "now", "--force", "--json"])
        .status(0)
        .json()["runs"][0]
        .clone();
    let q = env.path("events.jsonl.quarantine");
    let entries = if q.exists() {
        logkeeper::testing::read_quarantine(&q).unwrap()
    } else {
        Vec::new()
    };
    (std::fs::read(&log).unwrap(), entries, rec)
}

const A1: &str = r#"{"t":"a","id":1,"v":1}"#;
const A1B: &str = r#"{"t":"a","id":1,"v":2}"#;

fn lines(ls: &[&[u8]]) -> Vec<u8> {
    ls.iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect()
}

#[test]
fn invalid_json_is_quarantined_with_its_offset() {
    let input = lines(&[A1.as_bytes(), b"{\"t\":\"a\",", A1B.as_bytes()]);
    let (out, q, rec) = compact(&input);
    assert_eq!(out, lines(&[A1B.as_bytes()]));
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].bytes(), b"{\"t\":\"a\",");
    assert_eq!(q[0].offset, A1.len() as u64 + 1);
    assert_eq!(rec["stats"]["quarantined"], 1);
}

#[test]
fn torn_line_glued_to_an_event_keeps_the_event_and_quarantines_the_fragment() {
    let glued = format!("{{\"t\":\"a\",\"id\"{A1B}");
    let input = lines(&[A1.as_bytes(), glued.as_bytes()]);
    let (out, q, rec) = compact(&input);
    assert_eq!(out, lines(&[A1B.as_bytes()]));
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].bytes(), b"{\"t\":\"a\",\"id\"");
    assert_eq!(rec["stats"]["salvaged"], 1);
}

#[test]
fn invalid_utf8_is_quarantined_byte_exact_as_base64() {
    let bad: &[u8] = b"{\"t\":\"a\",\"id\":2,\"v\":\"\xff\xfe\"}";
    let (out, q, _) = compact(&lines(&[A1.as_bytes(), bad]));
    assert_eq!(out, lines(&[A1.as_bytes()]));
    assert_eq!(q.len(), 1);
    assert!(q[0].line.is_none() && q[0].line_base64.is_some());
    assert_eq!(q[0].bytes(), bad);
}

#[test]
fn nul_bytes_are_quarantined() {
    let bad: &[u8] = b"{\"t\":\"a\",\"id\":2,\"v\":\"\0\"}";
    let (out, q, _) = compact(&lines(&[bad, b"\0\0\0", A1.as_bytes()]));
    assert_eq!(out, lines(&[A1.as_bytes()]));
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].bytes(), bad);
    assert_eq!(q[1].bytes(), b"\0\0\0");
}

#[test]
fn crlf_lines_are_valid_and_kept_byte_for_byte() {
    let a = format!("{A1}\r");
    let b = format!("{A1B}\r");
    let c = "{\"t\":\"b\",\"id\":1}\r";
    let (out, q, _) = compact(&lines(&[a.as_bytes(), c.as_bytes(), b.as_bytes()]));
    assert!(q.is_empty());
    assert_eq!(out, lines(&[c.as_bytes(), b.as_bytes()]));
}

#[test]
fn utf8_bom_is_quarantined_and_the_event_after_it_kept() {
    let bom = format!("\u{feff}{A1}");
    let other = r#"{"t":"b","id":1}"#;
    let (out, q, rec) = compact(&lines(&[bom.as_bytes(), other.as_bytes()]));
    assert_eq!(out, lines(&[A1.as_bytes(), other.as_bytes()]));
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].bytes(), "\u{feff}".as_bytes());
    assert_eq!(rec["stats"]["salvaged"], 1);
    // A BOM alone on a line is quarantined whole.
    let (out, q, _) = compact(&lines(&["\u{feff}".as_bytes(), other.as_bytes()]));
    assert_eq!(out, lines(&[other.as_bytes()]));
    assert_eq!(q[0].bytes(), "\u{feff}".as_bytes());
}

#[test]
fn empty_and_whitespace_lines_are_counted_and_quarantined() {
    let (out, q, rec) = compact(&lines(&[b"", A1.as_bytes(), b"   \t", b"\r"]));
    assert_eq!(out, lines(&[A1.as_bytes()]));
    let got: Vec<Vec<u8>> = q.iter().map(Entry::bytes).collect();
    assert_eq!(got, vec![b"".to_vec(), b"   \t".to_vec(), b"\r".to_vec()]);
    assert_eq!(rec["stats"]["quarantined"], 3);
}

#[test]
fn json_that_is_not_an_object_stays_in_place() {
    let (out, q, rec) = compact(&lines(&[
        b"[1,2]",
        A1.as_bytes(),
        b"\"text\"",
        b"42",
        b"null",
        A1B.as_bytes(),
    ]));
    assert!(q.is_empty());
    assert_eq!(
        out,
        lines(&[b"[1,2]", b"\"text\"", b"42", b"null", A1B.as_bytes()])
    );
    assert_eq!(rec["stats"]["keyless_kept"], 4);
}

#[test]
fn event_missing_its_key_stays_in_place() {
    let partial = r#"{"t":"a","v":"no id"}"#;
    let (out, q, _) = compact(&lines(&[A1.as_bytes(), partial.as_bytes(), A1B.as_bytes()]));
    assert!(q.is_empty());
    assert_eq!(out, lines(&[partial.as_bytes(), A1B.as_bytes()]));
}

#[test]
fn keys_of_different_json_types_are_different_keys() {
    let s = r#"{"t":"a","id":"1","v":"string one"}"#;
    let f = r#"{"t":"a","id":1.0,"v":"float one"}"#;
    let e = r#"{"t":"a","id":"\u0031","v":"escaped string one"}"#;
    let (out, _, rec) = compact(&lines(&[
        A1.as_bytes(),
        s.as_bytes(),
        f.as_bytes(),
        e.as_bytes(),
    ]));
    // 1, "1" (== "\u0031") and 1.0 are three keys.
    assert_eq!(out, lines(&[A1.as_bytes(), f.as_bytes(), e.as_bytes()]));
    assert_eq!(rec["stats"]["keys_live"], 3);
}

#[test]
fn a_64_mib_line_is_folded_like_any_other() {
    let big = format!(r#"{{"t":"a","id":2,"pad":"{}"}}"#, "x".repeat(64 << 20));
    let input = lines(&[big.as_bytes(), A1.as_bytes(), A1B.as_bytes()]);
    let (out, q, rec) = compact(&input);
    assert!(q.is_empty());
    assert_eq!(out, lines(&[big.as_bytes(), A1B.as_bytes()]));
    assert_eq!(rec["stats"]["keys_live"], 2);
}

#[test]
fn duplicate_fields_take_the_last_value_for_the_key() {
    let dup = r#"{"t":"a","id":9,"id":1,"v":"dup"}"#;
    let (out, _, rec) = compact(&lines(&[A1.as_bytes(), dup.as_bytes()]));
    assert_eq!(out, lines(&[dup.as_bytes()]));
    assert_eq!(rec["stats"]["keys_live"], 1);
}

#[test]
fn deeply_nested_json_does_not_overflow_the_stack() {
    let depth = 200_000;
    let deep = format!(
        r#"{{"t":"a","id":3,"v":{}0{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let unbalanced = format!(r#"{{"t":"a","id":4,"v":{}}}"#, "[".repeat(depth));
    let (out, q, _) = compact(&lines(&[
        deep.as_bytes(),
        unbalanced.as_bytes(),
        A1.as_bytes(),
    ]));
    assert_eq!(out, lines(&[deep.as_bytes(), A1.as_bytes()]));
    assert_eq!(q.len(), 1);
}

#[test]
fn torn_last_line_stays_in_the_tail() {
    let mut input = lines(&[A1.as_bytes(), A1B.as_bytes()]);
    input.extend_from_slice(b"{\"t\":\"a\",\"i");
    let (out, q, rec) = compact(&input);
    assert!(q.is_empty());
    assert_eq!(
        out,
        [lines(&[A1B.as_bytes()]), b"{\"t\":\"a\",\"i".to_vec()].concat()
    );
    assert_eq!(rec["stats"]["tail_bytes"], 11);
}

/// Issue 16 A.1: a torn line that ends just after a nested object (its
/// last `}` missing) is quarantined whole; its `prev` object is not an
/// event, so Task 7 stays "done" in `replay` and in the compacted log.
/// Before the fix `prev` was salvaged and Task 7 went back to "open".
#[test]
fn salvage_never_takes_a_nested_value() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    let open = r#"{"change_type":"SET","item_type":"Task","item":{"id":7,"state":"open"}}"#;
    let done = r#"{"change_type":"SET","item_type":"Task","item":{"id":7,"state":"done"}}"#;
    let torn =
        format!(r#"{{"change_type":"SET","item_type":"Task","item":{{"id":8}},"prev":{open}"#);
    std::fs::write(
        &log,
        lines(&[open.as_bytes(), done.as_bytes(), torn.as_bytes()]),
    )
    .unwrap();
    env.keyed_store("m", &log);
    let task7 = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(r#""id":7"#))
            .map(str::to_string)
            .collect()
    };
    let replayed = env.lk(["replay", "m"]).status(0).stdout();
    assert_eq!(
        task7(&replayed),
        vec![done.to_string()],
        "replay: {replayed}"
    );
    let rec = env
        .lk(["sync", "now", "--force", "--json"])
        .status(0)
        .json()["runs"][0]
        .clone();
    assert_eq!(std::fs::read(&log).unwrap(), lines(&[done.as_bytes()]));
    assert_eq!(rec["stats"]["salvaged"], 0);
    let q = logkeeper::testing::read_quarantine(&env.path("events.jsonl.quarantine")).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].bytes(), torn.as_bytes(), "the whole torn line leaves");
}

/// Issue 16 A.2: the same malformed bytes at the same offset of a *new*
/// log (after a swap) are another line: quarantined again, with the
/// generation (inode) they came from. Before the fix the second run said
/// "1 quarantined" but dropped the line as a duplicate of the first.
#[test]
fn repeat_malformed_line_is_quarantined_per_generation() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    env.keyed_store("m", &log);
    let q = env.path("events.jsonl.quarantine");
    let mut inodes = Vec::new();
    for run in 1..=2u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"not json\n")
            .unwrap();
        inodes.push(std::fs::metadata(&log).unwrap().ino());
        let rec = env
            .lk(["sync", "now", "--force", "--json"])
            .status(0)
            .json()["runs"][0]
            .clone();
        assert_eq!(rec["stats"]["quarantined"], 1, "run {run}");
        assert_eq!(std::fs::read(&log).unwrap(), b"", "run {run}");
        let entries = logkeeper::testing::read_quarantine(&q).unwrap();
        assert_eq!(
            entries.len() as u64,
            run,
            "every bad line is in the quarantine"
        );
        let last = entries.last().unwrap();
        assert_eq!((last.offset, last.bytes()), (0, b"not json".to_vec()));
        assert_eq!(last.generation.ino, Some(inodes[run as usize - 1]));
    }
}
/// A.4 of issue 16: memory does not grow with malformed bytes. 32 MB of
/// malformed 2 KiB lines plus one 24 MB malformed line: the run used to
/// hold the whole quarantine output, the long line and its entry in
/// memory (over 100 MiB here); now entries stream to the quarantine file
/// and the long line is validated in pieces. The bound is far above the
/// run's own need (about 10-20 MiB) and far below the old peak.
#[test]
fn malformed_bytes_do_not_grow_memory() {
    let env = Env::new();
    let log = env.path("events.jsonl");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
        let bad = format!("{{\"t\":\"a\",\"pad\":\"{}\n", "b".repeat(2040));
        for i in 0..16_384 {
            if i % 4096 == 0 {
                writeln!(f, "{A1}").unwrap();
            }
            f.write_all(bad.as_bytes()).unwrap();
        }
        writeln!(f, "{{\"t\":\"a\",\"pad\":\"{}", "c".repeat(24 << 20)).unwrap();
        writeln!(f, "{A1B}").unwrap();
    }
    env.lk(["store", "add", "m", "--log"])
        .arg(&log)
        .args(["--key", "/t", "--key", "/id"])
        .status(0);
    let (code, peak_kib) = peak_rss_kib(&env, &["sync", "now", "--force"]);
    assert_eq!(code, 0);
    let entries =
        logkeeper::testing::read_quarantine(&env.path("events.jsonl.quarantine")).unwrap();
    assert_eq!(entries.len(), 16_384 + 1);
    // Every line of the run of malformed lines has its own entry, with its
    // offset; the long line's entry (streamed in pieces) holds its bytes.
    assert_eq!(entries[1].offset - entries[0].offset, 2057);
    let long = entries.last().unwrap();
    assert_eq!(long.length, 16 + (24 << 20));
    let bytes = long.bytes();
    assert_eq!(bytes.len() as u64, long.length);
    assert!(bytes.starts_with(b"{\"t\":\"a\",\"pad\":\"ccc"));
    assert!(bytes.iter().skip(16).all(|&b| b == b'c'));
    assert_eq!(std::fs::read(&log).unwrap(), lines(&[A1B.as_bytes()]));
    assert!(
        peak_kib < 48 * 1024,
        "peak RSS {} MiB with 56 MB of malformed bytes (bound 48 MiB)",
        peak_kib / 1024
    );
}
