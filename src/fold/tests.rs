//! Fold tests: classification, the parallel scan and merge, and salvage,
//! checked on real files.

use super::*;
use crate::fold::classify::encode_component;
use crate::fold::json::{Kind, Span};
use crate::fold::keymap::Entry;
use crate::io::ranges::{BUF, copy_ranges};
use std::io::Write;

fn spec() -> FoldSpec {
    FoldSpec::new(&["/t".into(), "/id".into()], Some("/op"), &["DEL".into()]).unwrap()
}

/// `text` in a temp file.
fn file_of(text: &str) -> std::fs::File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// The whole of `f`, which holds `text`, as the one span of a fold.
fn whole<'a>(f: &'a std::fs::File, text: &str) -> crate::fold::spans::FileSpan<'a> {
    crate::fold::spans::FileSpan {
        file: f,
        path: std::path::Path::new(""),
        start: 0,
        end: text.len() as u64,
    }
}

fn fold_text(spec: &FoldSpec, text: &str, threads: usize) -> (String, Plan) {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    let cut = find_cut(&f, text.len() as u64).unwrap();
    let plan = fold(spec, &f, cut, threads).unwrap();
    let mut out = Vec::new();
    copy_ranges(&f, &plan.keep, &mut out).unwrap();
    (String::from_utf8(out).unwrap(), plan)
}

#[test]
fn latest_per_key_in_order_of_last_write_and_deletes_drop() {
    let text = concat!(
        "{\"t\":\"A\",\"id\":1,\"v\":1}\n",
        "{\"t\":\"A\",\"id\":2,\"v\":1}\n",
        "{\"no_key\":true}\n",
        "{\"t\":\"A\",\"id\":1,\"v\":2}\n",
        "not json\n",
        "{\"t\":\"A\",\"id\":\"1\",\"v\":3}\n",
        "{\"t\":\"A\",\"id\":2,\"op\":\"D\\u0045L\"}\n",
        "{\"t\":\"A\",\"id\":3,\"v\":1}\n",
        "{\"t\":\"A\",\"id\":3,\"op\":\"DEL\"}\n",
        "{\"t\":\"A\",\"id\":3,\"v\":2}\n",
        "{\"t\":\"A\",\"id\":4,"
    );
    let (out, plan) = fold_text(&spec(), text, 1);
    assert_eq!(
        out,
        concat!(
            "{\"no_key\":true}\n",
            "{\"t\":\"A\",\"id\":1,\"v\":2}\n",
            "{\"t\":\"A\",\"id\":\"1\",\"v\":3}\n",
            "{\"t\":\"A\",\"id\":3,\"v\":2}\n",
        )
    );
    assert_eq!(plan.bad.len(), 1);
    assert_eq!(
        plan.bad[0].range.start,
        text.find("not json").unwrap() as u64
    );
    assert_eq!(
        (
            plan.keys_live,
            plan.keyless_kept,
            plan.deletes_dropped,
            plan.lines_in
        ),
        (3, 1, 2, 10)
    );
}

#[test]
fn parallel_fold_equals_sequential_fold() {
    let mut text = String::new();
    for i in 0..200_000u64 {
        let k = (i * 7919) % 5000;
        let op = if i % 13 == 0 { "DEL" } else { "SET" };
        text.push_str(&format!(
            "{{\"t\":\"T{}\",\"id\":{k},\"op\":\"{op}\",\"i\":{i}}}\n",
            k % 3
        ));
        if i % 50_000 == 7 {
            text.push_str("{broken\n");
        }
    }
    let (seq, p1) = fold_text(&spec(), &text, 1);
    // fold() gives each thread at least 8 MiB, more than this text: use
    // small chunks so that 2..16 threads really split it.
    for threads in [2, 3, 4, 16] {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let cut = text.len() as u64;
        let plan = fold_min_chunk(&spec(), &f, cut, threads, 1 << 10).unwrap();
        let mut par = Vec::new();
        copy_ranges(&f, &plan.keep, &mut par).unwrap();
        assert!(String::from_utf8(par).unwrap() == seq, "{threads} threads");
        assert_eq!(
            (p1.keys_live, p1.bad.len(), p1.lines_in, p1.deletes_dropped),
            (
                plan.keys_live,
                plan.bad.len(),
                plan.lines_in,
                plan.deletes_dropped
            )
        );
    }
}

