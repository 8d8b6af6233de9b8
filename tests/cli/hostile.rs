//! Hostile input: path tricks in names, metadata bombs, odd messages, and Mailman
//! pickles that would run code if they were loaded with Python's `pickle`. What a user
//! relies on: qtool refuses with a clear error and the right exit code, in bounded time
//! and memory, runs nothing, and touches nothing outside its queue directory.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::common::*;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// qtool under a 1 GiB address-space limit: a memory blow-up makes it die by a signal
/// (allocation failure) instead of eating the machine, and the test sees no exit code.
fn capped(env: &Env) -> std::process::Command {
    qtool_after(env, "ulimit -v 1048576")
}

/// Asserts that qtool refused with `want` (not a signal, not a panic) and said why.
fn assert_refused(out: &std::process::Output, want: &[i32], what: &str) {
    let err = stderr(out);
    assert!(
        out.status.code().is_some_and(|c| want.contains(&c)),
        "{what}: expected exit {want:?}, got {:?} (a signal if None): {err}",
        out.status
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(
        !err.is_empty() && err.lines().all(|l| l.starts_with("qtool: ")),
        "{what}: not a qtool error message: {err:?}"
    );
}

/// A snapshot of every file under `dir`: relative path, and content (or link target).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for item in rd {
            let path = item.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(base).unwrap().to_path_buf();
            if meta.is_dir() {
                out.push((rel, b"<dir>".to_vec()));
                walk(base, &path, out);
            } else if meta.file_type().is_symlink() {
                out.push((
                    rel,
                    fs::read_link(&path).unwrap().into_os_string().into_vec(),
                ));
            } else {
                out.push((rel, fs::read(&path).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------
// Names

#[test]
fn filebases_with_path_tricks_are_refused_and_nothing_outside_is_touched() {
    let env = Env::new();
    // Sentinels outside the queue directory, where `..` tricks would land.
    fs::create_dir_all(env.root().join("etc")).unwrap();
    fs::write(env.root().join("etc/passwd"), b"root:x:0:0\n").unwrap();
    fs::write(env.root().join("x"), b"sentinel\n").unwrap();
    fs::write(
        env.root().join("x.pck"),
        native_entry("a: 1\n", b"outside\n"),
    )
    .unwrap();
    let fb = env.enqueue("in", SEED, &[]);
    let before = snapshot(env.root());

    let short = format!("1.0+{}", &HEX[..39]);
    let upper = format!("1.0+{}", HEX.to_uppercase());
    let with_slash = format!("1.0+{HEX}/../../x");
    let with_nl = format!("{fb}\n");
    let with_tab = format!("1.0\t+{HEX}");
    let long_time = format!("{}+{HEX}", "9".repeat(21));
    let cases: Vec<Vec<&str>> = vec![
        vec!["dequeue", "in", "../../etc/passwd"],
        vec!["dequeue", "in", "../x"],
        vec!["dequeue", "in", &with_nl],
        vec!["dump", "in", "../x"],
        vec!["dump", "in", "../../etc/passwd"],
        vec!["dump", "in", &short],
        vec!["dump", "in", &upper],
        vec!["dump", "in", &with_slash],
        vec!["dump", "in", &with_tab],
        vec!["dump", "in", &long_time],
        vec!["delete", "in", "../../x"],
        vec!["delete", "in", &fb, "../x"],
        vec!["move", "in", "../x", "--to", "out"],
        vec!["move", "in", &fb, "--to", "../x"],
        vec!["move", "in", &fb, "--to", ".."],
        vec!["move", "in", &fb, "--to", "."],
        vec!["move", "in", &fb, "--to", "in/../../x"],
        vec!["move", "in", &fb, "--to", "a\nb"],
        vec!["unshunt", "../x"],
        vec!["unshunt", "--discard", "../../etc/passwd"],
    ];
    for args in &cases {
        let out = env.run(args, b"");
        assert_refused(&out, &[2, 65], &format!("{args:?}"));
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
    assert_eq!(snapshot(env.root()), before, "something changed on disk");
    assert_eq!(env.files("in"), vec![format!("{fb}.pck")]);
}

#[test]
fn queue_names_with_control_characters_or_dots_never_reach_the_disk() {
    let env = Env::new();
    fs::write(env.root().join("x"), b"sentinel\n").unwrap();
    let fb = env.enqueue("in", SEED, &[]);
    let before = snapshot(env.root());
    let fbq = format!("1.0+{HEX}");
    for name in [
        "a\nb",
        "a\tb",
        ".hidden",
        "..",
        "../x",
        "in/../../x",
        "a b",
        "a\u{7f}",
    ] {
        let cases: Vec<Vec<&str>> = vec![
            vec!["enqueue", name],
            vec!["dequeue", name],
            vec!["dump", name, &fbq],
            vec!["run-once", name, "--discard"],
            vec!["run-once", "in", "--forward", name],
            vec!["list", name],
            vec!["stats", name],
            vec!["recover", name],
            vec!["delete", name, &fbq],
            vec!["move", name, &fbq, "--to", "out"],
            vec!["move", "in", &fb, "--to", name],
        ];
        for args in cases {
            let out = env.run(&args, SEED);
            assert_refused(&out, &[2], &format!("{args:?}"));
        }
    }
    assert_eq!(snapshot(env.root()), before, "something changed on disk");
}

#[test]
fn dump_of_a_file_that_is_not_an_entry_does_not_print_it() {
    let env = Env::new();
    let secret = env.root().join("secret");
    fs::write(&secret, b"password: hunter2\nroot:x:0:0\n").unwrap();
    let out = env.run(&["dump", p(&secret)], b"");
    assert_refused(&out, &[65], "dump of a non-entry");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// Metadata bombs and deep nesting

/// The classic billion laughs: 9 levels of 9 references each.
fn billion_laughs_lists() -> String {
    let mut text = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(", ");
        text.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    text
}

/// The same with mappings.
fn billion_laughs_maps() -> String {
    let mut text = String::from("a: &a {");
    text.push_str(
        &(0..9)
            .map(|i| format!("k{i}: lol"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    text.push_str("}\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for w in names.windows(2) {
        let refs = (0..9)
            .map(|i| format!("k{i}: *{}", w[0]))
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!("{}: &{} {{{refs}}}\n", w[1], w[1]));
    }
    text
}

/// A bomb inside one flow value, for `-m KEY=VALUE`.
fn billion_laughs_flow() -> String {
    let mut parts = vec!["&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]".to_string()];
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        parts.push(format!(
            "&{} [{}]",
            w[1],
            vec![format!("*{}", w[0]); 9].join(", ")
        ));
    }
    format!("[{}]", parts.join(", "))
}

/// Few aliases, but each names a big string: 729 copies of ~3.9 MB from a 3.9 MB file.
fn big_string_laughs() -> String {
    let mut text = format!("s: &s {}\n", "x".repeat(3_900_000));
    text.push_str(&format!("a: &a [{}]\n", ["*s"; 9].join(", ")));
    text.push_str(&format!("b: &b [{}]\n", ["*a"; 9].join(", ")));
    text.push_str(&format!("c: [{}]\n", ["*b"; 9].join(", ")));
    text
}

#[test]
fn yaml_bombs_in_metadata_are_refused_quickly_and_in_bounded_memory() {
    let env = Env::new();
    let mut files = Vec::new();
    for (name, text) in [
        ("lists.yaml", billion_laughs_lists()),
        ("maps.yaml", billion_laughs_maps()),
    ] {
        let path = env.root().join(name);
        fs::write(&path, text).unwrap();
        files.push(path);
    }
    for path in &files {
        let out = output_within(
            capped(&env),
            &["enqueue", "in", "--meta-file", p(path)],
            SEED,
            20,
        );
        assert_refused(&out, &[65], p(path));
    }
    let flow = format!("x={}", billion_laughs_flow());
    let out = output_within(capped(&env), &["enqueue", "in", "-m", &flow], SEED, 20);
    assert_refused(&out, &[65], "-m bomb");
    // Endless metadata: cut off at the size limit.
    let out = output_within(
        capped(&env),
        &["enqueue", "in", "--meta-file", "/dev/zero"],
        SEED,
        20,
    );
    assert_refused(&out, &[65], "--meta-file /dev/zero");
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
}

#[test]
fn an_alias_bomb_of_big_strings_is_refused_in_bounded_memory() {
    let env = Env::new();
    let path = env.root().join("strings.yaml");
    fs::write(&path, big_string_laughs()).unwrap();
    let out = output_within(
        capped(&env),
        &["enqueue", "in", "--meta-file", p(&path)],
        SEED,
        20,
    );
    assert_refused(&out, &[65], "big-string alias bomb");
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
}

#[test]
fn metadata_that_enqueue_accepts_can_be_read_back() {
    // `\0` escapes grow when written back (2 bytes in, 4 or 6 out): around the 4 MiB
    // read limit, what enqueue writes must still be readable, or be refused up front.
    for nuls in [1_000_000, 1_200_000, 2_000_000] {
        let env = Env::new();
        let path = env.root().join("nuls.yaml");
        fs::write(&path, format!("x: \"{}\"\n", "\\0".repeat(nuls))).unwrap();
        let out = env.run(&["enqueue", "in", "--meta-file", p(&path)], SEED);
        match code(&out) {
            // Refusing it is fine...
            Some(65) => assert!(env.files("in").is_empty(), "{:?}", env.files("in")),
            // ...but an accepted entry must be readable.
            Some(0) => {
                let fb = stdout(&out).trim().to_string();
                let out = env.run(&["dump", "in", &fb, "--format", "json"], b"");
                assert_eq!(code(&out), Some(0), "{nuls}: {}", stderr(&out));
                let out = env.run(&["run-once", "in", "--forward", "out"], b"");
                assert_eq!(code(&out), Some(0), "{nuls}: {}", stderr(&out));
                assert!(
                    env.files("bad").is_empty(),
                    "{nuls}: {:?}",
                    env.files("bad")
                );
                assert_eq!(entries(&env, "out", ".pck").len(), 1);
            }
            other => panic!("{nuls}: enqueue exited {other:?}: {}", stderr(&out)),
        }
    }
}

#[test]
fn metadata_nested_deeper_than_64_is_refused_without_a_crash() {
    let env = Env::new();
    let mut cases: Vec<(String, String)> = Vec::new();
    // Compact block sequences: `- - - ... v`.
    cases.push((
        "compact-seq".into(),
        format!("x: \n  {}v\n", "- ".repeat(100)),
    ));
    // Indented block sequences.
    let mut seq = String::from("x:\n");
    for i in 0..100 {
        seq.push_str(&format!("{}-\n", "  ".repeat(i + 1)));
    }
    seq.push_str(&format!("{}v\n", "  ".repeat(102)));
    cases.push(("block-seq".into(), seq));
    // Flow inside block, mixed brackets.
    cases.push((
        "mixed-flow".into(),
        format!("x: {}1{}\n", "[{a: ".repeat(50), "}]".repeat(50)),
    ));
    // Very deep flow nesting: must not overflow the stack.
    cases.push((
        "flow-100k".into(),
        format!("x: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
    ));
    cases.push((
        "compact-100k".into(),
        format!("x:\n  {}v\n", "- ".repeat(100_000)),
    ));
    // Explicit keys nest too.
    cases.push((
        "explicit-keys".into(),
        format!("{}a\n", "? ".repeat(10_000)),
    ));
    // Aliases add depth that the text does not show: 40 brackets + 40 alias levels.
    let mut aliased = format!("a0: &a0 {}1{}\n", "[".repeat(40), "]".repeat(40));
    for i in 1..40 {
        aliased.push_str(&format!("a{i}: &a{i} [*a{}]\n", i - 1));
    }
    cases.push(("aliased-depth".into(), aliased));

    for (name, text) in &cases {
        let path = env.root().join(format!("{name}.yaml"));
        fs::write(&path, text).unwrap();
        let out = output_within(
            capped(&env),
            &["enqueue", "in", "--meta-file", p(&path)],
            SEED,
            20,
        );
        assert_refused(&out, &[65], name);
    }
    let deep = format!("x={}", "[".repeat(100_000));
    let out = output_within(capped(&env), &["enqueue", "in", "-m", &deep], SEED, 20);
    assert_refused(&out, &[65], "-m 100k brackets");
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
}

#[test]
fn strings_full_of_brackets_are_strings_not_nesting() {
    let env = Env::new();
    let brackets = "[".repeat(70);
    let file = env.root().join("m.yaml");
    fs::write(
        &file,
        format!(
            "subject: \"{brackets}\"\nnote: |\n{}indented text\n",
            " ".repeat(300)
        ),
    )
    .unwrap();
    let out = env.run(
        &[
            "enqueue",
            "in",
            "--meta-file",
            p(&file),
            "-m",
            &format!("other='{brackets}'"),
        ],
        SEED,
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fb = stdout(&out).trim().to_string();
    let out = env.run(&["dump", "in", &fb, "--format", "json"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["metadata"]["subject"].as_str(), Some(brackets.as_str()));
    assert_eq!(doc["metadata"]["other"].as_str(), Some(brackets.as_str()));
    assert_eq!(
        doc["metadata"]["note"].as_str(),
        Some("indented text\n"),
        "{doc}"
    );
}

#[test]
fn metadata_strings_with_control_characters_survive_enqueue() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &["-m", r#"x="a\x7fb""#, "-m", r#"y="a\x85b""#]);
    let out = env.run(&["dump", "in", &fb, "--format", "json"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["metadata"]["x"].as_str(), Some("a\u{7f}b"));
    assert_eq!(doc["metadata"]["y"].as_str(), Some("a\u{85}b"));
    let out = env.run(&["run-once", "in", "--forward", "out"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
}

#[test]
fn hostile_native_entries_go_to_bad_and_the_runner_goes_on() {
    let env = Env::new();
    let pwned = std::env::temp_dir().join(unique_name("PWNED"));
    let mut big_meta = b"---\nx: ".to_vec();
    big_meta.extend(std::iter::repeat_n(b'a', 5 << 20));
    big_meta.extend_from_slice(b"\n...\n");
    big_meta.extend_from_slice(SEED);
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("list bomb", native_entry(&billion_laughs_lists(), SEED)),
        ("map bomb", native_entry(&billion_laughs_maps(), SEED)),
        (
            "deep flow",
            native_entry(
                &format!("x: {}{}\n", "[".repeat(100), "]".repeat(100)),
                SEED,
            ),
        ),
        (
            "deep compact",
            native_entry(&format!("x:\n  {}v\n", "- ".repeat(10_000)), SEED),
        ),
        (
            "local python tag",
            native_entry(
                &format!(
                    "x: !python/object/apply:os.system [\"touch {}\"]\n",
                    pwned.display()
                ),
                SEED,
            ),
        ),
        ("metadata over 4 MiB", big_meta),
        ("no end marker", b"---\na: 1\n".to_vec()),
        ("not a mapping", native_entry("- a\n- b\n", SEED)),
        ("key not a string", native_entry("[a]: 1\n", SEED)),
        ("not UTF-8", cat(&[b"---\na: \"\xff\"\n...\n", SEED])),
    ];
    let mut names = Vec::new();
    for (i, (what, bytes)) in hostile.iter().enumerate() {
        let fb = format!("1000.{}+{HEX}", i + 1);
        let path = put_file(&env, "in", &format!("{fb}.pck"), bytes);
        // Read directly: refused, in bounded time and memory.
        let out = output_within(capped(&env), &["dump", p(&path)], b"", 20);
        assert_refused(&out, &[65], what);
        names.push(fb);
    }
    let good = env.enqueue("in", SEED, &[]);
    let out = output_within(
        capped(&env),
        &["run-once", "in", "--forward", "out"],
        b"",
        60,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let mut want: Vec<String> = names.iter().map(|fb| format!("{fb}.psv")).collect();
    want.sort();
    assert_eq!(env.files("bad"), want);
    for fb in &names {
        assert!(err.contains(fb.as_str()), "{fb} not named: {err}");
    }
    assert_eq!(entries(&env, "out", ".pck").len(), 1, "{good}");
    assert_eq!(env.run(&["dequeue", "out"], b"").stdout, SEED);
    assert!(!pwned.exists(), "{} was created", pwned.display());
    // PyYAML's `!!python/object/apply` tag is never acted on: qtool reads the value as
    // plain data (or refuses it) and runs nothing, even through an exec handler.
    let fb = format!("1001.1+{HEX}");
    let tagged = format!(
        "x: !!python/object/apply:os.system [\"touch {}\"]\n",
        pwned.display()
    );
    let path = put_file(
        &env,
        "in",
        &format!("{fb}.pck"),
        &native_entry(&tagged, SEED),
    );
    let out = env.run(&["dump", p(&path)], b"");
    assert!(matches!(code(&out), Some(0 | 65)), "{}", stderr(&out));
    let h = script(
        env.root(),
        "handler",
        "cat \"$QTOOL_METADATA\" >/dev/null\nexit 0",
    );
    let out = run_bounded(&env, &["run-once", "in", "--", p(&h)], 30);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert!(!pwned.exists(), "{} was created", pwned.display());
    // Listing the preserved entries does not choke on them either.
    for args in [vec!["list", "bad"], vec!["stats"]] {
        let out = output_within(capped(&env), &args, b"", 30);
        assert_eq!(code(&out), Some(0), "{args:?}: {}", stderr(&out));
    }
}

// ---------------------------------------------------------------------------------------
// Odd messages

fn sha1_file(path: &Path) -> (Vec<u8>, u64) {
    let mut f = fs::File::open(path).unwrap();
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    (h.finalize().to_vec(), n)
}

#[test]
fn a_100_mb_header_line_passes_through_byte_for_byte() {
    let env = Env::new();
    let src = env.root().join("long.eml");
    {
        let mut f = std::io::BufWriter::new(fs::File::create(&src).unwrap());
        f.write_all(b"From: a@example.com\nSubject: ").unwrap();
        let chunk: Vec<u8> = (0..1 << 20).map(|i| b'a' + (i % 26) as u8).collect();
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\n\nbody\n").unwrap();
        f.flush().unwrap();
    }
    let want = sha1_file(&src);
    let out = output_within(capped(&env), &["enqueue", "in", p(&src)], b"", 120);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fb = stdout(&out).trim().to_string();

    // Listing reads only the head of the message.
    let out = output_within(capped(&env), &["list", "in", "--format", "json"], b"", 60);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        out.stdout.len() < (1 << 20),
        "list printed {} bytes",
        out.stdout.len()
    );

    let out = output_within(
        capped(&env),
        &["run-once", "in", "--forward", "out"],
        b"",
        120,
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{fb}: {:?}", env.files("in"));
    let dest = env.root().join("got.eml");
    let out = output_within(capped(&env), &["dequeue", "out", "-o", p(&dest)], b"", 120);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(sha1_file(&dest) == want, "the message changed on the way");
}

/// Messages that are not what a mail parser expects.
fn odd_messages() -> Vec<(&'static str, Vec<u8>)> {
    let mut all_bytes: Vec<u8> = (0u8..=255).collect();
    all_bytes.extend_from_slice(b"\n");
    vec![
        (
            "no separator",
            b"Subject: x\nX-A: b\nbody line without a blank line".to_vec(),
        ),
        ("no headers", b"just some text\nand more\n".to_vec()),
        ("one newline", b"\n".to_vec()),
        ("one byte", b"x".to_vec()),
        ("NUL bytes", b"Subject: \0nul\0\n\n\0\0\0body\0".to_vec()),
        (
            "invalid UTF-8",
            b"Subject: \xc3\x28 \xff\xfe\n\n\x80\x81 \xed\xa0\x80\n".to_vec(),
        ),
        (
            "CRLF",
            b"Subject: crlf\r\nTo: b@example.com\r\n\r\nline\r\nline\r\n".to_vec(),
        ),
        ("lone CR", b"Subject: cr\rX: y\r\rbody\r".to_vec()),
        (
            "entry markers",
            b"---\nlistid: evil\n...\n---\n...\n".to_vec(),
        ),
        (
            "pickle bytes",
            b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00.".to_vec(),
        ),
        (
            "pickle opcode text",
            b"cposix\nsystem\n(S'true'\ntR.".to_vec(),
        ),
        (
            "mbox From line",
            b"From someone Mon Jan  1 00:00:00 2024\nSubject: x\n\n>From here\n".to_vec(),
        ),
        ("every byte", all_bytes),
    ]
}

fn round_trip_odd_messages(env: &Env, config: Option<&Path>) {
    let mut paths = Vec::new();
    for (i, (_, msg)) in odd_messages().iter().enumerate() {
        let path = env.root().join(format!("odd{i:02}.eml"));
        fs::write(&path, msg).unwrap();
        paths.push(path);
    }
    let mut base: Vec<&str> = Vec::new();
    if let Some(c) = config {
        base.extend(["-C", p(c)]);
    }
    let with =
        |args: &[&str]| -> Vec<String> { base.iter().chain(args).map(|s| s.to_string()).collect() };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        env.run(&refs, b"")
    };

    // enqueue -> dequeue, by name.
    let mut args = with(&["enqueue", "in"]);
    args.extend(paths.iter().map(|p| p.to_str().unwrap().to_string()));
    let out = run(args.clone());
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fbs: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(fbs.len(), paths.len());
    for ((what, msg), fb) in odd_messages().iter().zip(&fbs) {
        let dest = env.root().join("out.eml");
        let out = run(with(&["dequeue", "in", fb, "-o", p(&dest)]));
        assert_eq!(code(&out), Some(0), "{what}: {}", stderr(&out));
        assert_eq!(&fs::read(&dest).unwrap(), msg, "{what} changed (dequeue)");
    }

    // enqueue -> forward -> dequeue, in FIFO order.
    let out = run(args);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let out = run(with(&["run-once", "in", "--forward", "out"]));
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
    for (what, msg) in odd_messages() {
        let out = run(with(&["dequeue", "out"]));
        assert_eq!(code(&out), Some(0), "{what}: {}", stderr(&out));
        assert_eq!(out.stdout, msg, "{what} changed (forward)");
    }
}

#[test]
fn odd_messages_pass_through_byte_for_byte() {
    let env = Env::new();
    round_trip_odd_messages(&env, None);
}

#[test]
fn odd_messages_pass_through_mailman_format_byte_for_byte() {
    let env = Env::new();
    let cfg = env.config("queue_format: mailman\n");
    round_trip_odd_messages(&env, Some(&cfg));
}

// ---------------------------------------------------------------------------------------
// Modes under a umask

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn files_and_directories_follow_the_umask() {
    let env = Env::new();
    let umask = |args: &[&str], stdin: &[u8]| {
        output_within(qtool_after(&env, "umask 027"), args, stdin, 60)
    };
    let out = umask(&["enqueue", "in"], SEED);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fb = stdout(&out).trim().to_string();
    assert_eq!(mode(&env.queue("in")), 0o750, "new queue directory");
    assert_eq!(
        mode(&env.queue("in").join(format!("{fb}.pck"))),
        0o640,
        "entry"
    );

    // Written by a runner: forwarded, shunted, preserved.
    let out = umask(&["run-once", "in", "--forward", "out"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fwd = entries(&env, "out", ".pck");
    assert_eq!(fwd.len(), 1);
    assert_eq!(mode(&env.queue("out")), 0o750);
    assert_eq!(
        mode(&env.queue("out").join(format!("{}.pck", fwd[0]))),
        0o640
    );

    let d = env.root().display().to_string();
    let h = script(
        env.root(),
        "handler",
        &format!("stat -c %a \"$QTOOL_METADATA\" > '{d}/metamode'\nexit 3"),
    );
    put_file(&env, "out", &format!("1000.1+{HEX}.pck"), b"garbage\n");
    let out = umask(&["run-once", "out", "--", p(&h)], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(env.root().join("metamode"))
            .unwrap()
            .trim(),
        "600",
        "the handler's metadata file"
    );
    let shunted = entries(&env, "shunt", ".pck");
    assert_eq!(shunted.len(), 1);
    assert_eq!(mode(&env.queue("shunt")), 0o750);
    assert_eq!(
        mode(&env.queue("shunt").join(format!("{}.pck", shunted[0]))),
        0o640
    );
    assert_eq!(mode(&env.queue("bad")), 0o750);
}

// ---------------------------------------------------------------------------------------
// Mailman pickles that would run code under Python's pickle

fn binunicode(s: &[u8]) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend_from_slice(&(s.len() as u32).to_le_bytes());
    v.extend_from_slice(s);
    v
}

/// A valid first pickle: the message as a `str` (protocol 2).
fn message_pickle() -> Vec<u8> {
    let mut v = vec![0x80, 2];
    v.extend(binunicode(SEED));
    v.push(b'.');
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Pickles that Python's `pickle.loads` would turn into `touch <pwned>` (checked with
/// python3 when they were written), and malformed ones meant to exhaust memory or the
/// stack, each as a whole Mailman queue file.
fn hostile_pickles(pwned: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let cmd = format!("touch {}", pwned.display()).into_bytes();
    let msg = message_pickle();
    let mut p0 = b"cposix\nsystem\n(S'".to_vec();
    p0.extend_from_slice(&cmd);
    p0.extend_from_slice(b"'\ntR.");

    // Protocol 4: FRAME, SHORT_BINUNICODE x2, STACK_GLOBAL, TUPLE1, REDUCE.
    let mut body = b"\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c".to_vec();
    body.push(cmd.len() as u8);
    body.extend_from_slice(&cmd);
    body.extend_from_slice(b"\x94\x85\x94R\x94.");
    let mut p4 = vec![0x80, 4, 0x95];
    p4.extend_from_slice(&(body.len() as u64).to_le_bytes());
    p4.extend_from_slice(&body);

    let mut meta_reduce = b"(dp0\nVlistid\np1\ncposix\nsystem\n(S'".to_vec();
    meta_reduce.extend_from_slice(&cmd);
    meta_reduce.extend_from_slice(b"'\ntRs.");

    let mut inst = b"(S'".to_vec();
    inst.extend_from_slice(&cmd);
    inst.extend_from_slice(b"'\nios\nsystem\n.");

    let mut obj = b"\x80\x01(cposix\nsystem\nS'".to_vec();
    obj.extend_from_slice(&cmd);
    obj.extend_from_slice(b"'\no.");

    let mut eval = b"c__builtin__\neval\n(S'__import__(\"os\").system(\"".to_vec();
    eval.extend_from_slice(&cmd);
    eval.extend_from_slice(b"\")'\ntR.");

    let mut p2 = b"\x80\x02cposix\nsystem\nq\x00".to_vec();
    p2.extend(binunicode(&cmd));
    p2.extend_from_slice(b"q\x01\x85q\x02Rq\x03.");

    let reconstructor =
        b"\x80\x02ccopyreg\n_reconstructor\nq\x00cposix\nsystem\ncbuiltins\nobject\nN\x87R."
            .to_vec();

    let mut truncated = vec![0x80, 4, 0x95];
    truncated.extend_from_slice(&1000u64.to_le_bytes());
    truncated.extend_from_slice(b"\x8c\x05posix");

    // {'a': L30} with L(i+1) = [L(i), L(i)]: 2^30 leaves through shared references.
    let mut bomb = b"\x80\x02}q\x00X\x01\x00\x00\x00a]q\x01X\x03\x00\x00\x00lola0".to_vec();
    for i in 1..=30u8 {
        bomb.extend_from_slice(&[b']', b'q', i + 1, b'(', b'h', i, b'h', i, b'e', b'0']);
    }
    bomb.extend_from_slice(&[b'h', 31, b's', b'.']);

    let n = 100_000;
    let mut deep = b"\x80\x02}X\x01\x00\x00\x00a".to_vec();
    deep.extend(std::iter::repeat_n(b']', n));
    deep.extend(std::iter::repeat_n(b'a', n - 1));
    deep.extend_from_slice(b"s.");

    let mut huge8 = vec![0x80, 4, 0x8d];
    huge8.extend_from_slice(&0x7fff_ffff_ffff_ffffu64.to_le_bytes());
    huge8.extend_from_slice(b"abc.");

    vec![
        ("protocol 0 GLOBAL posix.system + REDUCE", p0),
        ("protocol 4 STACK_GLOBAL in a FRAME", p4),
        ("REDUCE in the metadata pickle", cat(&[&msg, &meta_reduce])),
        ("INST posix.system", cat(&[&msg, &inst])),
        ("OBJ posix.system", cat(&[&msg, &obj])),
        ("__builtin__.eval", eval),
        ("protocol 2 posix.system", cat(&[&msg, &p2])),
        (
            "copyreg._reconstructor of posix.system",
            cat(&[&msg, &reconstructor]),
        ),
        ("truncated FRAME", truncated),
        ("message pickle ends early", msg[..msg.len() - 5].to_vec()),
        ("metadata pickle missing", msg.clone()),
        (
            "list containing itself",
            b"\x80\x02]q\x00h\x00a.\x80\x02}.".to_vec(),
        ),
        (
            "dict containing itself",
            cat(&[&msg, b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s."]),
        ),
        ("shared-reference bomb", cat(&[&msg, &bomb])),
        ("100000 nested lists", cat(&[&msg, &deep])),
        ("BINPERSID", cat(&[&msg, b"\x80\x02X\x01\x00\x00\x00aQ."])),
        ("EXT1", cat(&[&msg, b"\x80\x02\x82\x01."])),
        ("BINUNICODE8 of 2^63 bytes", huge8),
        (
            "LONG4 of 2 GB",
            cat(&[&msg, b"\x80\x02\x8b\xff\xff\xff\x7f\x00."]),
        ),
        (
            "BINBYTES of 4 GB",
            b"\x80\x03B\xff\xff\xff\xffabc.".to_vec(),
        ),
        ("BINGET of an empty memo", cat(&[&msg, b"\x80\x02h\x05."])),
        ("stack underflow", cat(&[&msg, b"\x80\x02s."])),
    ]
}

#[test]
fn hostile_pickles_are_refused_by_dump_and_run_nothing() {
    let env = Env::new();
    let pwned = std::env::temp_dir().join(unique_name("PWNED"));
    for (i, (what, bytes)) in hostile_pickles(&pwned).iter().enumerate() {
        let path = env.root().join(format!("hostile{i:02}.pck"));
        fs::write(&path, bytes).unwrap();
        for args in [
            vec!["dump", p(&path)],
            vec!["dump", p(&path), "--message", "--format", "json"],
        ] {
            let out = output_within(capped(&env), &args, b"", 20);
            assert_refused(&out, &[65], what);
            assert!(out.stdout.is_empty(), "{what}: {}", stdout(&out));
        }
        assert!(!pwned.exists(), "{what}: {} was created", pwned.display());
    }
}

#[test]
fn hostile_pickles_in_a_queue_go_to_bad_and_run_nothing() {
    let env = Env::new();
    let pwned = std::env::temp_dir().join(unique_name("PWNED"));
    let hostile = hostile_pickles(&pwned);
    let mut names = Vec::new();
    for (i, (_, bytes)) in hostile.iter().enumerate() {
        let fb = format!("1000.{}+{HEX}", i + 1);
        put_file(&env, "in", &format!("{fb}.pck"), bytes);
        names.push(fb);
    }
    let good = env.enqueue("in", SEED, &[]);
    // Looking at them first: listings and stats survive them.
    for args in [
        vec!["list", "in"],
        vec!["list", "in", "--format", "json"],
        vec!["stats"],
    ] {
        let out = output_within(capped(&env), &args, b"", 30);
        assert_eq!(code(&out), Some(0), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    // Named by dequeue: refused.
    let out = output_within(capped(&env), &["dequeue", "in", &names[0]], b"", 20);
    assert_refused(&out, &[65], "dequeue of a hostile pickle");
    assert!(out.stdout.is_empty());

    let out = output_within(
        capped(&env),
        &["run-once", "in", "--forward", "out"],
        b"",
        60,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let mut want: Vec<String> = names.iter().map(|fb| format!("{fb}.psv")).collect();
    want.sort();
    assert_eq!(env.files("bad"), want);
    for ((what, bytes), fb) in hostile.iter().zip(&names) {
        assert_eq!(
            &fs::read(env.queue("bad").join(format!("{fb}.psv"))).unwrap(),
            bytes,
            "{what}: preserved entry changed"
        );
    }
    assert_eq!(entries(&env, "out", ".pck").len(), 1, "{good}");
    assert_eq!(env.run(&["dequeue", "out"], b"").stdout, SEED);
    assert!(!pwned.exists(), "{} was created", pwned.display());
}
