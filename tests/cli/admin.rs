//! The admin's surface: `list`, `stats`, `unshunt`, `move`, `delete`, `recover`,
//! `runners`, `completions` and every command's `--help` — what an admin reads (exact
//! tables, JSON shapes), what is left on disk, and the exit codes.
//!
//! Ages are made deterministic with entry files written by hand whose filebase time is
//! far in the past (the AGE column then shows whole days) or a fixed number of minutes
//! before now (for the `stats` histogram).

use std::fs;
use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};

use crate::common::*;

// ---------------------------------------------------------------------------------------
// Helpers.

fn ok(out: &Output) {
    assert_eq!(
        code(out),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Seconds since the epoch, now.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A filebase digest numbered `n` (40 lower-case hex digits).
fn digest(n: u32) -> String {
    format!("{n:040x}")
}

/// Writes a native entry by hand as `<time>+<digest(n)><ext>` in `queue`; returns the
/// filebase and the file's size.
fn hand_entry(
    env: &Env,
    queue: &str,
    time: &str,
    n: u32,
    ext: &str,
    meta: &str,
    msg: &[u8],
) -> (String, u64) {
    let fb = format!("{time}+{}", digest(n));
    let bytes = native_entry(meta, msg);
    put_file(env, queue, &format!("{fb}{ext}"), &bytes);
    (fb, bytes.len() as u64)
}

/// The AGE column of an entry enqueued at `time` (seconds), seen at `now`, for ages of a
/// day or more.
fn days(time: f64, now: f64) -> String {
    let d = ((now - time).max(0.0) as u64) / 86400;
    assert!(d >= 1, "days() is for old entries");
    format!("{d}d")
}

/// A plain table as qtool prints it in a pipe: every cell padded by one space on each
/// side, columns as wide as their widest cell, trailing spaces trimmed.
fn plain_table(rows: &[Vec<String>]) -> String {
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..rows[0].len()).map(width).collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            line.push(' ');
            line.push_str(cell);
            line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 1));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Runs qtool and checks its standard output against `expect(now)` for the time just
/// before or just after the run (an AGE in days may tick over meanwhile).
fn assert_output_at(env: &Env, args: &[&str], expect: impl Fn(f64) -> String) -> Output {
    let before = now();
    let out = env.run(args, b"");
    let after = now();
    ok(&out);
    let got = stdout(&out);
    let (a, b) = (expect(before), expect(after));
    if a == b || got != b {
        assert_eq!(got, a, "qtool {args:?}");
    }
    out
}

fn parse_json(out: &Output) -> Value {
    ok(out);
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

/// `list ARGS --format names`, one filebase per element.
fn names(env: &Env, args: &[&str]) -> Vec<String> {
    let mut all = vec!["list"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "names"]);
    let out = env.run(&all, b"");
    ok(&out);
    stdout(&out).lines().map(str::to_string).collect()
}

/// The only ready entry (`.pck`) of a queue.
fn only_entry(env: &Env, queue: &str) -> String {
    let e = entries(env, queue, ".pck");
    assert_eq!(e.len(), 1, "{queue}: {:?}", env.files(queue));
    e[0].clone()
}

/// The value of `key` in a `dump` text output.
fn dump_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(": ")?;
        (k.trim_end() == key).then(|| v.to_string())
    })
}

const LIST_FIELDS: [&str; 10] = [
    "age", "filebase", "from", "listid", "queue", "reason", "size", "state", "subject", "whichq",
];

/// Checks that `v` is an object with exactly the `list --format json` fields.
fn assert_list_fields(v: &Value) {
    let keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, LIST_FIELDS, "{v}");
}

// ---------------------------------------------------------------------------------------
// list

#[test]
fn list_shows_fifo_order_states_sizes_and_decoded_headers() {
    let env = Env::new();
    // Written in reverse; FIFO is by the time as a number (999999999.5 sorts last as
    // text), not by name or by creation.
    let (fb4, s4) = hand_entry(
        &env,
        "in",
        "1000000010.0",
        4,
        ".pck",
        "listid: d.example.com\n",
        b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>\nSubject: plain\n\nd\n",
    );
    let (fb3, s3) = hand_entry(
        &env,
        "in",
        "1000000000.25",
        3,
        ".pck",
        "",
        b"To: nobody@example.com\n\nno From, no Subject\n",
    );
    let (fb2, s2) = hand_entry(
        &env,
        "in",
        "1000000000.0",
        2,
        ".bak",
        "listid: b.example.com\n",
        b"From: bob@example.com\nSubject: Second\n\nb\n",
    );
    let (fb1, s1) = hand_entry(
        &env,
        "in",
        "999999999.5",
        1,
        ".pck",
        "listid: a.example.com\n",
        b"From: Ann Person <ann@example.com>\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n\nhallo\n",
    );
    assert_eq!(
        names(&env, &["in"]),
        vec![fb1.clone(), fb2.clone(), fb3.clone(), fb4.clone()]
    );
    let expected = |now: f64| {
        plain_table(&[
            row(&[
                "QUEUE", "FILEBASE", "STATE", "AGE", "SIZE", "LISTID", "FROM", "SUBJECT",
            ]),
            row(&[
                "in",
                &fb1,
                "ready",
                &days(999999999.5, now),
                &s1.to_string(),
                "a.example.com",
                "Ann Person <ann@example.com>",
                "Grüße",
            ]),
            row(&[
                "in",
                &fb2,
                "claimed",
                &days(1000000000.0, now),
                &s2.to_string(),
                "b.example.com",
                "bob@example.com",
                "Second",
            ]),
            row(&[
                "in",
                &fb3,
                "ready",
                &days(1000000000.25, now),
                &s3.to_string(),
                "-",
                "-",
                "-",
            ]),
            row(&[
                "in",
                &fb4,
                "ready",
                &days(1000000010.0, now),
                &s4.to_string(),
                "d.example.com",
                "Jürgen <j@example.com>",
                "plain",
            ]),
        ])
    };
    let out = assert_output_at(&env, &["list", "in"], expected);
    assert_eq!(stderr(&out), "", "nothing to report");
    // Listing changes nothing.
    assert_eq!(
        env.files("in"),
        vec![
            format!("{fb2}.bak"),
            format!("{fb3}.pck"),
            format!("{fb4}.pck"),
            format!("{fb1}.pck"),
        ]
    );
}