#[test]
fn long_and_short_keys_fold_alike() {
    // Keys around the inline limit, and long ones (in the arena), with a delete
    // and a re-set; equal keys must meet whichever way they are stored.
    let mut text = String::new();
    let ids: Vec<String> = [0, 1, 20, 21, 22, 23, 24, 40, 200, 5000]
        .iter()
        .map(|&n| "x".repeat(n))
        .collect();
    for round in 0..3 {
        for id in &ids {
            let op = if round == 1 && id.len() % 2 == 0 {
                "DEL"
            } else {
                "SET"
            };
            text.push_str(&format!(
                "{{\"t\":\"A\",\"id\":\"{id}\",\"op\":\"{op}\",\"r\":{round}}}\n"
            ));
        }
    }
    for threads in [1, 3] {
        let (out, plan) = fold_text(&spec(), &text, threads);
        assert_eq!(plan.keys_live, ids.len() as u64);
        let want: String = text
            .lines()
            .skip(2 * ids.len())
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(out, want);
    }
    assert_eq!(std::mem::size_of::<Entry>(), 16);
}

#[test]
fn key_encoding_is_injective_across_component_boundaries() {
    let enc = |parts: &[&str]| {
        let line = format!(
            "[{}]",
            parts
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut out = Vec::new();
        let mut at = 1;
        for p in parts {
            let start = at + 1;
            let end = start + p.len();
            encode_component(
                line.as_bytes(),
                &Span {
                    start,
                    end,
                    kind: Kind::String { escaped: false },
                },
                &mut out,
            );
            at = end + 2;
        }
        out
    };
    let long = "y".repeat(300);
    assert_ne!(enc(&["ab", "c"]), enc(&["a", "bc"]));
    assert_ne!(enc(&[&long, "c"]), enc(&[&long[..299], "yc"]));
    assert_eq!(enc(&[&long, "c"]), enc(&[&long, "c"]));
}

#[test]
fn a_later_chunk_overrides_and_deletes_across_chunks() {
    // One line per chunk (min chunk 1 byte): set in one chunk, deleted or
    // re-set in later ones, keyless and malformed lines in between.
    let text = concat!(
        "{\"t\":\"A\",\"id\":1,\"v\":1}\n",
        "{\"t\":\"A\",\"id\":2,\"v\":1}\n",
        "{\"t\":\"A\",\"id\":3,\"v\":1}\n",
        "{\"nokey\":1}\n",
        "{\"t\":\"A\",\"id\":1,\"op\":\"DEL\"}\n",
        "oops\n",
        "{\"t\":\"A\",\"id\":2,\"v\":2}\n",
        "{\"t\":\"A\",\"id\":3,\"op\":\"DEL\"}\n",
        "{\"t\":\"A\",\"id\":3,\"v\":3}\n",
    );
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    for threads in [1, 2, 5, 9, 16] {
        let plan = fold_min_chunk(&spec(), &f, text.len() as u64, threads, 1).unwrap();
        let mut out = Vec::new();
        copy_ranges(&f, &plan.keep, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                "{\"nokey\":1}\n",
                "{\"t\":\"A\",\"id\":2,\"v\":2}\n",
                "{\"t\":\"A\",\"id\":3,\"v\":3}\n",
            ),
            "{threads} threads"
        );
        assert_eq!(
            (
                plan.keys_live,
                plan.keyless_kept,
                plan.deletes_dropped,
                plan.bad.len()
            ),
            (2, 1, 2, 1)
        );
    }
}

