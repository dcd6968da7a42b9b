use super::*;
use proptest::prelude::*;

fn streamed(line: &[u8], piece: usize) -> bool {
    let mut v = LineValidator::new();
    for p in line.chunks(piece.max(1)) {
        v.feed(p);
    }
    v.finish().is_ok()
}

#[test]
fn streamed_validation_agrees_on_chosen_lines() {
    for line in [
        &br#"{"a":[1,2,{"b":"c\u00e9\"\\"}],"d":-0.5e+3,"e":true,"f":null}"#[..],
        br#"  [ ]  "#,
        br#""x""#,
        b"0",
        b"",
        b"   ",
        br#"{"a" 1}"#,
        br#"[1 2]"#,
        br#"[1,]"#,
        br#"{"a":1,}"#,
        br#"{"a":tru}"#,
        br#"{"a":01}"#,
        br#"{"a":"\x"}"#,
        br#"{"a":"\u12G4"}"#,
        b"{\"a\":\"\xff\"}",
        br#"[}"#,
        br#"{]"#,
        br#"{"a":1}{"#,
        br#"{"a":1} x"#,
    ] {
        let want = super::super::Scanner::new().validate(line).is_ok();
        for piece in [1, 3, 63, 64, 65, 1000] {
            assert_eq!(
                streamed(line, piece),
                want,
                "{:?} in pieces of {piece}",
                String::from_utf8_lossy(line)
            );
        }
    }
}

proptest! {
    /// Fed in pieces of any size, the streamed validator agrees with the
    /// scanner on damaged JSON.
    #[test]
    fn streamed_validation_agrees_with_the_scanner(
        doc in super::super::tests::json_value(),
        cut in any::<prop::sample::Index>(),
        junk in prop::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), Just(b'{'), Just(b']'), Just(b'u'), 0x80u8..=0xFF, any::<u8>()], 0..4),
        piece in 1usize..100,
    ) {
        let mut bytes = doc.into_bytes();
        let at = cut.index(bytes.len() + 1);
        bytes.splice(at..at, junk);
        let want = super::super::Scanner::new().validate(&bytes).is_ok();
        prop_assert_eq!(streamed(&bytes, piece), want, "{:?}", String::from_utf8_lossy(&bytes));
        // With pointers: the same spans as the in-memory scan.
        let ptrs = Pointers::new(&["", "/a", "/b/0", "/ab/c", "/0", "/a/1/b"]).unwrap();
        let mut want = vec![None; ptrs.len()];
        let ok = super::super::Scanner::new().scan(&bytes, &ptrs, &mut want).is_ok();
        let mut v = LineValidator::with_pointers(Some(&ptrs));
        for p in bytes.chunks(piece) {
            v.feed(p);
        }
        match v.finish() {
            Ok(got) => {
                prop_assert!(ok);
                prop_assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&bytes));
            }
            Err(_) => prop_assert!(!ok),
        }
    }
}
