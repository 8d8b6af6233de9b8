//! `qtool dequeue`: oldest first (by time as a number), a named entry, output to files,
//! an empty queue (exit 1), and an entry that stays queued when its output fails.

use std::fs;

use crate::common::*;

fn msg(i: usize) -> Vec<u8> {
    format!("Subject: number {i}\n\nbody {i}\n").into_bytes()
}

#[test]
fn oldest_entry_comes_out_first() {
    let env = Env::new();
    let fbs: Vec<String> = (1..=3).map(|i| env.enqueue("in", &msg(i), &[])).collect();
    for (i, fb) in fbs.iter().enumerate() {
        let out = env.run(&["dequeue", "in"], b"");
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        assert_eq!(out.stdout, msg(i + 1));
        assert!(
            !env.files("in").contains(&format!("{fb}.pck")),
            "{fb} is still queued after it was dequeued"
        );
    }
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
}

#[test]
fn fifo_order_compares_times_as_numbers() {
    let env = Env::new();
    // As text "1000.1" sorts before "999.9"; as a time it is later.
    put_file(
        &env,
        "in",
        &format!("1000.1+{HEX}.pck"),
        &native_entry("version: 3\n", b"later\n"),
    );
    put_file(
        &env,
        "in",
        &format!("999.9+{HEX}.pck"),
        &native_entry("version: 3\n", b"earlier\n"),
    );
    put_file(
        &env,
        "in",
        &format!("1000.05+{HEX}.pck"),
        &native_entry("version: 3\n", b"middle\n"),
    );
    for want in [&b"earlier\n"[..], b"middle\n", b"later\n"] {
        let out = env.run(&["dequeue", "in"], b"");
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        assert_eq!(out.stdout, want);
    }
}

#[test]
fn a_named_entry_is_taken_out_of_order() {
    let env = Env::new();
    let fbs: Vec<String> = (1..=3).map(|i| env.enqueue("in", &msg(i), &[])).collect();
    let out = env.run(&["dequeue", "in", &fbs[1]], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, msg(2));
    assert_eq!(
        env.files("in"),
        vec![format!("{}.pck", fbs[0]), format!("{}.pck", fbs[2])]
    );
    assert_eq!(env.run(&["dequeue", "in"], b"").stdout, msg(1));
    assert_eq!(env.run(&["dequeue", "in"], b"").stdout, msg(3));
}

#[test]
fn a_named_entry_that_is_not_there_is_an_error_and_changes_nothing() {
    let env = Env::new();
    let fb = env.enqueue("in", &msg(1), &[]);
    let out = env.run(&["dequeue", "in", &format!("1000.5+{HEX}")], b"");
    assert_error(&out, 66);
    assert_eq!(env.files("in"), vec![format!("{fb}.pck")]);
}

#[test]
fn output_and_meta_out_files() {
    let env = Env::new();
    let fb = env.enqueue(
        "in",
        SEED,
        &[
            "-m",
            "listid=test.example.com",
            "-m",
            "foo=yes",
            "-m",
            "n=3",
        ],
    );
    let o = env.root().join("msg.eml");
    let m = env.root().join("meta.yaml");
    let out = env.run(
        &[
            "dequeue",
            "in",
            "-o",
            o.to_str().unwrap(),
            "--meta-out",
            m.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "the message went to -o, not stdout");
    assert_eq!(fs::read(&o).unwrap(), SEED);
    let text = fs::read_to_string(&m).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("meta-out is YAML");
    assert_eq!(doc["listid"].as_str(), Some("test.example.com"), "{text}");
    assert_eq!(doc["foo"].as_str(), Some("yes"), "{text}");
    assert_eq!(doc["n"].as_i64(), Some(3), "{text}");
    assert_eq!(doc["version"].as_i64(), Some(3), "{text}");
    assert_eq!(doc["_parsemsg"].as_bool(), Some(false), "{text}");
    assert!(doc["received_time"].as_f64().is_some(), "{text}");
    assert!(env.files("in").is_empty(), "{fb} still queued");
}

#[test]
fn meta_out_of_a_plaintext_entry_has_original_size() {
    let env = Env::new();
    env.enqueue("in", SEED, &["--plaintext"]);
    let m = env.root().join("meta.yaml");
    let out = env.run(&["dequeue", "in", "--meta-out", m.to_str().unwrap()], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, SEED);
    let doc: serde_yaml::Value = serde_yaml::from_str(&fs::read_to_string(&m).unwrap()).unwrap();
    assert_eq!(doc["_parsemsg"].as_bool(), Some(true));
    assert_eq!(doc["original_size"].as_i64(), Some(SEED.len() as i64));
}

#[test]
fn empty_queue_exits_1() {
    let env = Env::new();
    let out = env.run(&["dequeue", "in"], b"");
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    // A queue that had entries and was drained is empty too.
    env.enqueue("in", SEED, &[]);
    assert_eq!(code(&env.run(&["dequeue", "in"], b"")), Some(0));
    let out = env.run(&["dequeue", "in"], b"");
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn failed_message_output_leaves_the_entry_queued() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &["-m", "foo=bar"]);
    let before = fs::read(env.queue("in").join(format!("{fb}.pck"))).unwrap();
    let out = env.run(&["dequeue", "in", "-o", "/nonexistent-dir/x"], b"");
    assert_ne!(code(&out), Some(0));
    assert_ne!(code(&out), Some(1), "1 means an empty queue");
    assert!(
        stderr(&out).contains("/nonexistent-dir/x"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.files("in"), vec![format!("{fb}.pck")]);
    assert_eq!(
        fs::read(env.queue("in").join(format!("{fb}.pck"))).unwrap(),
        before,
        "the entry is unchanged"
    );
    // And it can be dequeued afterwards.
    let out = env.run(&["dequeue", "in"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, SEED);
}

#[test]
fn failed_meta_output_leaves_the_entry_queued() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &[]);
    let o = env.root().join("msg.eml");
    let out = env.run(
        &[
            "dequeue",
            "in",
            "-o",
            o.to_str().unwrap(),
            "--meta-out",
            "/nonexistent-dir/meta.yaml",
        ],
        b"",
    );
    assert_ne!(code(&out), Some(0));
    assert_ne!(code(&out), Some(1));
    assert_eq!(env.files("in"), vec![format!("{fb}.pck")]);
}

#[test]
fn dequeue_removes_the_entry_from_disk() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &[]);
    let out = env.run(&["dequeue", "in", &fb], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    // Named again: it is gone.
    let out = env.run(&["dequeue", "in", &fb], b"");
    assert_error(&out, 66);
}