#[test]
fn append_only_keeps_everything_but_malformed_lines() {
    let spec = FoldSpec::new(&[], None, &[]).unwrap();
    let (out, plan) = fold_text(&spec, "{\"a\":1}\n{\"a\":1}\nnope\n[]\n{\"torn", 1);
    assert_eq!(out, "{\"a\":1}\n{\"a\":1}\n[]\n");
    assert_eq!(plan.bad.len(), 1);
    assert_eq!(plan.lines_out(false), 3);
}

#[test]
fn event_glued_to_a_torn_fragment_is_salvaged() {
    // The fragment stops after a key: no value can be nested there.
    let text = concat!(
        "{\"t\":\"A\",\"id\":1,\"v\":1}\n",
        "{\"t\":\"A\",\"id\"{\"t\":\"A\",\"id\":2,\"v\":2}\n",
    );
    let (out, plan) = fold_text(&spec(), text, 1);
    assert_eq!(
        out,
        "{\"t\":\"A\",\"id\":1,\"v\":1}\n{\"t\":\"A\",\"id\":2,\"v\":2}\n"
    );
    assert_eq!(plan.salvaged, 1);
    assert_eq!(plan.bad.len(), 1);
    let frag = &plan.bad[0].range;
    assert_eq!(
        &text[frag.start as usize..frag.end as usize],
        "{\"t\":\"A\",\"id\""
    );
}

/// Issue 16 A.1: a torn line that ends just after a nested object is one
/// value cut short; its nested object (here an older event of key A/7) is
/// not an event, and the line is quarantined whole. Fails on the code
/// before the fix, which kept `prev` and sent A/7 back to "open".
#[test]
fn salvage_never_takes_a_nested_value() {
    let text = concat!(
        "{\"t\":\"A\",\"id\":7,\"state\":\"done\"}\n",
        "{\"t\":\"A\",\"id\":8,\"prev\":{\"t\":\"A\",\"id\":7,\"state\":\"open\"}\n",
        // The same ambiguity right after a `:` of the outer object.
        "{\"t\":\"A\",\"id\":{\"t\":\"A\",\"id\":7,\"state\":\"open\"}\n",
    );
    for threads in [1, 3] {
        let (out, plan) = fold_text(&spec(), text, threads);
        assert_eq!(out, "{\"t\":\"A\",\"id\":7,\"state\":\"done\"}\n");
        assert_eq!((plan.salvaged, plan.bad_lines), (0, 2));
        let first = text.find('\n').unwrap() as u64 + 1;
        assert_eq!(plan.bad[0].range.start, first, "the whole line leaves");
    }
}

#[test]
fn lines_longer_than_the_buffer_are_read_whole() {
    let big = format!(
        "{{\"t\":\"A\",\"id\":1,\"pad\":\"{}\"}}\n",
        "x".repeat(crate::fold::lines::SCAN_BUF * 2 + 3)
    );
    let text = format!("{big}{{\"t\":\"A\",\"id\":2}}\n");
    let (out, plan) = fold_text(&spec(), &text, 1);
    assert_eq!(out, text);
    assert_eq!(plan.keys_live, 2);
}

/// A line past `LONG_LINE` is validated in pieces (memory stays flat) and
/// folds like any other: a valid one by its key, a malformed one
/// quarantined whole.
#[test]
fn lines_longer_than_long_line_are_validated_in_pieces() {
    let pad = "x".repeat(crate::fold::lines::LONG_LINE + BUF + 5);
    let long_ok = format!("{{\"t\":\"A\",\"id\":1,\"pad\":\"{pad}\"}}\n");
    let long_bad = format!("{{\"t\":\"A\",\"id\":3,\"pad\":\"{pad}\"\n");
    let tail = "{\"t\":\"A\",\"id\":1}\n{\"t\":\"A\",\"id\":2}\n";
    let long_del = format!("{{\"t\":\"A\",\"id\":2,\"pad\":\"{pad}\",\"op\":\"D\\u0045L\"}}\n");
    let text = format!("{long_ok}{long_bad}{tail}{long_del}{long_ok}");
    let (out, plan) = fold_text(&spec(), &text, 1);
    assert_eq!(out, long_ok);
    assert_eq!(
        (plan.keys_live, plan.keyless_kept, plan.deletes_dropped),
        (1, 0, 1)
    );
    assert_eq!((plan.bad.len(), plan.bad_lines), (1, 1));
    let r = plan.bad[0].range;
    assert_eq!(&text[r.start as usize..r.end as usize], long_bad);
    assert_eq!(plan.bad[0].reason.reason, "unexpected end of line");
}