#[test]
fn list_without_a_queue_lists_every_queue_with_ready_claimed_and_preserved_entries() {
    let env = Env::new();
    let a = env.enqueue("in", b"Subject: a\n\na\n", &[]);
    let b = env.enqueue("in", b"Subject: b\n\nb\n", &[]);
    let c = env.enqueue("out", b"Subject: c\n\nc\n", &[]);
    // A claimed entry (an orphaned .bak) and a preserved one, made by hand.
    fs::rename(
        env.queue("in").join(format!("{a}.pck")),
        env.queue("in").join(format!("{a}.bak")),
    )
    .unwrap();
    fs::create_dir_all(env.queue("bad")).unwrap();
    fs::copy(
        env.queue("in").join(format!("{b}.pck")),
        env.queue("bad").join(format!("{b}.psv")),
    )
    .unwrap();

    let doc = parse_json(&env.run(&["list", "--format", "json"], b""));
    let got: Vec<(String, String, String)> = doc
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["queue"].as_str().unwrap().to_string(),
                r["filebase"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let t = |q: &str, fb: &str, s: &str| (q.to_string(), fb.to_string(), s.to_string());
    assert_eq!(
        got,
        vec![
            t("bad", &b, "preserved"),
            t("in", &a, "claimed"),
            t("in", &b, "ready"),
            t("out", &c, "ready"),
        ]
    );

    // The table says the same; its subjects come from each file.
    let out = env.run(&["list"], b"");
    ok(&out);
    let text = stdout(&out);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        vec!["QUEUE", "FILEBASE", "STATE", "AGE", "SIZE", "LISTID", "FROM", "SUBJECT"]
    );
    let summary: Vec<(&str, &str, &str, &str)> = lines[1..]
        .iter()
        .map(|l| (l[0], l[1], l[2], *l.last().unwrap()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("bad", b.as_str(), "preserved", "b"),
            ("in", a.as_str(), "claimed", "a"),
            ("in", b.as_str(), "ready", "b"),
            ("out", c.as_str(), "ready", "c"),
        ],
        "{text}"
    );
    // Naming queues restricts the listing to them, in the order given.
    assert_eq!(names(&env, &["out", "bad"]), vec![c.clone(), b.clone()]);
}

#[test]
fn list_filters_by_age_listid_from_and_subject() {
    let env = Env::new();
    let (old, _) = hand_entry(
        &env,
        "in",
        "1000000000.0",
        1,
        ".pck",
        "listid: old.example.com\n",
        b"From: Old Timer <old@example.com>\nSubject: Ancient history\n\nx\n",
    );
    let fresh = env.enqueue(
        "in",
        b"From: Ann <ann@example.com>\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Bern\n\ny\n",
        &["-m", "listid=new.example.com"],
    );
    assert_eq!(names(&env, &["in"]), vec![old.clone(), fresh.clone()]);

    assert_eq!(
        names(&env, &["in", "--older-than", "1h"]),
        vec![old.clone()]
    );
    assert_eq!(names(&env, &["--older-than", "1h"]), vec![old.clone()]);
    assert_eq!(
        names(&env, &["in", "--listid", "new.example.com"]),
        vec![fresh.clone()]
    );
    assert_eq!(
        names(&env, &["in", "--listid", "example.com"]),
        Vec::<String>::new(),
        "--listid names one list exactly"
    );
    assert_eq!(names(&env, &["in", "--from", "OLD@EX"]), vec![old.clone()]);
    assert_eq!(names(&env, &["in", "--from", "ann"]), vec![fresh.clone()]);
    assert_eq!(
        names(&env, &["in", "--subject", "ancient"]),
        vec![old.clone()]
    );
    assert_eq!(
        names(&env, &["in", "--subject", "GRÜ"]),
        vec![fresh.clone()]
    );
    assert_eq!(
        names(&env, &["in", "--subject", "aus bern"]),
        vec![fresh.clone()]
    );
    // Filters combine.
    assert_eq!(
        names(&env, &["in", "--older-than", "1h", "--subject", "grü"]),
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            &env,
            &[
                "in",
                "--older-than",
                "1h",
                "--listid",
                "old.example.com",
                "--from",
                "timer"
            ]
        ),
        vec![old.clone()]
    );
    // A table with nothing left after the filters is an empty listing, not an error.
    let out = env.run(&["list", "in", "--subject", "nothing like it"], b"");
    ok(&out);
    assert_eq!(stdout(&out), "");
}

#[test]
fn list_json_is_one_array_with_fixed_fields_and_nulls() {
    let env = Env::new();
    let (shunted, size) = hand_entry(
        &env,
        "shunt",
        "1000000000.0",
        7,
        ".pck",
        "listid: test.example.com\nwhichq: out\nshunt_reason: 'handler exited 3: boom'\n",
        b"From: Ann Person <ann@example.com>\nSubject: Hello\n\nx\n",
    );
    let plain = env.enqueue("in", b"no headers at all\n", &[]);
    let before = now();
    let doc = parse_json(&env.run(&["list", "--format", "json"], b""));
    let after = now();
    let items = doc.as_array().expect("one array");
    assert_eq!(items.len(), 2, "{doc}");
    for item in items {
        assert_list_fields(item);
    }

    let age = items[1]["age"].as_f64().expect("age is a number");
    assert!(
        age >= before - 1_000_000_000.0 && age <= after - 1_000_000_000.0,
        "age {age}"
    );
    let mut first = items[1].clone();
    first["age"] = json!(0);
    assert_eq!(
        first,
        json!({
            "queue": "shunt",
            "filebase": shunted,
            "state": "ready",
            "age": 0,
            "size": size,
            "listid": "test.example.com",
            "from": "Ann Person <ann@example.com>",
            "subject": "Hello",
            "reason": "handler exited 3: boom",
            "whichq": "out",
        })
    );

    let age = items[0]["age"].as_f64().expect("age is a number");
    assert!((0.0..=600.0).contains(&age), "age {age}");
    let size = fs::metadata(env.queue("in").join(format!("{plain}.pck")))
        .unwrap()
        .len();
    let mut second = items[0].clone();
    second["age"] = json!(0);
    assert_eq!(
        second,
        json!({
            "queue": "in",
            "filebase": plain,
            "state": "ready",
            "age": 0,
            "size": size,
            "listid": null,
            "from": null,
            "subject": null,
            "reason": null,
            "whichq": null,
        })
    );
}

