//! Property tests against the library: the readers of untrusted bytes (native entries,
//! metadata YAML, filebases, Mailman pickles) never panic whatever they are given, and
//! what qtool writes it reads back exactly.
//!
//! Each property runs 256 cases. Failures proptest found are kept below as plain
//! regression tests with the minimal input (`regression_*`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config as ProptestConfig;

use qtool::metadata::{self, Metadata, Value};
use qtool::queue::{self, mailman, Filebase, Slice};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Regressions are kept as named tests in this file, not in a side file.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Strategies

/// Pieces that matter to a YAML reader or writer, and a few that matter to Python.
const TOKENS: &[&str] = &[
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "~",
    "null",
    "Null",
    "true",
    "False",
    "...",
    "---",
    "1.0",
    "1e3",
    "0x1f",
    "0o17",
    ".inf",
    "-.nan",
    "1_000",
    "+1",
    "010",
    "2001-12-14",
    "12:30",
    "=",
    "<<",
    "-",
    ":",
    ": ",
    "#",
    " #",
    " ",
    "  ",
    "\n",
    "\r",
    "\r\n",
    "\t",
    "\"",
    "'",
    "\\",
    "\\n",
    "[",
    "]",
    "{",
    "}",
    ",",
    "?",
    "!",
    "!tuple",
    "!!str",
    "&a",
    "*a",
    "%",
    "@",
    "`",
    "|",
    ">",
    "a",
    "Z",
    "0",
    "-1",
    "é",
    "ß",
    "😀",
    "\u{a0}",
    "\u{2028}",
    "\u{200b}",
    "\u{feff}",
    "\u{0}",
    "\u{1b}",
    "\u{7}",
];

fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(TOKENS), 0..10).prop_map(|v| v.concat()),
        "[a-z]{1,12}",
    ]
}

fn big_digits() -> impl Strategy<Value = String> {
    ("-?", "[1-9][0-9]{39,80}").prop_map(|(sign, digits)| format!("{sign}{digits}"))
}

fn leaf(strings: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Int(i.into())),
        any::<u64>().prop_map(|i| Value::Int(i.into())),
        any::<i128>().prop_map(Value::Int),
        big_digits().prop_map(Value::BigInt),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        strings.prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Value::Bytes),
    ]
}

/// Values nested up to 4 deep: lists, tuples, dicts with string keys.
fn value(strings: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    leaf(strings.clone()).prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            prop::collection::btree_map(strings.clone(), inner, 0..6).prop_map(|m| {
                Value::Dict(m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect())
            }),
        ]
    })
}

fn metadata_of(strings: BoxedStrategy<String>) -> impl Strategy<Value = Metadata> {
    prop::collection::btree_map(strings.clone(), value(strings), 0..8)
        .prop_map(|m: BTreeMap<String, Value>| m.into_iter().collect())
}

/// Text that looks enough like YAML to get past the first line of a parser.
fn yamlish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(TOKENS).prop_map(str::to_string),
            prop::sample::select(
                &[
                    "a: 1\n",
                    "- x\n",
                    "  ",
                    "&x [",
                    "*x",
                    "!int \"1\"",
                    "!bytes \"",
                    "!tuple [",
                    "? ",
                    "{a: ",
                    "[[",
                    "]]",
                    "}",
                    "key: |\n  text\n",
                    "%YAML 1.2\n",
                    "--- ",
                ][..]
            )
            .prop_map(str::to_string),
            "[a-z0-9]{0,6}",
        ],
        0..40,
    )
    .prop_map(|v| v.concat())
}

// ---------------------------------------------------------------------------------------
// The native entry reader

