//! `qtool run-once` with each handler (discard, forward, exec), the exec protocol (stdin,
//! environment, metadata file, exit 0/75/other), shunting, lists and languages, handlers
//! from the config, timeouts, and what a pass does with files that are not good entries.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;

use crate::common::*;

fn run_once(env: &Env, args: &[&str]) -> std::process::Output {
    let mut all = vec!["run-once"];
    all.extend_from_slice(args);
    run_bounded(env, &all, 30)
}

fn ok(out: &std::process::Output) {
    assert_eq!(code(out), Some(0), "stderr: {}", stderr(out));
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The only entry (`.pck`) of a queue.
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

#[test]
fn discard_removes_every_entry() {
    let env = Env::new();
    for i in 0..3 {
        env.enqueue("in", format!("Subject: {i}\n\nx\n").as_bytes(), &[]);
    }
    let out = run_once(&env, &["in", "--discard"]);
    ok(&out);
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert!(env.files("shunt").is_empty());
    assert!(env.files("bad").is_empty());
}

#[test]
fn run_once_on_an_empty_or_missing_queue_succeeds() {
    let env = Env::new();
    ok(&run_once(&env, &["in", "--discard"]));
    assert!(env.files("in").is_empty());
}

#[test]
fn forward_moves_entries_with_message_and_metadata_in_fifo_order() {
    let env = Env::new();
    let msgs: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let mut m = format!("Subject: {i}\n\nbody ").into_bytes();
            m.extend_from_slice(b"\xff\x00 ");
            m.extend_from_slice(format!("{i}\n").as_bytes());
            m
        })
        .collect();
    for m in &msgs {
        env.enqueue("in", m, &["-m", "listid=test.example.com", "-m", "foo=yes"]);
    }
    ok(&run_once(&env, &["in", "--forward", "out"]));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert_eq!(entries(&env, "out", ".pck").len(), 3);
    for m in &msgs {
        let meta = env.root().join("m.yaml");
        let out = env.run(&["dequeue", "out", "--meta-out", p(&meta)], b"");
        ok(&out);
        assert_eq!(&out.stdout, m);
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&fs::read_to_string(&meta).unwrap()).unwrap();
        assert_eq!(doc["foo"].as_str(), Some("yes"));
        assert_eq!(doc["listid"].as_str(), Some("test.example.com"));
        assert_eq!(doc["lang"].as_str(), Some("en"));
    }
}

#[test]
fn exec_handler_gets_message_environment_and_metadata_file() {
    let env = Env::new();
    let d = env.root().display().to_string();
    let h = script(
        env.root(),
        "handler",
        &format!(
            "cat > '{d}/stdin.bin'\n\
             printf '%s' \"$QTOOL_QUEUE\" > '{d}/queue'\n\
             printf '%s' \"$QTOOL_FILEBASE\" > '{d}/filebase'\n\
             printf '%s' \"$QTOOL_METADATA\" > '{d}/metapath'\n\
             cat \"$QTOOL_METADATA\" > '{d}/meta.yaml'\n\
             for a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{d}/args'\n\
             exit 0"
        ),
    );
    let mut msg = b"From: a@example.com\nSubject: binary\n\n".to_vec();
    msg.extend_from_slice(b"\x00\x01\xfe\xff\r\n\xc3\x28 end");
    let fb = env.enqueue(
        "in",
        &msg,
        &[
            "-m",
            "listid=test.example.com",
            "-m",
            "foo=yes",
            "-m",
            "n=3",
        ],
    );
    ok(&run_once(
        &env,
        &["in", "--", p(&h), "one", "two words", ""],
    ));

    assert_eq!(fs::read(env.root().join("stdin.bin")).unwrap(), msg);
    assert_eq!(fs::read_to_string(env.root().join("queue")).unwrap(), "in");
    assert_eq!(fs::read_to_string(env.root().join("filebase")).unwrap(), fb);
    assert_eq!(
        fs::read_to_string(env.root().join("args")).unwrap(),
        "one\ntwo words\n\n",
        "arguments are passed as given, without a shell"
    );
    let meta = fs::read_to_string(env.root().join("meta.yaml")).unwrap();
    assert!(meta.lines().any(|l| l == "lang: en"), "{meta}");
    assert!(
        !meta.lines().any(|l| l == "---" || l == "..."),
        "no document markers: {meta}"
    );
    let doc: serde_yaml::Value = serde_yaml::from_str(&meta).expect("metadata file is YAML");
    assert_eq!(doc["listid"].as_str(), Some("test.example.com"), "{meta}");
    assert_eq!(doc["foo"].as_str(), Some("yes"), "{meta}");
    assert_eq!(doc["n"].as_i64(), Some(3), "{meta}");
    assert_eq!(doc["version"].as_i64(), Some(3), "{meta}");
    // Done: the entry is gone, and so is the private metadata file.
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert!(env.files("shunt").is_empty());
    let metapath = fs::read_to_string(env.root().join("metapath")).unwrap();
    assert!(!Path::new(&metapath).exists(), "{metapath} left behind");
}