#[test]
fn list_shows_the_reason_column_only_when_an_entry_has_one() {
    let env = Env::new();
    let (fb, size) = hand_entry(
        &env,
        "shunt",
        "1000000000.0",
        1,
        ".pck",
        "whichq: in\nshunt_reason: 'handler exited 3: boom'\n",
        b"From: a@example.com\nSubject: s\n\nx\n",
    );
    let (fb2, size2) = hand_entry(
        &env,
        "shunt",
        "1000000001.0",
        2,
        ".pck",
        "whichq: in\n",
        b"From: b@example.com\nSubject: t\n\nx\n",
    );
    assert_output_at(&env, &["list", "shunt"], |now| {
        plain_table(&[
            row(&[
                "QUEUE", "FILEBASE", "STATE", "AGE", "SIZE", "LISTID", "FROM", "SUBJECT", "REASON",
            ]),
            row(&[
                "shunt",
                &fb,
                "ready",
                &days(1000000000.0, now),
                &size.to_string(),
                "-",
                "a@example.com",
                "s",
                "handler exited 3: boom",
            ]),
            row(&[
                "shunt",
                &fb2,
                "ready",
                &days(1000000001.0, now),
                &size2.to_string(),
                "-",
                "b@example.com",
                "t",
                "-",
            ]),
        ])
    });
    // Without the entry that has a reason, there is no REASON column.
    assert_output_at(&env, &["list", "shunt", "--subject", "t"], |now| {
        plain_table(&[
            row(&[
                "QUEUE", "FILEBASE", "STATE", "AGE", "SIZE", "LISTID", "FROM", "SUBJECT",
            ]),
            row(&[
                "shunt",
                &fb2,
                "ready",
                &days(1000000001.0, now),
                &size2.to_string(),
                "-",
                "b@example.com",
                "t",
            ]),
        ])
    });
}

#[test]
fn list_names_prints_filebases_only() {
    let env = Env::new();
    let a = env.enqueue("in", b"Subject: a\n\na\n", &[]);
    let b = env.enqueue("in", b"Subject: b\n\nb\n", &[]);
    let out = env.run(&["list", "in", "--format", "names"], b"");
    ok(&out);
    assert_eq!(stdout(&out), format!("{a}\n{b}\n"));
    assert_eq!(stderr(&out), "");
}

#[test]
fn list_reports_a_stray_file_on_stderr_and_does_not_list_it() {
    let env = Env::new();
    let fb = env.enqueue("in", b"Subject: real\n\nx\n", &[]);
    put_file(&env, "in", "README", b"not an entry\n");
    // A temporary file being written is neither an entry nor worth a word.
    put_file(
        &env,
        "in",
        &format!("1000000000.0+{}.pck.tmp", digest(9)),
        b"half",
    );
    for format in ["table", "names", "json"] {
        let out = env.run(&["list", "in", "--format", format], b"");
        ok(&out);
        assert!(stdout(&out).contains(&fb), "{format}: {}", stdout(&out));
        assert!(
            !stdout(&out).contains("README"),
            "{format}: {}",
            stdout(&out)
        );
        assert!(!stdout(&out).contains(".tmp"), "{format}: {}", stdout(&out));
        let err = stderr(&out);
        assert_eq!(
            err.lines().collect::<Vec<_>>(),
            vec!["qtool: in/README: not a queue entry, skipped"],
            "{format}"
        );
    }
    assert_eq!(names(&env, &["in"]), vec![fb.clone()]);
    // Left alone.
    assert_eq!(
        fs::read(env.queue("in").join("README")).unwrap(),
        b"not an entry\n"
    );
    assert_eq!(env.files("in").len(), 3);
}

#[test]
fn list_shows_an_unreadable_entry_with_the_reason() {
    let env = Env::new();
    let good = env.enqueue("in", b"Subject: good\n\nx\n", &[]);
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
    let bad_fb = format!("1000000000.0+{}", digest(66));
    put_file(&env, "in", &format!("{bad_fb}.pck"), &garbage);

    let doc = parse_json(&env.run(&["list", "in", "--format", "json"], b""));
    let items = doc.as_array().unwrap();
    assert_eq!(items.len(), 2, "{doc}");
    assert_eq!(items[0]["filebase"], json!(bad_fb));
    assert_eq!(items[0]["size"], json!(200));
    assert_eq!(items[0]["state"], json!("ready"));
    let reason = items[0]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("unreadable:"), "{reason}");
    assert_eq!(items[1]["filebase"], json!(good));
    assert_eq!(items[1]["reason"], Value::Null);

    // The table grows a REASON column for it.
    let out = env.run(&["list", "in"], b"");
    ok(&out);
    let text = stdout(&out);
    assert!(text.lines().next().unwrap().ends_with("REASON"), "{text}");
    let line = text.lines().find(|l| l.contains(&bad_fb)).expect("listed");
    assert!(line.contains("unreadable:"), "{line}");

    // Listing moves nothing: the entry is still where it was, unchanged.
    assert_eq!(
        fs::read(env.queue("in").join(format!("{bad_fb}.pck"))).unwrap(),
        garbage
    );
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
}