/// Adjacent malformed lines are one run in the plan (memory grows with
/// runs, not lines), counted line by line.
#[test]
fn adjacent_malformed_lines_form_one_run() {
    let text = "x\ny\n{\"t\":\"A\",\"id\":1}\nz\n";
    let (out, plan) = fold_text(&spec(), text, 1);
    assert_eq!(out, "{\"t\":\"A\",\"id\":1}\n");
    assert_eq!(plan.bad_lines, 3);
    let runs: Vec<&str> = plan
        .bad
        .iter()
        .map(|b| &text[b.range.start as usize..b.range.end as usize])
        .collect();
    assert_eq!(runs, ["x\ny\n", "z\n"]);
}

/// 30,000 lines over 20,000 keys, with deletes, keyless, malformed and
/// glued lines: more keys than a 64 KiB budget holds in one pass.
fn many_keys_text() -> String {
    let mut text = String::new();
    for i in 0..30_000u32 {
        let id = (i * 7919) % 20_000;
        match i % 10 {
            3 => text.push_str(&format!("{{\"t\":\"A\",\"id\":{id},\"op\":\"DEL\"}}\n")),
            5 => text.push_str("{\"no_key\":1}\n"),
            7 if i % 1000 == 7 => text.push_str("not json\n"),
            8 if i % 1000 == 8 => text.push_str(&format!(
                "{{\"t\":\"B\",\"id\":{id}}}{{\"t\":\"C\",\"id\":{i}}}\n"
            )),
            _ => text.push_str(&format!("{{\"t\":\"A\",\"id\":{id},\"v\":{i}}}\n")),
        }
    }
    text
}

/// A plan's figures (what the verification compares, and more).
fn figures(p: &Plan) -> (u64, u64, u64, u64, u64, u64) {
    (
        p.keys_live,
        p.keyed_lines,
        p.lines_in,
        p.bad_lines,
        p.unglued,
        p.keyless_kept,
    )
}

/// Keys that do not fit the maps' budget are folded over several passes,
/// a range of hashes each; the plan is the one a single pass makes.
#[test]
fn a_fold_over_several_passes_equals_one_pass() {
    use crate::fold::Opts;
    use crate::fold::spans::fold_source;
    let text = many_keys_text();
    let f = file_of(&text);
    let span = [whole(&f, &text)];
    for tombs in [false, true] {
        for threads in [1, 3] {
            let opts = |budget| Opts {
                tombs,
                budget,
                digest: true,
                ..Opts::compaction(threads, 1 << 10)
            };
            let one = fold_source(&spec(), &span[..], opts(usize::MAX)).unwrap();
            let many = fold_source(&spec(), &span[..], opts(64 << 10)).unwrap();
            assert_eq!(one.passes, 1);
            assert!(many.passes > 2, "{} passes", many.passes);
            assert_eq!(many.keep, one.keep);
            assert_eq!(many.tombs, one.tombs);
            assert_eq!(many.newlines, one.newlines);
            assert!(!one.newlines.is_empty() && !one.bad.is_empty());
            assert_eq!(figures(&many), figures(&one));
            // Every line hashed once, in the first pass only.
            let lines = |p: &Plan| {
                let d = p.digest.as_ref().unwrap();
                (d.sum, d.lines, d.bytes)
            };
            assert_eq!(lines(&many), lines(&one));
            assert_eq!(lines(&one).1, 30_000);
            // Maps started with room (`Opts::presize`: little, what the
            // fold held, more, more than the budget allows): the same fold.
            assert!(
                one.map_keys > 1000 && one.map_keys <= 30_000,
                "{}",
                one.map_keys
            );
            for (presize, budget) in [1, one.map_keys, 10 * one.map_keys]
                .into_iter()
                .flat_map(|n| [(n, usize::MAX), (n, 64 << 10)])
                .chain([(u64::MAX, 64 << 10)])
            {
                let sized = Opts {
                    presize,
                    ..opts(budget)
                };
                let p = fold_source(&spec(), &span[..], sized).unwrap();
                let at = format!("presize {presize}, budget {budget}, {threads} threads");
                assert_eq!(p.keep, one.keep, "{at}");
                assert_eq!(p.tombs, one.tombs, "{at}");
                assert_eq!(p.newlines, one.newlines, "{at}");
                assert_eq!(figures(&p), figures(&one), "{at}");
                assert_eq!(lines(&p), lines(&one), "{at}");
            }
        }
    }
}