#[test]
fn exit_75_keeps_the_entry_with_the_metadata_the_handler_appended() {
    let env = Env::new();
    let d = env.root().display().to_string();
    let h = script(
        env.root(),
        "handler",
        &format!(
            "echo run >> '{d}/runs'\n\
             echo 'tries: 1' >> \"$QTOOL_METADATA\"\n\
             echo 'note: \"try later\"' >> \"$QTOOL_METADATA\"\n\
             exit 75"
        ),
    );
    let fb = env.enqueue("in", SEED, &["-m", "listid=test.example.com"]);
    let received = dump_value(&dump(&env, "in", &fb, &["--all"]), "received_time");
    assert!(received.is_some());
    let out = run_once(&env, &["in", "--", p(&h)]);
    ok(&out);
    // One pass: the handler ran once, the kept entry is still there, exactly once.
    assert_eq!(
        fs::read_to_string(env.root().join("runs")).unwrap(),
        "run\n"
    );
    let kept = only_entry(&env, "in");
    assert_eq!(env.files("in").len(), 1, "{:?}", env.files("in"));
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
    let text = dump(&env, "in", &kept, &[]);
    assert_eq!(dump_value(&text, "tries").as_deref(), Some("1"), "{text}");
    assert_eq!(
        dump_value(&text, "note").as_deref(),
        Some("try later"),
        "{text}"
    );
    assert_eq!(
        dump_value(&dump(&env, "in", &kept, &["--all"]), "received_time"),
        received,
        "a kept entry keeps its first arrival time"
    );
    assert_eq!(
        dump_value(&text, "listid").as_deref(),
        Some("test.example.com"),
        "{text}"
    );
    let out = env.run(&["dequeue", "in"], b"");
    assert_eq!(out.stdout, SEED);
}

#[test]
fn appending_a_key_that_is_already_there_updates_it() {
    let env = Env::new();
    let h = script(
        env.root(),
        "handler",
        "n=$(grep -c '^tries:' \"$QTOOL_METADATA\")\n\
         echo \"tries: $((n + 1))\" >> \"$QTOOL_METADATA\"\n\
         echo 'lang: de' >> \"$QTOOL_METADATA\"\n\
         exit 75",
    );
    env.enqueue("in", SEED, &[]);
    ok(&run_once(&env, &["in", "--", p(&h)]));
    ok(&run_once(&env, &["in", "--", p(&h)]));
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
    let kept = only_entry(&env, "in");
    let text = dump(&env, "in", &kept, &[]);
    assert_eq!(dump_value(&text, "tries").as_deref(), Some("2"), "{text}");
}

#[test]
fn failing_handler_shunts_with_whichq_and_reason() {
    let env = Env::new();
    let h = script(
        env.root(),
        "handler",
        "cat > /dev/null\necho 'some noise' >&2\necho boom >&2\nexit 3",
    );
    let fb = env.enqueue("in", SEED, &["-m", "listid=test.example.com"]);
    let received = dump_value(&dump(&env, "in", &fb, &["--all"]), "received_time");
    assert!(received.is_some());
    let out = run_once(&env, &["in", "--", p(&h)]);
    ok(&out);
    assert!(
        stderr(&out).contains(&fb),
        "stderr names the shunted entry: {}",
        stderr(&out)
    );
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let s = only_entry(&env, "shunt");
    let text = dump(&env, "shunt", &s, &[]);
    assert_eq!(dump_value(&text, "whichq").as_deref(), Some("in"), "{text}");
    let reason = dump_value(&text, "shunt_reason").expect("shunt_reason");
    assert!(reason.contains("handler exited 3: boom"), "{reason}");
    assert_eq!(
        dump_value(&dump(&env, "shunt", &s, &["--all"]), "received_time"),
        received,
        "a shunted entry keeps its first arrival time"
    );
    assert_eq!(
        dump_value(&text, "listid").as_deref(),
        Some("test.example.com")
    );
    // The message is shunted as it was.
    let out = env.run(&["dequeue", "shunt"], b"");
    assert_eq!(out.stdout, SEED);
}