#[test]
fn list_of_an_empty_queue_succeeds_with_nothing_on_stdout() {
    let env = Env::new();
    // No queue directory at all, then an empty one.
    for _ in 0..2 {
        for args in [&["list"][..], &["list", "in"][..]] {
            let out = env.run(args, b"");
            ok(&out);
            assert_eq!(stdout(&out), "", "{args:?}");

            let mut names_args = args.to_vec();
            names_args.extend_from_slice(&["--format", "names"]);
            let out = env.run(&names_args, b"");
            ok(&out);
            assert_eq!(stdout(&out), "", "{names_args:?}");

            let mut json_args = args.to_vec();
            json_args.extend_from_slice(&["--format", "json"]);
            let doc = parse_json(&env.run(&json_args, b""));
            assert_eq!(doc, json!([]), "{json_args:?}");
        }
        fs::create_dir_all(env.queue("in")).unwrap();
    }
}

#[test]
fn list_refuses_a_bad_age_or_queue_name_as_usage_errors() {
    let env = Env::new();
    assert_error(&env.run(&["list", "--older-than", "soon"], b""), 2);
    assert_error(&env.run(&["list", "../etc"], b""), 2);
    assert_error(&env.run(&["stats", ".hidden"], b""), 2);
}

#[test]
fn list_age_counts_from_the_first_arrival_of_a_kept_entry() {
    let env = Env::new();
    let (fb, _) = hand_entry(
        &env,
        "in",
        "1000000000.0",
        1,
        ".pck",
        "received_time: 1000000000.0\n",
        b"Subject: stuck\n\nretried for ever\n",
    );
    assert_eq!(names(&env, &["in", "--older-than", "2h"]), vec![fb.clone()]);
    // A handler that keeps it (temporary failure): re-enqueued, same entry, not moving.
    let keep = script(env.root(), "keep", "cat > /dev/null\nexit 75");
    let out = run_bounded(&env, &["run-once", "in", "--", p(&keep)], 30);
    ok(&out);
    let kept = only_entry(&env, "in");
    assert_eq!(
        dump_value(&dump(&env, "in", &kept, &["--all"]), "received_time").as_deref(),
        Some("1000000000.0")
    );
    assert_eq!(
        names(&env, &["in", "--older-than", "2h"]),
        vec![kept.clone()],
        "the entry waiting since 2001 is what is not moving"
    );
    let doc = parse_json(&env.run(&["list", "in", "--format", "json"], b""));
    let age = doc[0]["age"].as_f64().unwrap();
    assert!(age > 86400.0 * 365.0, "age {age}");
}

// ---------------------------------------------------------------------------------------
// stats

/// A filebase time `minutes` minutes before now.
fn minutes_ago(minutes: f64) -> String {
    format!("{:.6}", now() - minutes * 60.0)
}

#[test]
fn stats_counts_states_bytes_oldest_and_ages() {
    let env = Env::new();
    let msg = b"Subject: s\n\nx\n";
    let (_, a) = hand_entry(&env, "in", &minutes_ago(7.0), 1, ".pck", "", msg);
    let (_, b) = hand_entry(&env, "in", &minutes_ago(30.0), 2, ".pck", "", msg);
    let (_, c) = hand_entry(&env, "in", &minutes_ago(180.0), 3, ".bak", "", msg);
    let (_, d) = hand_entry(&env, "bad", &minutes_ago(180.0), 4, ".psv", "x: 1\n", msg);
    fs::create_dir_all(env.queue("out")).unwrap();
    put_file(&env, "in", "README", b"a stray is not counted\n");

    let out = env.run(&["stats"], b"");
    ok(&out);
    let expected = plain_table(&[
        row(&[
            "QUEUE",
            "READY",
            "CLAIMED",
            "PRESERVED",
            "BYTES",
            "OLDEST",
            "0-5m",
            "5-10m",
            "10-20m",
            "20-40m",
            "40-80m",
            "80-160m",
            "older",
        ]),
        row(&[
            "bad",
            "0",
            "0",
            "1",
            &d.to_string(),
            "3h",
            "0",
            "0",
            "0",
            "0",
            "0",
            "0",
            "1",
        ]),
        row(&[
            "in",
            "2",
            "1",
            "0",
            &(a + b + c).to_string(),
            "3h",
            "0",
            "1",
            "0",
            "1",
            "0",
            "0",
            "1",
        ]),
        row(&[
            "out", "0", "0", "0", "0", "-", "0", "0", "0", "0", "0", "0", "0",
        ]),
    ]);
    assert_eq!(stdout(&out), expected);
    // The layout, spelled out.
    assert_eq!(
        stdout(&out).lines().next().unwrap(),
        " QUEUE  READY  CLAIMED  PRESERVED  BYTES  OLDEST  0-5m  5-10m  10-20m  20-40m  40-80m  80-160m  older"
    );
    assert_eq!(
        stdout(&out).lines().nth(2).unwrap(),
        format!(
            " in     2      1        0          {:<5}  3h      0     1      0       1       0       0        1",
            a + b + c
        )
    );

    // Named queues only.
    let out = env.run(&["stats", "out"], b"");
    ok(&out);
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    assert!(stdout(&out).lines().nth(1).unwrap().starts_with(" out "));
}