/// Counting the live keys without their ranges (`Opts::count_only`, the
/// verification's fold) gives the figures and digest of the full fold, in
/// one pass or many, and keeps no keyed range.
#[test]
fn a_fold_that_only_counts_gives_the_full_folds_figures() {
    use crate::fold::Opts;
    use crate::fold::spans::fold_source;
    let text = many_keys_text();
    let f = file_of(&text);
    let span = [whole(&f, &text)];
    for threads in [1, 3] {
        let opts = |budget, count_only| Opts {
            budget,
            digest: true,
            count_only,
            ..Opts::compaction(threads, 1 << 10)
        };
        let full = fold_source(&spec(), &span[..], opts(usize::MAX, false)).unwrap();
        for budget in [usize::MAX, 64 << 10] {
            let counted = fold_source(&spec(), &span[..], opts(budget, true)).unwrap();
            let at = format!("budget {budget}, {threads} threads");
            assert_eq!(figures(&counted), figures(&full), "{at}");
            let sum = |p: &Plan| p.digest.as_ref().map(|d| (d.sum, d.lines));
            assert_eq!(sum(&counted), sum(&full), "{at}");
            assert!(
                budget == usize::MAX || counted.passes > 2,
                "{at}: {}",
                counted.passes
            );
            // Only the keyless lines' ranges are kept.
            let kept_lines: usize = counted
                .keep
                .iter()
                .map(|r| text[r.start as usize..r.end as usize].matches('\n').count())
                .sum();
            assert_eq!(kept_lines as u64, full.keyless_kept, "{at}");
            assert!(full.keyless_kept > 0 && full.keys_live > 0);
        }
    }
}

/// Enough keys that the merge of the shares' maps runs on several threads
/// (`merge::PARALLEL_SLOTS`), with deletes and tombstones: the same plan
/// as one share's.
#[test]
fn a_merge_split_across_threads_equals_one_share() {
    use crate::fold::Opts;
    use crate::fold::spans::fold_source;
    let mut text = String::new();
    for i in 0..240_000u64 {
        let id = (i * 104_729) % 90_000;
        let op = if i % 11 == 0 { "DEL" } else { "SET" };
        text.push_str(&format!("{{\"t\":\"A\",\"id\":{id},\"op\":\"{op}\"}}\n"));
    }
    let f = file_of(&text);
    let span = [whole(&f, &text)];
    for tombs in [false, true] {
        let opts = |threads| Opts {
            tombs,
            ..Opts::compaction(threads, 1 << 10)
        };
        let one = fold_source(&spec(), &span[..], opts(1)).unwrap();
        assert!(one.keys_live > 60_000 && one.keys_live < 90_000);
        for threads in [2, 3] {
            let many = fold_source(&spec(), &span[..], opts(threads)).unwrap();
            assert_eq!(many.passes, 1);
            assert_eq!(many.keep, one.keep, "{threads} threads");
            assert_eq!(many.tombs, one.tombs, "{threads} threads");
            assert_eq!(many.keys_live, one.keys_live);
        }
    }
}