/// Bytes shaped like an entry: markers, YAML-ish metadata, any message.
fn entry_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        (
            yamlish(),
            prop::collection::vec(any::<u8>(), 0..200),
            any::<bool>()
        )
            .prop_map(|(yaml, msg, end)| {
                let mut v = format!("---\n{yaml}\n").into_bytes();
                if end {
                    v.extend_from_slice(b"...\n");
                }
                v.extend(msg);
                v
            }),
        (0u8..=6, prop::collection::vec(any::<u8>(), 0..400)).prop_map(|(proto, rest)| {
            let mut v = vec![0x80, proto];
            v.extend(rest);
            v
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_entry_reader_never_panics(bytes in entry_like()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("1.0+{}.pck", "0".repeat(40)));
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(mut entry) = queue::read_path(&path) {
            let _ = entry.dequeued_metadata();
            let len = entry.message_len();
            let mut msg = Vec::new();
            entry.message().unwrap().read_to_end(&mut msg).unwrap();
            prop_assert_eq!(msg.len() as u64, len);
        }
    }

    // -----------------------------------------------------------------------------------
    // Metadata YAML

    #[test]
    fn the_metadata_reader_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = metadata::from_yaml(&bytes, "fuzz");
    }

    #[test]
    fn the_metadata_reader_never_panics_on_yamlish_text(text in yamlish()) {
        let _ = metadata::from_yaml(text.as_bytes(), "fuzz");
        let _ = metadata::value_from_yaml_text(&text, "fuzz");
    }

    #[test]
    fn metadata_round_trips_through_yaml(meta in metadata_of(tricky_string().boxed())) {
        let text = metadata::to_yaml(&meta);
        let back = metadata::from_yaml(text.as_bytes(), "round trip");
        prop_assert!(back.is_ok(), "{}\n{text}", back.unwrap_err().message);
        prop_assert_eq!(back.unwrap(), meta, "{}", text);
    }

    #[test]
    fn metadata_round_trips_through_a_native_entry(
        meta in metadata_of(tricky_string().boxed()),
        msg in prop::collection::vec(any::<u8>(), 1..300),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry.pck");
        let mut bytes = b"---\n".to_vec();
        bytes.extend_from_slice(metadata::to_yaml(&meta).as_bytes());
        bytes.extend_from_slice(b"...\n");
        bytes.extend_from_slice(&msg);
        std::fs::write(&path, &bytes).unwrap();
        let entry = queue::read_path(&path);
        prop_assert!(entry.is_ok(), "{}", entry.unwrap_err().message);
        let mut entry = entry.unwrap();
        prop_assert_eq!(&entry.metadata, &meta);
        let mut got = Vec::new();
        entry.message().unwrap().read_to_end(&mut got).unwrap();
        prop_assert_eq!(got, msg);
    }

    // -----------------------------------------------------------------------------------
    // Filebases

    #[test]
    fn filebase_parsing_never_panics(s in prop_oneof![any::<String>(), "[0-9.+a-fA-F/ -]{0,70}"]) {
        if let Ok(fb) = s.parse::<Filebase>() {
            prop_assert_eq!(fb.as_str(), s.as_str());
        }
    }

    #[test]
    fn valid_filebases_round_trip(s in r"[0-9]{1,20}(\.[0-9]{1,20})?\+[0-9a-f]{40}") {
        let fb: Filebase = s.parse().unwrap();
        prop_assert_eq!(fb.as_str(), s.as_str());
        prop_assert_eq!(fb.to_string(), s.clone());
        prop_assert_eq!(fb.fifo_cmp(&fb), std::cmp::Ordering::Equal);
        let again: Filebase = fb.to_string().parse().unwrap();
        prop_assert_eq!(&again, &fb);
        // Exactly one slice of every range owns it.
        for count in [1u32, 2, 4, 16, 1 << 16] {
            let owners = (0..count)
                .filter(|&i| fb.in_slice(&Slice::new(i, count).unwrap()))
                .count();
            prop_assert_eq!(owners, 1, "range {}", count);
        }
    }

    // -----------------------------------------------------------------------------------
    // Mailman pickles

    #[test]
    fn the_pickle_decoder_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = mailman::looks_like_pickle(&bytes);
        let _ = mailman::decode(&bytes);
    }

    #[test]
    fn the_pickle_decoder_never_panics_on_protocol_prefixed_bytes(
        proto in 0u8..=6,
        rest in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = vec![0x80, proto];
        bytes.extend(rest);
        let _ = mailman::decode(&bytes);
    }

    #[test]
    fn the_pickle_decoder_never_panics_on_mutated_fixtures(
        which in any::<Index>(),
        mutation in mutation(),
    ) {
        let all = fixture_pickles();
        let original = &all[which.index(all.len())].1;
        let bytes = mutation.apply(original);
        let _ = mailman::decode(&bytes);
    }

    #[test]
    fn what_qtool_writes_as_a_mailman_file_reads_back(
        meta in metadata_of(tricky_string().boxed()),
        msg in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let encoded = mailman::encode(&msg, &meta);
        prop_assert!(encoded.is_ok(), "{}", encoded.unwrap_err().message);
        let decoded = mailman::decode(&encoded.unwrap());
        prop_assert!(decoded.is_ok(), "{}", decoded.unwrap_err().message);
        let decoded = decoded.unwrap();
        prop_assert_eq!(decoded.message, msg);
        let mut want = meta.clone();
        want.set("_parsemsg", Value::Bool(true));
        prop_assert_eq!(decoded.metadata, want);
    }
}

// ---------------------------------------------------------------------------------------
// Fixture mutations