#[test]
fn handler_killed_by_a_signal_is_a_failure() {
    let env = Env::new();
    let h = script(env.root(), "handler", "kill -9 $$");
    env.enqueue("in", SEED, &[]);
    ok(&run_once(&env, &["in", "--", p(&h)]));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let (reason, _) = shunted(&env);
    assert!(reason.contains("signal"), "{reason}");
}

#[test]
fn handler_that_cannot_start_is_a_failure() {
    let env = Env::new();
    env.enqueue("in", SEED, &[]);
    let missing = env.root().join("no-such-program");
    let out = run_once(&env, &["in", "--", p(&missing)]);
    ok(&out);
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let (reason, _) = shunted(&env);
    assert!(reason.contains("no-such-program"), "{reason}");
}

#[test]
fn shunt_reason_is_one_line() {
    let env = Env::new();
    let h = script(
        env.root(),
        "handler",
        "printf 'first line\\nlast: line\\n\\n' >&2\nexit 7",
    );
    env.enqueue("in", SEED, &[]);
    ok(&run_once(&env, &["in", "--", p(&h)]));
    let s = only_entry(&env, "shunt");
    let out = env.run(&["dump", "shunt", &s, "--format", "json"], b"");
    ok(&out);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let reason = doc["metadata"]["shunt_reason"].as_str().unwrap();
    assert!(!reason.contains('\n'), "{reason:?}");
    assert!(
        reason.contains("handler exited 7: last: line"),
        "{reason:?}"
    );
}