#[test]
fn stats_json_shape() {
    let env = Env::new();
    let msg = b"Subject: s\n\nx\n";
    let (_, a) = hand_entry(&env, "in", &minutes_ago(7.0), 1, ".pck", "", msg);
    let (_, b) = hand_entry(&env, "in", &minutes_ago(30.0), 2, ".pck", "", msg);
    let (_, c) = hand_entry(&env, "in", &minutes_ago(180.0), 3, ".bak", "", msg);
    fs::create_dir_all(env.queue("out")).unwrap();

    let doc = parse_json(&env.run(&["stats", "in", "out", "--format", "json"], b""));
    let items = doc.as_array().expect("an array");
    assert_eq!(items.len(), 2, "{doc}");
    let oldest = items[0]["oldest"].as_f64().expect("oldest in seconds");
    assert!((179.0 * 60.0..=200.0 * 60.0).contains(&oldest), "{oldest}");
    let mut first = items[0].clone();
    first["oldest"] = json!(0);
    assert_eq!(
        first,
        json!({
            "queue": "in",
            "ready": 2,
            "claimed": 1,
            "preserved": 0,
            "bytes": a + b + c,
            "oldest": 0,
            "ages": {
                "0-5m": 0, "5-10m": 1, "10-20m": 0, "20-40m": 1,
                "40-80m": 0, "80-160m": 0, "older": 1,
            },
        })
    );
    assert_eq!(
        items[1],
        json!({
            "queue": "out",
            "ready": 0,
            "claimed": 0,
            "preserved": 0,
            "bytes": 0,
            "oldest": null,
            "ages": {
                "0-5m": 0, "5-10m": 0, "10-20m": 0, "20-40m": 0,
                "40-80m": 0, "80-160m": 0, "older": 0,
            },
        })
    );
    // No queues at all: an empty array.
    let empty = Env::new();
    assert_eq!(
        parse_json(&empty.run(&["stats", "--format", "json"], b"")),
        json!([])
    );
}

// ---------------------------------------------------------------------------------------
// unshunt

#[test]
fn unshunt_round_trip_after_fixing_the_handler() {
    let env = Env::new();
    let failing = script(
        env.root(),
        "failing",
        "cat > /dev/null\necho 'some noise' >&2\necho boom >&2\nexit 3",
    );
    let msg = b"From: Ann Person <ann@example.com>\nSubject: Please work\n\nbody\n";
    let fb = env.enqueue("in", msg, &["-m", "listid=test.example.com"]);
    let out = run_bounded(&env, &["run-once", "in", "--", p(&failing)], 30);
    ok(&out);
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let shunted = only_entry(&env, "shunt");

    // `list shunt` says why.
    let doc = parse_json(&env.run(&["list", "shunt", "--format", "json"], b""));
    assert_eq!(doc.as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc[0]["filebase"], json!(shunted));
    assert_eq!(doc[0]["reason"], json!("handler exited 3: boom"));
    assert_eq!(doc[0]["whichq"], json!("in"));
    assert_eq!(doc[0]["subject"], json!("Please work"));
    let out = env.run(&["list", "shunt"], b"");
    ok(&out);
    let text = stdout(&out);
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        vec!["QUEUE", "FILEBASE", "STATE", "AGE", "SIZE", "LISTID", "FROM", "SUBJECT", "REASON"]
    );
    let line = text.lines().nth(1).unwrap();
    assert!(
        line.starts_with(&format!(" shunt  {shunted}  ready  ")),
        "{text}"
    );
    assert!(
        line.ends_with(
            "  test.example.com  Ann Person <ann@example.com>  Please work  handler exited 3: boom"
        ),
        "{text}"
    );

    // unshunt: back to `in`, without the reason, `whichq` kept (as Mailman does).
    let out = env.run(&["unshunt"], b"");
    ok(&out);
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
    let back = only_entry(&env, "in");
    assert_ne!(back, fb);
    assert_eq!(stdout(&out), format!("shunt/{shunted} -> in/{back}\n"));
    let text = dump(&env, "in", &back, &[]);
    assert_eq!(dump_value(&text, "shunt_reason"), None, "{text}");
    assert_eq!(dump_value(&text, "whichq").as_deref(), Some("in"), "{text}");
    assert_eq!(
        dump_value(&text, "listid").as_deref(),
        Some("test.example.com")
    );
    let out = env.run(&["dump", "in", &back, "--message"], b"");
    ok(&out);
    assert!(
        out.stdout.ends_with(msg),
        "message unchanged: {}",
        stdout(&out)
    );

    // The fixed handler takes it.
    let got = env.root().join("got");
    let fixed = script(
        env.root(),
        "fixed",
        &format!("cat > '{}'\nexit 0", got.display()),
    );
    let out = run_bounded(&env, &["run-once", "in", "--", p(&fixed)], 30);
    ok(&out);
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
    assert_eq!(fs::read(&got).unwrap(), msg);
}

#[test]
fn unshunt_sends_each_entry_to_its_whichq_or_in() {
    let env = Env::new();
    let (no_whichq, _) = hand_entry(
        &env,
        "shunt",
        "1000000000.0",
        1,
        ".pck",
        "shunt_reason: 'handler exited 1: x'\nfoo: bar\n",
        b"Subject: one\n\n1\n",
    );
    let (to_out, _) = hand_entry(
        &env,
        "shunt",
        "1000000001.0",
        2,
        ".pck",
        "whichq: out\nshunt_reason: 'handler exited 1: y'\n",
        b"Subject: two\n\n2\n",
    );
    let out = env.run(&["unshunt"], b"");
    ok(&out);
    let in_fb = only_entry(&env, "in");
    let out_fb = only_entry(&env, "out");
    assert_eq!(
        stdout(&out),
        format!("shunt/{no_whichq} -> in/{in_fb}\nshunt/{to_out} -> out/{out_fb}\n")
    );
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
    let text = dump(&env, "in", &in_fb, &[]);
    assert_eq!(dump_value(&text, "shunt_reason"), None, "{text}");
    assert_eq!(dump_value(&text, "foo").as_deref(), Some("bar"), "{text}");
    let text = dump(&env, "out", &out_fb, &[]);
    assert_eq!(dump_value(&text, "shunt_reason"), None, "{text}");
    assert_eq!(
        dump_value(&text, "whichq").as_deref(),
        Some("out"),
        "{text}"
    );
    // Nothing left: nothing to do, quietly.
    let out = env.run(&["unshunt"], b"");
    ok(&out);
    assert_eq!(stdout(&out), "");
}