/// The Mailman-written fixtures (SPEC's and the tests' own), by name.
fn fixture_pickles() -> Vec<(String, Vec<u8>)> {
    let dirs = [
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/mailman/"
        )),
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pickles/")),
    ];
    let mut all = Vec::new();
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for item in rd {
            let path = item.unwrap().path();
            if path.extension().is_some_and(|e| e == "pck") {
                all.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    all.sort();
    assert!(all.len() >= 5, "Mailman fixtures not found: {all:?}");
    all
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Set bytes at positions to values.
    Flip(Vec<(Index, u8)>),
    /// Keep only a prefix.
    Truncate(Index),
    /// Remove a range.
    Delete(Index, usize),
    /// Repeat a range in place.
    Duplicate(Index, usize),
    /// Insert bytes at a position.
    Insert(Index, Vec<u8>),
}

impl Mutation {
    fn apply(&self, original: &[u8]) -> Vec<u8> {
        let mut v = original.to_vec();
        if v.is_empty() {
            return v;
        }
        match self {
            Mutation::Flip(flips) => {
                for (at, b) in flips {
                    let i = at.index(v.len());
                    v[i] = *b;
                }
            }
            Mutation::Truncate(at) => v.truncate(at.index(v.len())),
            Mutation::Delete(at, n) => {
                let i = at.index(v.len());
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
            Mutation::Duplicate(at, n) => {
                let i = at.index(v.len());
                let end = (i + n).min(v.len());
                let chunk = v[i..end].to_vec();
                v.splice(i..i, chunk);
            }
            Mutation::Insert(at, bytes) => {
                let i = at.index(v.len());
                v.splice(i..i, bytes.iter().copied());
            }
        }
        v
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        prop::collection::vec((any::<Index>(), any::<u8>()), 1..8).prop_map(Mutation::Flip),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), 1usize..256).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

/// Every single-byte change of every fixture at every position is too many; every
/// truncation is not: each prefix of each fixture decodes or fails cleanly.
#[test]
fn every_truncation_of_every_fixture_fails_cleanly() {
    for (name, bytes) in fixture_pickles() {
        assert!(mailman::decode(&bytes).is_ok(), "{name} does not decode");
        for len in 0..bytes.len() {
            let _ = mailman::decode(&bytes[..len]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Regressions: minimal failing inputs the properties above found (all fixed in the
// writer since: it now escapes what YAML cannot hold raw, and the nesting pre-scan skips
// quoted strings)

fn round_trip_str(s: &str) -> Result<(), String> {
    let mut meta = Metadata::new();
    meta.set("k", Value::Str(s.to_string()));
    let text = metadata::to_yaml(&meta);
    match metadata::from_yaml(text.as_bytes(), "round trip") {
        Ok(back) if back == meta => Ok(()),
        Ok(back) => Err(format!("{text:?} read back as {:?}", back.get("k"))),
        Err(e) => Err(format!("{text:?}: {}", e.message)),
    }
}

#[test]
fn metadata_round_trips_with_printable_tricky_strings() {
    for s in [
        "yes",
        "No",
        "~",
        "null",
        "...",
        "---",
        "1.0",
        "0x1f",
        "a\nb",
        "a\r\nb",
        " x",
        "x ",
        "#x",
        "- a",
        ": a",
        "'",
        "\"",
        "\\",
        "{}",
        "[]",
        "a, b",
        "\u{2028}",
        "\u{feff}x",
        "\u{0}",
        "\u{1b}[31m",
        "\t",
        "😀",
        "",
    ] {
        round_trip_str(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    }
}

/// DEL was written raw inside quotes; the reader refused it ("control characters are
/// not allowed").
#[test]
fn regression_del_in_a_string_round_trips() {
    round_trip_str("\u{7f}").unwrap();
}

/// C1 controls (U+0080..U+009F) were written raw; the reader refused them.
#[test]
fn regression_c1_control_in_a_string_round_trips() {
    round_trip_str("\u{80}").unwrap();
}

/// NEL was written raw; the reader folded it into a space ("a b").
#[test]
fn regression_nel_in_a_string_round_trips() {
    round_trip_str("a\u{85}b").unwrap();
}

/// U+FFFE/U+FFFF were written raw; the reader refused them.
#[test]
fn regression_noncharacter_in_a_string_round_trips() {
    round_trip_str("\u{fffe}").unwrap();
}

/// The nesting pre-scan counted brackets inside quoted strings: 65 `[` in a string were
/// refused as "nests deeper than 64 levels".
#[test]
fn regression_many_open_brackets_in_a_string_round_trip() {
    round_trip_str(&"[".repeat(65)).unwrap();
}

/// U+2028 is a line break to the reader; raw in a quoted key (which must be one line)
/// it made the metadata unreadable ("mapping values are not allowed in this context").
#[test]
fn regression_line_separator_in_a_key_round_trips() {
    let mut meta = Metadata::new();
    meta.set("a\u{2028}b", Value::Int(1));
    let text = metadata::to_yaml(&meta);
    let back = metadata::from_yaml(text.as_bytes(), "round trip")
        .unwrap_or_else(|e| panic!("{text:?}: {}", e.message));
    assert_eq!(back, meta);
}

/// The same in a flow mapping key: "did not find expected ',' or '}'".
#[test]
fn regression_line_separator_in_a_dict_key_round_trips() {
    let mut meta = Metadata::new();
    meta.set(
        "k",
        Value::Dict(vec![(Value::Str("\u{2028}".into()), Value::None)]),
    );
    let text = metadata::to_yaml(&meta);
    let back = metadata::from_yaml(text.as_bytes(), "round trip")
        .unwrap_or_else(|e| panic!("{text:?}: {}", e.message));
    assert_eq!(back, meta);
}