#[test]
fn unknown_listid_is_shunted_when_lists_are_configured() {
    let env = Env::new();
    let cfg = env.config("lists:\n  test.example.com: {preferred_language: fr}\n");
    env.enqueue(
        "in",
        b"Subject: good\n\nx\n",
        &["-m", "listid=test.example.com"],
    );
    let stray = env.enqueue(
        "in",
        b"Subject: stray\n\ny\n",
        &["-m", "listid=nope.example.com"],
    );
    let out = run_once(&env, &["-C", p(&cfg), "in", "--forward", "out"]);
    ok(&out);
    assert!(stderr(&out).contains(&stray), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let s = only_entry(&env, "shunt");
    let text = dump(&env, "shunt", &s, &[]);
    assert_eq!(
        dump_value(&text, "listid").as_deref(),
        Some("nope.example.com")
    );
    assert_eq!(dump_value(&text, "whichq").as_deref(), Some("in"));
    assert!(dump_value(&text, "shunt_reason").is_some(), "{text}");
    let o = only_entry(&env, "out");
    let text = dump(&env, "out", &o, &[]);
    assert_eq!(
        dump_value(&text, "listid").as_deref(),
        Some("test.example.com")
    );
    assert_eq!(dump_value(&text, "lang").as_deref(), Some("fr"));
}

#[test]
fn lang_comes_from_the_list_else_the_default_language() {
    let env = Env::new();
    let cfg = env.config(
        "default_language: de\n\
         lists:\n  test.example.com: {preferred_language: fr}\n  plain.example.com: {}\n",
    );
    let d = env.root().display().to_string();
    let h = script(
        env.root(),
        "handler",
        &format!("grep '^lang:' \"$QTOOL_METADATA\" >> \"{d}/langs.$QTOOL_FILEBASE\"\nexit 0"),
    );
    let fr = env.enqueue(
        "in",
        b"Subject: 1\n\nx\n",
        &["-m", "listid=test.example.com"],
    );
    let de = env.enqueue(
        "in",
        b"Subject: 2\n\nx\n",
        &["-m", "listid=plain.example.com"],
    );
    ok(&run_once(&env, &["-C", p(&cfg), "in", "--", p(&h)]));
    assert_eq!(
        fs::read_to_string(env.root().join(format!("langs.{fr}"))).unwrap(),
        "lang: fr\n"
    );
    assert_eq!(
        fs::read_to_string(env.root().join(format!("langs.{de}"))).unwrap(),
        "lang: de\n"
    );
    assert!(env.files("in").is_empty());
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
}

#[test]
fn without_a_config_lang_is_en() {
    let env = Env::new();
    let d = env.root().display().to_string();
    let h = script(
        env.root(),
        "handler",
        &format!("grep '^lang:' \"$QTOOL_METADATA\" > '{d}/lang'\nexit 0"),
    );
    env.enqueue("in", SEED, &["-m", "listid=any.example.com"]);
    ok(&run_once(&env, &["in", "--", p(&h)]));
    assert_eq!(
        fs::read_to_string(env.root().join("lang")).unwrap(),
        "lang: en\n"
    );
}

#[test]
fn handler_from_the_config_and_the_command_line_wins() {
    let env = Env::new();
    let cfg = env.config("runners:\n  in: {handler: {forward: out}}\n");
    env.enqueue("in", b"Subject: 1\n\nx\n", &[]);
    ok(&run_once(&env, &["-C", p(&cfg), "in"]));
    assert!(env.files("in").is_empty());
    assert_eq!(entries(&env, "out", ".pck").len(), 1);

    env.enqueue("in", b"Subject: 2\n\nx\n", &[]);
    ok(&run_once(&env, &["-C", p(&cfg), "in", "--discard"]));
    assert!(env.files("in").is_empty());
    assert_eq!(
        entries(&env, "out", ".pck").len(),
        1,
        "--discard on the command line wins over the config's forward"
    );

    env.enqueue("in", b"Subject: 3\n\nx\n", &[]);
    ok(&run_once(
        &env,
        &["-C", p(&cfg), "in", "--forward", "other"],
    ));
    assert_eq!(entries(&env, "out", ".pck").len(), 1);
    assert_eq!(entries(&env, "other", ".pck").len(), 1);
}

#[test]
fn config_from_qtool_config_environment_variable() {
    let env = Env::new();
    let cfg = env.root().join("elsewhere.yaml");
    fs::write(&cfg, "runners:\n  in: {handler: {forward: out}}\n").unwrap();
    env.enqueue("in", SEED, &[]);
    let mut c = env.cmd();
    c.env("QTOOL_CONFIG", &cfg);
    let out = run_with(c, &["run-once", "in"], b"");
    ok(&out);
    assert_eq!(entries(&env, "out", ".pck").len(), 1);
}

#[test]
fn exec_handler_from_the_config() {
    let env = Env::new();
    let d = env.root().display().to_string();
    let h = script(
        env.root(),
        "handler",
        &format!("cat > '{d}/got'\nprintf '%s\\n' \"$@\" > '{d}/args'"),
    );
    let cfg = env.config(&format!(
        "runners:\n  in:\n    handler: {{exec: ['{}', '--flag', 'x y']}}\n",
        h.display()
    ));
    env.enqueue("in", SEED, &[]);
    ok(&run_once(&env, &["-C", p(&cfg), "in"]));
    assert_eq!(fs::read(env.root().join("got")).unwrap(), SEED);
    assert_eq!(
        fs::read_to_string(env.root().join("args")).unwrap(),
        "--flag\nx y\n"
    );
    assert!(env.files("in").is_empty());
}

#[test]
fn handler_past_its_timeout_is_shunted() {
    let env = Env::new();
    let cfg = env.config("runners:\n  in: {timeout: 1s}\n");
    let h = script(env.root(), "handler", "exec sleep 30");
    env.enqueue("in", SEED, &[]);
    let out = run_once(&env, &["-C", p(&cfg), "in", "--", p(&h)]);
    ok(&out);
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let (reason, text) = shunted(&env);
    assert!(reason.contains("timed out"), "{reason}");
    assert_eq!(dump_value(&text, "whichq").as_deref(), Some("in"));
}

#[test]
fn unreadable_entries_go_to_bad_and_the_pass_goes_on() {
    let env = Env::new();
    let junk = format!("1000.1+{HEX}");
    let empty = format!("1000.2+{HEX}");
    let truncated = format!("1000.3+{HEX}");
    let not_yaml = format!("1000.4+{HEX}");
    put_file(
        &env,
        "in",
        &format!("{junk}.pck"),
        b"this is not a queue entry\n",
    );
    put_file(&env, "in", &format!("{empty}.pck"), b"");
    put_file(&env, "in", &format!("{truncated}.pck"), b"---\nfoo: 1\n");
    put_file(
        &env,
        "in",
        &format!("{not_yaml}.pck"),
        b"---\n: : [\n...\nmsg",
    );
    let good = env.enqueue("in", SEED, &["-m", "foo=bar"]);
    let out = run_once(&env, &["in", "--forward", "out"]);
    ok(&out);
    for fb in [&junk, &empty, &truncated, &not_yaml] {
        assert!(
            stderr(&out).contains(fb.as_str()),
            "{fb} not named: {}",
            stderr(&out)
        );
    }
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let mut want = vec![
        format!("{junk}.psv"),
        format!("{empty}.psv"),
        format!("{truncated}.psv"),
        format!("{not_yaml}.psv"),
    ];
    want.sort();
    assert_eq!(env.files("bad"), want);
    // Preserved as they were.
    assert_eq!(
        fs::read(env.queue("bad").join(format!("{junk}.psv"))).unwrap(),
        b"this is not a queue entry\n"
    );
    assert_eq!(
        fs::read(env.queue("bad").join(format!("{truncated}.psv"))).unwrap(),
        b"---\nfoo: 1\n"
    );
    assert_eq!(
        fs::read(env.queue("bad").join(format!("{empty}.psv"))).unwrap(),
        b""
    );
    // The good entry was handled in the same pass.
    let o = only_entry(&env, "out");
    assert_ne!(o, good);
    assert_eq!(env.run(&["dequeue", "out"], b"").stdout, SEED);
    assert!(env.files("shunt").is_empty());
}

#[test]
fn files_that_are_not_entries_are_left_alone() {
    let env = Env::new();
    let readme = put_file(&env, "in", "README", b"do not touch\n");
    let notes = put_file(&env, "in", "notes.pck", b"not an entry name either\n");
    let upper = put_file(
        &env,
        "in",
        &format!("1000.1+{}.pck", HEX.to_uppercase()),
        &native_entry("a: 1\n", b"upper\n"),
    );
    // A temporary file a live writer holds (locked, as qtool's writers do) is being
    // written: never read, never removed. A stale one (nobody holds it) may be cleaned
    // up, but is never taken for an entry either.
    let live = put_file(
        &env,
        "in",
        &format!("1000.2+{HEX}.pck.tmp"),
        &native_entry("a: 1\n", b"being written\n"),
    );
    let held = fs::File::open(&live).unwrap();
    fs2::FileExt::lock_exclusive(&held).unwrap();
    put_file(
        &env,
        "in",
        "1000.3+4242.0.pck.tmp",
        &native_entry("a: 1\n", b"stale\n"),
    );
    env.enqueue("in", SEED, &[]);
    ok(&run_once(&env, &["in", "--forward", "out"]));
    assert_eq!(fs::read(&readme).unwrap(), b"do not touch\n");
    assert_eq!(fs::read(&notes).unwrap(), b"not an entry name either\n");
    assert_eq!(
        fs::read(&upper).unwrap(),
        native_entry("a: 1\n", b"upper\n")
    );
    assert_eq!(
        fs::read(&live).unwrap(),
        native_entry("a: 1\n", b"being written\n"),
        "a temporary file held by its writer was touched"
    );
    drop(held);
    let left: Vec<String> = env
        .files("in")
        .into_iter()
        .filter(|f| f != "1000.3+4242.0.pck.tmp")
        .collect();
    assert_eq!(left.len(), 4, "{left:?}");
    assert_eq!(
        entries(&env, "out", ".pck").len(),
        1,
        "only the real entry moved"
    );
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
    assert_eq!(env.run(&["dequeue", "out"], b"").stdout, SEED);
}

#[test]
fn a_symlink_entry_is_moved_to_bad_as_a_link_and_never_read() {
    let env = Env::new();
    // The target is a perfectly good entry: following the link would forward it.
    let target = env.root().join("target.pck");
    let target_bytes = native_entry("listid: evil.example.com\n", b"Subject: followed\n\nx\n");
    fs::write(&target, &target_bytes).unwrap();
    fs::create_dir_all(env.queue("in")).unwrap();
    let link = format!("1000.1+{HEX}");
    std::os::unix::fs::symlink(&target, env.queue("in").join(format!("{link}.pck"))).unwrap();
    env.enqueue("in", SEED, &[]);

    let out = run_once(&env, &["in", "--forward", "out"]);
    ok(&out);
    assert!(stderr(&out).contains(&link), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert_eq!(env.files("bad"), vec![format!("{link}.psv")]);
    let moved = env.queue("bad").join(format!("{link}.psv"));
    let meta = fs::symlink_metadata(&moved).unwrap();
    assert!(meta.file_type().is_symlink(), "moved as the link itself");
    assert_eq!(fs::read_link(&moved).unwrap(), target);
    assert_eq!(fs::read(&target).unwrap(), target_bytes, "target untouched");
    // Only the real entry reached out.
    assert_eq!(entries(&env, "out", ".pck").len(), 1);
    assert_eq!(env.run(&["dequeue", "out"], b"").stdout, SEED);
}

#[test]
fn a_fifo_named_like_an_entry_goes_to_bad_without_hanging() {
    let env = Env::new();
    fs::create_dir_all(env.queue("in")).unwrap();
    let fifo = format!("1000.1+{HEX}");
    let st = Command::new("mkfifo")
        .arg(env.queue("in").join(format!("{fifo}.pck")))
        .status()
        .unwrap();
    assert!(st.success());
    env.enqueue("in", SEED, &[]);
    let out = run_bounded(&env, &["run-once", "in", "--discard"], 20);
    ok(&out);
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert_eq!(env.files("bad"), vec![format!("{fifo}.psv")]);
    let meta = fs::symlink_metadata(env.queue("bad").join(format!("{fifo}.psv"))).unwrap();
    assert!(meta.file_type().is_fifo());
}

#[test]
fn a_directory_named_like_an_entry_goes_to_bad() {
    let env = Env::new();
    let dir = format!("1000.1+{HEX}");
    fs::create_dir_all(env.queue("in").join(format!("{dir}.pck"))).unwrap();
    env.enqueue("in", SEED, &[]);
    ok(&run_once(&env, &["in", "--discard"]));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert_eq!(env.files("bad"), vec![format!("{dir}.psv")]);
}

#[test]
fn slices_split_the_queue_by_digest() {
    let env = Env::new();
    let low = format!("1000.1+0{}", &HEX[1..]);
    let high = format!("1000.2+f{}", &HEX[1..]);
    put_file(
        &env,
        "in",
        &format!("{low}.pck"),
        &native_entry("a: 1\n", b"low\n"),
    );
    put_file(
        &env,
        "in",
        &format!("{high}.pck"),
        &native_entry("a: 1\n", b"high\n"),
    );
    ok(&run_once(&env, &["in:1:2", "--forward", "upper"]));
    assert_eq!(env.files("in"), vec![format!("{low}.pck")]);
    assert_eq!(env.run(&["dequeue", "upper"], b"").stdout, b"high\n");
    ok(&run_once(&env, &["in:0:2", "--forward", "lower"]));
    assert!(env.files("in").is_empty());
    assert_eq!(env.run(&["dequeue", "lower"], b"").stdout, b"low\n");
}

#[test]
fn when_shunting_fails_the_original_is_preserved_in_bad() {
    let env = Env::new();
    // A plain file where the shunt directory should be: nothing can be shunted.
    fs::create_dir_all(env.queue_dir()).unwrap();
    fs::write(env.queue("shunt"), b"in the way\n").unwrap();
    let h = script(env.root(), "handler", "echo boom >&2\nexit 3");
    let fb = env.enqueue("in", SEED, &["-m", "foo=bar"]);
    let out = run_once(&env, &["in", "--", p(&h)]);
    ok(&out);
    assert!(stderr(&out).contains(&fb), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert_eq!(env.files("bad"), vec![format!("{fb}.psv")]);
    assert_eq!(fs::read(env.queue("shunt")).unwrap(), b"in the way\n");
    let text = dump(&env, "bad", &fb, &["--message"]);
    assert!(text.contains("foo      : bar"), "{text}");
    assert!(text.ends_with(std::str::from_utf8(SEED).unwrap()), "{text}");
}

#[test]
fn a_forward_that_fails_is_shunted_with_the_reason() {
    let env = Env::new();
    fs::create_dir_all(env.queue_dir()).unwrap();
    fs::write(env.queue("out"), b"in the way\n").unwrap();
    let fb = env.enqueue("in", SEED, &[]);
    let out = run_once(&env, &["in", "--forward", "out"]);
    ok(&out);
    assert!(stderr(&out).contains(&fb), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let (reason, text) = shunted(&env);
    assert!(reason.contains("out"), "{reason}");
    assert_eq!(dump_value(&text, "whichq").as_deref(), Some("in"));
}

#[test]
fn quiet_run_once_names_failed_entries_but_prints_no_summary() {
    let env = Env::new();
    let h = script(env.root(), "handler", "echo boom >&2\nexit 3");
    let fb = env.enqueue("in", SEED, &[]);
    let out = run_once(&env, &["-q", "in", "--", p(&h)]);
    ok(&out);
    let err = stderr(&out);
    assert!(err.contains(&fb), "{err}");
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.contains(&fb),
            "-q printed more than the failures: {err}"
        );
    }
}

#[test]
fn a_large_message_reaches_the_handler_whole() {
    let env = Env::new();
    let d = env.root().display().to_string();
    let h = script(env.root(), "handler", &format!("cat > '{d}/got'"));
    let msg: Vec<u8> = b"Subject: big\n\n"
        .iter()
        .copied()
        .chain((0..2_000_000u32).map(|i| (i % 251) as u8))
        .collect();
    env.enqueue("in", &msg, &[]);
    ok(&run_once(&env, &["in", "--", p(&h)]));
    assert!(
        fs::read(env.root().join("got")).unwrap() == msg,
        "message differs"
    );
    assert!(env.files("in").is_empty());
}

#[test]
fn a_handler_that_ignores_a_large_message_does_not_hang_the_runner() {
    let env = Env::new();
    let h = script(env.root(), "handler", "exit 0");
    let msg: Vec<u8> = b"Subject: big\n\n"
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'x', 2_000_000))
        .collect();
    env.enqueue("in", &msg, &[]);
    let out = run_bounded(&env, &["run-once", "in", "--", p(&h)], 20);
    ok(&out);
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
}