#[test]
fn unshunt_a_named_entry_or_discard_one() {
    let env = Env::new();
    let (a, _) = hand_entry(
        &env,
        "shunt",
        "1000000000.0",
        1,
        ".pck",
        "whichq: in\nshunt_reason: r\n",
        b"Subject: a\n\na\n",
    );
    let (b, _) = hand_entry(
        &env,
        "shunt",
        "1000000001.0",
        2,
        ".pck",
        "whichq: in\nshunt_reason: r\n",
        b"Subject: b\n\nb\n",
    );
    let (c, _) = hand_entry(
        &env,
        "shunt",
        "1000000002.0",
        3,
        ".pck",
        "whichq: in\nshunt_reason: r\n",
        b"Subject: c\n\nc\n",
    );

    let out = env.run(&["unshunt", &b], b"");
    ok(&out);
    let moved = only_entry(&env, "in");
    assert_eq!(stdout(&out), format!("shunt/{b} -> in/{moved}\n"));
    assert_eq!(entries(&env, "shunt", ".pck"), vec![a.clone(), c.clone()]);

    let out = env.run(&["unshunt", "--discard", &a], b"");
    ok(&out);
    assert_eq!(stdout(&out), format!("deleted shunt/{a}\n"));
    assert_eq!(env.files("shunt"), vec![format!("{c}.pck")]);
    assert_eq!(env.files("in"), vec![format!("{moved}.pck")]);

    // An unknown filebase: 66, nothing else touched.
    let unknown = format!("1000000009.0+{}", digest(99));
    let out = env.run(&["unshunt", &unknown], b"");
    assert_eq!(code(&out), Some(66), "{}", stderr(&out));
    assert!(stderr(&out).contains(&unknown), "{}", stderr(&out));
    assert_eq!(env.files("shunt"), vec![format!("{c}.pck")]);
}

#[test]
fn unshunt_skips_an_unreadable_entry_and_moves_the_others() {
    let env = Env::new();
    let (a, _) = hand_entry(
        &env,
        "shunt",
        "1000000000.0",
        1,
        ".pck",
        "whichq: in\nshunt_reason: r\n",
        b"Subject: a\n\na\n",
    );
    let garbage: Vec<u8> = (0..300u32).map(|i| (i * 91 % 253) as u8).collect();
    let bad_fb = format!("1000000001.0+{}", digest(2));
    put_file(&env, "shunt", &format!("{bad_fb}.pck"), &garbage);
    let (c, _) = hand_entry(
        &env,
        "shunt",
        "1000000002.0",
        3,
        ".pck",
        "whichq: out\nshunt_reason: r\n",
        b"Subject: c\n\nc\n",
    );

    let out = env.run(&["unshunt"], b"");
    assert_eq!(code(&out), Some(65), "{}", stderr(&out));
    let in_fb = only_entry(&env, "in");
    let out_fb = only_entry(&env, "out");
    assert_eq!(
        stdout(&out),
        format!("shunt/{a} -> in/{in_fb}\nshunt/{c} -> out/{out_fb}\n")
    );
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("qtool: skipped shunt/{bad_fb}: ")),
        "{err}"
    );
    // Never lost: still in shunt, byte for byte, not moved anywhere.
    assert_eq!(env.files("shunt"), vec![format!("{bad_fb}.pck")]);
    assert_eq!(
        fs::read(env.queue("shunt").join(format!("{bad_fb}.pck"))).unwrap(),
        garbage
    );
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
}

#[test]
fn unshunt_names_the_file_where_a_skipped_entry_actually_is() {
    let env = Env::new();
    let bad_fb = format!("1000000001.0+{}", digest(2));
    put_file(
        &env,
        "shunt",
        &format!("{bad_fb}.pck"),
        b"\x00\x01garbage\xff",
    );
    let out = env.run(&["unshunt"], b"");
    assert_eq!(code(&out), Some(65), "{}", stderr(&out));
    assert_eq!(env.files("shunt"), vec![format!("{bad_fb}.pck")]);
    assert!(
        !stderr(&out).contains(&format!("{bad_fb}.bak")),
        "names a file that is not there: {}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------------------
// recover

#[test]
fn recover_puts_an_orphaned_bak_back_with_its_count() {
    let env = Env::new();
    let a = env.enqueue("in", SEED, &["-m", "listid=test.example.com"]);
    let orphan = |fb: &str| {
        let q = env.queue("in");
        fs::copy(q.join(format!("{fb}.pck")), q.join(format!("{fb}.bak"))).unwrap();
        fs::remove_file(q.join(format!("{fb}.pck"))).unwrap();
    };
    orphan(&a);
    assert_eq!(env.files("in"), vec![format!("{a}.bak")]);

    let out = env.run(&["recover", "in"], b"");
    ok(&out);
    assert_eq!(stdout(&out), format!("recovered in/{a}\n"));
    assert_eq!(
        stderr(&out),
        "qtool: in: 1 recovered, 0 preserved, 0 held by live processes, 0 temporary files removed\n"
    );
    assert_eq!(env.files("in"), vec![format!("{a}.pck")]);
    let text = dump(&env, "in", &a, &[]);
    assert_eq!(
        dump_value(&text, "_bak_count").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        dump_value(&text, "listid").as_deref(),
        Some("test.example.com")
    );
    let out = env.run(&["dequeue", "in", &a], b"");
    ok(&out);
    assert_eq!(out.stdout, SEED);

    // -q: the entries, without the summary.
    let b = env.enqueue("in", b"Subject: b\n\nb\n", &[]);
    orphan(&b);
    let out = env.run(&["-q", "recover", "in"], b"");
    ok(&out);
    assert_eq!(stdout(&out), format!("recovered in/{b}\n"));
    assert_eq!(stderr(&out), "");
    assert_eq!(env.files("in"), vec![format!("{b}.pck")]);

    // Nothing to recover is not an error.
    let out = env.run(&["recover", "in"], b"");
    ok(&out);
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "qtool: in: 0 recovered, 0 preserved, 0 held by live processes, 0 temporary files removed\n"
    );
}

// ---------------------------------------------------------------------------------------
// runners

const RUNNERS_CONFIG: &str = "\
runners:
  in:
    handler: {exec: [/usr/local/libexec/on-post, --verbose]}
    instances: 4
    sleep_time: 2m
    timeout: 5m
  pipeline: {handler: {forward: out}}
  shunt: {start: false}
";

#[test]
fn runners_lists_the_configured_runners() {
    let env = Env::new();
    let config = env.config(RUNNERS_CONFIG);
    let qd = env.queue_dir();
    let path = |q: &str| qd.join(q).display().to_string();
    let out = env.run(&["-C", p(&config), "runners"], b"");
    ok(&out);
    assert_eq!(
        stdout(&out),
        plain_table(&[
            row(&[
                "NAME",
                "HANDLER",
                "INSTANCES",
                "SLEEP",
                "START",
                "TIMEOUT",
                "MAX_RESTARTS",
                "PATH",
            ]),
            row(&[
                "in",
                "exec /usr/local/libexec/on-post --verbose",
                "4",
                "2m",
                "yes",
                "5m",
                "10",
                &path("in"),
            ]),
            row(&[
                "pipeline",
                "forward out",
                "1",
                "1s",
                "yes",
                "-",
                "10",
                &path("pipeline"),
            ]),
            row(&["shunt", "-", "1", "1s", "no", "-", "10", &path("shunt")]),
        ])
    );
    assert_eq!(stderr(&out), "");

    let doc = parse_json(&env.run(&["-C", p(&config), "runners", "--format", "json"], b""));
    let mut doc = doc;
    // How a runner without a handler is shown is checked separately.
    doc[2]["handler"] = Value::Null;
    assert_eq!(
        doc,
        json!([
            {
                "name": "in",
                "handler": "exec /usr/local/libexec/on-post --verbose",
                "instances": 4,
                "sleep_time": "2m",
                "start": true,
                "timeout": "5m",
                "max_restarts": 10,
                "path": path("in"),
            },
            {
                "name": "pipeline",
                "handler": "forward out",
                "instances": 1,
                "sleep_time": "1s",
                "start": true,
                "timeout": null,
                "max_restarts": 10,
                "path": path("pipeline"),
            },
            {
                "name": "shunt",
                "handler": null,
                "instances": 1,
                "sleep_time": "1s",
                "start": false,
                "timeout": null,
                "max_restarts": 10,
                "path": path("shunt"),
            },
        ])
    );
}

#[test]
fn runners_json_uses_null_for_a_runner_without_a_handler() {
    let env = Env::new();
    let config = env.config(RUNNERS_CONFIG);
    let doc = parse_json(&env.run(&["-C", p(&config), "runners", "--format", "json"], b""));
    assert_eq!(doc[2]["name"], json!("shunt"));
    assert_eq!(doc[2]["handler"], Value::Null, "{doc}");
}

#[test]
fn runners_without_a_config_says_so() {
    let env = Env::new();
    let out = env.run(&["runners"], b"");
    ok(&out);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).starts_with("qtool: no runners configured"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    // An empty config file is the same, and JSON is an empty array.
    let config = env.config("");
    let out = env.run(&["-C", p(&config), "runners"], b"");
    ok(&out);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("no runners configured"),
        "{}",
        stderr(&out)
    );
    let doc = parse_json(&env.run(&["-C", p(&config), "runners", "--format", "json"], b""));
    assert_eq!(doc, json!([]));
}

// ---------------------------------------------------------------------------------------
// delete and move

/// A `qtool run in` whose handler sleeps on the only entry, so the entry stays claimed
/// (`.bak`, locked) while the test runs. Both are SIGKILLed on drop.
struct Held {
    _runner: Background,
    _reaper: GroupReaper,
    fb: String,
}

fn hold_an_entry(env: &Env) -> Held {
    let pids = env.root().join("handler.pids");
    let reaper = GroupReaper(pids.clone());
    let started = env.root().join("started");
    let handler = script(
        env.root(),
        "slow",
        &format!(
            "echo $$ >> '{}'\ntouch '{}'\nexec sleep 60",
            pids.display(),
            started.display()
        ),
    );
    let fb = env.enqueue("in", b"Subject: busy\n\nbeing worked on\n", &[]);
    let runner = spawn_logged(
        env,
        &["run", "in", "--", p(&handler)],
        &env.root().join("run.log"),
    );
    assert!(
        wait_until(30, || started.exists()
            && env.files("in") == vec![format!("{fb}.bak")]),
        "the runner did not claim {fb}: {:?}\n{}",
        env.files("in"),
        runner.log_text()
    );
    Held {
        _runner: runner,
        _reaper: reaper,
        fb,
    }
}

#[test]
fn delete_removes_the_named_entries() {
    let env = Env::new();
    let a = env.enqueue("in", b"Subject: a\n\na\n", &[]);
    let b = env.enqueue("in", b"Subject: b\n\nb\n", &[]);
    let c = env.enqueue("in", b"Subject: c\n\nc\n", &[]);
    let out = env.run(&["delete", "in", &a], b"");
    ok(&out);
    assert_eq!(stdout(&out), format!("deleted in/{a}\n"));
    assert_eq!(stderr(&out), "");
    assert_eq!(
        env.files("in"),
        vec![format!("{b}.pck"), format!("{c}.pck")]
    );

    let out = env.run(&["delete", "in", &b, &c], b"");
    ok(&out);
    assert_eq!(stdout(&out), format!("deleted in/{b}\ndeleted in/{c}\n"));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
}

#[test]
fn delete_of_an_unknown_entry_is_66_and_the_others_are_still_deleted() {
    let env = Env::new();
    let a = env.enqueue("in", b"Subject: a\n\na\n", &[]);
    let unknown = format!("1000000000.0+{}", digest(5));
    let out = env.run(&["delete", "in", &unknown, &a], b"");
    assert_eq!(code(&out), Some(66), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("deleted in/{a}\n"));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("qtool: skipped in/{unknown}: ")),
        "{err}"
    );
    assert!(err.contains("no entry"), "{err}");
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
}