#[test]
fn a_handler_with_a_flood_of_stderr_is_shunted_with_its_last_line() {
    let env = Env::new();
    let h = script(
        env.root(),
        "handler",
        "cat > /dev/null\ni=0\nwhile [ $i -lt 5000 ]; do echo \"noise line $i ..............................\" >&2; i=$((i+1)); done\necho final words >&2\nexit 4",
    );
    env.enqueue("in", SEED, &[]);
    let out = run_bounded(&env, &["run-once", "in", "--", p(&h)], 30);
    ok(&out);
    let (reason, _) = shunted(&env);
    assert!(reason.contains("handler exited 4: final words"), "{reason}");
}

#[test]
fn enqueues_never_fail_while_runners_start() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let env = Env::new();
    let msg = env.root().join("m.eml");
    fs::write(&msg, SEED).unwrap();
    let m = msg.to_str().unwrap().to_string();
    fs::create_dir_all(env.queue("in")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Runners starting over and over: each start cleans up dead writers' temp files.
    let runners: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            let qdir = env.queue_dir();
            let root = env.root().to_path_buf();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let out = Command::new(env!("CARGO_BIN_EXE_qtool"))
                        .current_dir(&root)
                        .env_remove("QTOOL_CONFIG")
                        .env_remove("QTOOL_QUEUE_DIR")
                        .args(["-q", "-d"])
                        .arg(&qdir)
                        .args(["run-once", "in", "--forward", "out"])
                        .output()
                        .unwrap();
                    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
                }
            })
        })
        .collect();
    let mut printed = 0;
    let mut failure = None;
    let mut args = vec!["enqueue", "in"];
    args.extend(std::iter::repeat_n(m.as_str(), 30));
    for _ in 0..20 {
        let out = env.run(&args, b"");
        printed += stdout(&out).lines().count();
        if code(&out) != Some(0) {
            failure = Some(format!("exit {:?}: {}", code(&out), stderr(&out)));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in runners {
        r.join().unwrap();
    }
    assert_eq!(failure, None, "an enqueue failed while runners started");
    // Nothing printed was lost.
    let queued = entries(&env, "in", ".pck").len() + entries(&env, "out", ".pck").len();
    assert_eq!(queued, printed);
}

/// The only entry in `shunt`: its `shunt_reason` and its whole dump.
fn shunted(env: &Env) -> (String, String) {
    let s = only_entry(env, "shunt");
    let text = dump(env, "shunt", &s, &[]);
    let reason = dump_value(&text, "shunt_reason").expect("shunt_reason");
    (reason, text)
}