#[test]
fn delete_and_move_refuse_an_entry_a_runner_holds() {
    let env = Env::new();
    let held = hold_an_entry(&env);
    let fb = held.fb.clone();
    let bak = vec![format!("{fb}.bak")];

    let out = env.run(&["delete", "in", &fb], b"");
    assert_eq!(code(&out), Some(75), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("qtool: skipped in/{fb}: ")),
        "{err}"
    );
    assert!(err.contains("claimed"), "{err}");
    assert_eq!(env.files("in"), bak);

    let out = env.run(&["move", "in", &fb, "--to", "out"], b"");
    assert_eq!(code(&out), Some(75), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("claimed"), "{}", stderr(&out));
    assert_eq!(env.files("in"), bak);
    assert!(
        entries(&env, "out", ".pck").is_empty(),
        "{:?}",
        env.files("out")
    );

    // `recover` leaves it alone too, and says why.
    let out = env.run(&["recover", "in"], b"");
    ok(&out);
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "qtool: in: 0 recovered, 0 preserved, 1 held by live processes, 0 temporary files removed\n"
    );
    assert_eq!(env.files("in"), bak);
    let text = dump(&env, "in", &fb, &[]);
    assert_eq!(dump_value(&text, "_bak_count"), None, "{text}");
}

#[test]
fn move_keeps_metadata_and_message() {
    let env = Env::new();
    let mut msg = b"From: Ann <ann@example.com>\nSubject: move me\n\n8-bit: ".to_vec();
    msg.extend_from_slice(b"\xe9\xff\x00 end\n");
    let a = env.enqueue(
        "in",
        &msg,
        &[
            "-m",
            "listid=test.example.com",
            "-m",
            "foo=yes",
            "-m",
            "n=3",
            "-m",
            "r=[a, b]",
        ],
    );
    let b = env.enqueue("in", b"Subject: stays\n\nx\n", &[]);
    let before = dump(&env, "in", &a, &["--all"]);

    let out = env.run(&["move", "in", &a, "--to", "out"], b"");
    ok(&out);
    let new = only_entry(&env, "out");
    assert_eq!(stdout(&out), format!("in/{a} -> out/{new}\n"));
    assert_eq!(stderr(&out), "");
    assert_eq!(env.files("in"), vec![format!("{b}.pck")]);
    assert_eq!(dump(&env, "out", &new, &["--all"]), before);
    let out = env.run(&["dequeue", "out", &new], b"");
    ok(&out);
    assert_eq!(out.stdout, msg);

    // An unknown entry: 66, nothing moved.
    let unknown = format!("1000000000.0+{}", digest(5));
    let out = env.run(&["move", "in", &unknown, "--to", "out"], b"");
    assert_eq!(code(&out), Some(66), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(env.files("in"), vec![format!("{b}.pck")]);
    assert!(env.files("out").is_empty(), "{:?}", env.files("out"));
}

#[test]
fn delete_removes_a_preserved_entry_from_bad() {
    let env = Env::new();
    let (fb, _) = hand_entry(
        &env,
        "bad",
        "1000000000.0",
        1,
        ".psv",
        "_bak_count: 3\n",
        b"Subject: recovered too often\n\nx\n",
    );
    assert_eq!(names(&env, &["bad"]), vec![fb.clone()]);
    let out = env.run(&["delete", "bad", &fb], b"");
    ok(&out);
    assert_eq!(stdout(&out), format!("deleted bad/{fb}\n"));
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
}

// ---------------------------------------------------------------------------------------
// help, completions, colour

#[test]
fn every_subcommand_help_has_examples() {
    let env = Env::new();
    for sub in [
        "enqueue",
        "dequeue",
        "run-once",
        "run",
        "dump",
        "list",
        "stats",
        "unshunt",
        "move",
        "delete",
        "recover",
        "runners",
        "completions",
    ] {
        let out = env.run(&[sub, "--help"], b"");
        ok(&out);
        let text = stdout(&out);
        assert!(
            text.contains("Examples:") || text.contains("Example:"),
            "qtool {sub} --help has no example:\n{text}"
        );
        assert!(text.contains(&format!("qtool {sub}")), "{sub}:\n{text}");
    }
    let out = env.run(&["--help"], b"");
    ok(&out);
    assert!(stdout(&out).contains("Examples:"), "{}", stdout(&out));
}

#[test]
fn completions_for_each_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = env.run(&["completions", shell], b"");
        ok(&out);
        let text = stdout(&out);
        assert!(text.contains("qtool"), "{shell}: {text}");
        // Subcommands are completed.
        assert!(text.contains("unshunt"), "{shell}");
    }
    let out = env.run(&["completions", "tcsh"], b"");
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("tcsh"), "{}", stderr(&out));
}

#[test]
fn output_in_a_pipe_has_no_colour_with_or_without_no_color() {
    let env = Env::new();
    let config = env.config(RUNNERS_CONFIG);
    hand_entry(
        &env,
        "shunt",
        "1000000000.0",
        1,
        ".pck",
        "shunt_reason: r\n",
        b"Subject: s\n\nx\n",
    );
    hand_entry(
        &env,
        "in",
        "1000000000.0",
        2,
        ".bak",
        "",
        b"Subject: c\n\nx\n",
    );
    hand_entry(
        &env,
        "bad",
        "1000000000.0",
        3,
        ".psv",
        "",
        b"Subject: p\n\nx\n",
    );
    for no_color in [None, Some("1")] {
        for args in [
            &["list"][..],
            &["stats"][..],
            &["-C", p(&config), "runners"][..],
        ] {
            let mut c = env.cmd();
            match no_color {
                Some(v) => c.env("NO_COLOR", v),
                None => c.env_remove("NO_COLOR"),
            };
            let out = run_with(c, args, b"");
            ok(&out);
            assert!(!stdout(&out).is_empty(), "{args:?}");
            assert!(
                !stdout(&out).contains("\x1b["),
                "{args:?} NO_COLOR={no_color:?}: {:?}",
                stdout(&out)
            );
            assert!(!stderr(&out).contains("\x1b["), "{args:?}");
            // No borders either.
            for ch in ['│', '─', '┌', '╭', '═'] {
                assert!(!stdout(&out).contains(ch), "{args:?}: {}", stdout(&out));
            }
        }
    }
}
