//! `qtool dump`: Mailman's `dump_msgdata` output reproduced byte for byte for every
//! fixture Mailman 3.3.10 wrote (from native entries with the same metadata), and the
//! options: `--all`, `--skip`, `--format`, `--message`, `dump PATH`.

use std::fs;

use crate::common::*;

/// Enqueues the fixture's message with `meta_yaml` (and `args`) and checks that `dump`
/// prints exactly the fixture's `.dump`.
fn check_fixture(name: &str, meta_yaml: &str, args: &[&str]) {
    let env = Env::new();
    let dir = fixtures();
    let expected = fs::read(dir.join(format!("{name}.dump"))).unwrap();
    let message = fs::read(dir.join(format!("{name}.eml"))).unwrap();
    let mf = env.root().join("meta.yaml");
    fs::write(&mf, meta_yaml).unwrap();
    let mut all = vec!["--meta-file", mf.to_str().unwrap()];
    all.extend_from_slice(args);
    let fb = env.enqueue("in", &message, &all);
    let out = env.run(&["dump", "in", &fb], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&expected),
        "dump of {name}"
    );
    assert_eq!(out.stdout, expected, "dump of {name}, byte for byte");
    // The message itself is untouched.
    let out = env.run(&["dequeue", "in"], b"");
    assert_eq!(out.stdout, message);
}

#[test]
fn fixture_seed() {
    check_fixture(
        "seed",
        "listid: test.example.com\nfoo: \"yes\"\nbar: \"no\"\n",
        &[],
    );
}

#[test]
fn fixture_empty() {
    check_fixture("empty", "", &[]);
}

#[test]
fn fixture_empty_with_an_empty_mapping() {
    check_fixture("empty", "{}\n", &[]);
}

#[test]
fn fixture_multipart() {
    check_fixture("multipart", "listid: test.example.com\nwhichq: in\n", &[]);
}

#[test]
fn fixture_plaintext() {
    assert_eq!(
        fs::read(fixtures().join("plaintext.eml")).unwrap().len(),
        64,
        "original_size in plaintext.dump is the message's length"
    );
    check_fixture("plaintext", "listid: test.example.com\n", &["--plaintext"]);
}

#[test]
fn fixture_types() {
    check_fixture(
        "types",
        "listid: ant.example.com\n\
         approved: false\n\
         tomoderators: true\n\
         count: 3\n\
         ratio: 0.5\n\
         nothing: null\n\
         recipients: [anne@example.com, bart@example.com]\n\
         nested: {a: 1, b: [1, 2]}\n\
         quote: \"it's\"\n\
         unicode: \"Grüße\"\n",
        &[],
    );
}

#[test]
fn fixture_seed_via_meta_pairs() {
    // The seed as SEED.md writes it: keyword arguments on the command line.
    let env = Env::new();
    let expected = fs::read(fixtures().join("seed.dump")).unwrap();
    let message = fs::read(fixtures().join("seed.eml")).unwrap();
    let fb = env.enqueue(
        "test",
        &message,
        &[
            "-m",
            "listid=test.example.com",
            "-m",
            "foo=yes",
            "-m",
            "bar=no",
        ],
    );
    assert_eq!(dump(&env, "test", &fb, &[]).into_bytes(), expected);
}

#[test]
fn all_shows_received_time_and_skip_hides_keys() {
    let env = Env::new();
    let fb = env.enqueue(
        "in",
        SEED,
        &[
            "-m",
            "listid=test.example.com",
            "-m",
            "received_time=1700000000.25",
        ],
    );
    assert_eq!(
        dump(&env, "in", &fb, &["--all"]),
        "_parsemsg    : False\nlistid       : test.example.com\nreceived_time: 1700000000.25\nversion      : 3\n"
    );
    assert_eq!(
        dump(&env, "in", &fb, &["--skip", "listid"]),
        "_parsemsg: False\nversion  : 3\n"
    );
    assert_eq!(
        dump(
            &env,
            "in",
            &fb,
            &["--skip", "listid", "--skip", "_parsemsg"]
        ),
        "version: 3\n"
    );
    assert_eq!(
        dump(
            &env,
            "in",
            &fb,
            &[
                "--skip",
                "listid",
                "--skip",
                "_parsemsg",
                "--skip",
                "version"
            ]
        ),
        "*Empty*\n"
    );
    // Skipping a key that is not there changes nothing.
    assert_eq!(
        dump(&env, "in", &fb, &["--skip", "nosuchkey"]),
        "_parsemsg: False\nlistid   : test.example.com\nversion  : 3\n"
    );
}

#[test]
fn format_json() {
    let env = Env::new();
    let fb = env.enqueue(
        "in",
        SEED,
        &[
            "-m",
            "listid=test.example.com",
            "-m",
            "n=3",
            "-m",
            "r=[a, {b: 1}]",
            "-m",
            "flag=true",
            "-m",
            "x=~",
            "-m",
            "f=0.5",
        ],
    );
    let text = dump(&env, "in", &fb, &["--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(
        doc["metadata"],
        serde_json::json!({
            "_parsemsg": false,
            "listid": "test.example.com",
            "n": 3,
            "r": ["a", {"b": 1}],
            "flag": true,
            "x": null,
            "f": 0.5,
            "version": 3,
        })
    );
    assert!(doc.get("message").is_none(), "no message without --message");

    let text = dump(&env, "in", &fb, &["--format", "json", "--message", "--all"]);
    let doc: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(
        doc["message"].as_str(),
        Some(std::str::from_utf8(SEED).unwrap())
    );
    assert!(
        doc["metadata"]["received_time"].as_f64().is_some(),
        "{text}"
    );
}

#[test]
fn format_yaml() {
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
    let text = dump(&env, "in", &fb, &["--format", "yaml"]);
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
    let map = doc.as_mapping().expect("a mapping");
    assert_eq!(map.len(), 5, "{text}");
    assert_eq!(doc["listid"].as_str(), Some("test.example.com"));
    assert_eq!(doc["foo"].as_str(), Some("yes"));
    assert_eq!(doc["n"].as_i64(), Some(3));
    assert_eq!(doc["version"].as_i64(), Some(3));
    assert_eq!(doc["_parsemsg"].as_bool(), Some(false));
    assert!(doc.get("received_time").is_none(), "{text}");

    let out = env.run(&["dump", "in", &fb, "--format", "yaml", "--message"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(out.stdout.starts_with(text.as_bytes()), "{}", stdout(&out));
    assert!(out.stdout.ends_with(SEED), "{}", stdout(&out));
}

#[test]
fn message_is_appended_to_the_text_dump() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &["-m", "listid=test.example.com"]);
    let plain = dump(&env, "in", &fb, &[]);
    let out = env.run(&["dump", "in", &fb, "--message"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(out.stdout.starts_with(plain.as_bytes()), "{}", stdout(&out));
    assert!(out.stdout.ends_with(SEED), "{}", stdout(&out));
    assert!(out.stdout.len() <= plain.len() + SEED.len() + 2);
    // Dumping does not touch the entry.
    assert_eq!(env.files("in"), vec![format!("{fb}.pck")]);
}

#[test]
fn dump_path_reads_any_entry_file() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &["-m", "listid=test.example.com"]);
    let path = env.queue("in").join(format!("{fb}.pck"));
    let before = fs::read(&path).unwrap();
    let out = env.run(&["dump", path.to_str().unwrap()], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "_parsemsg: False\nlistid   : test.example.com\nversion  : 3\n"
    );
    assert_eq!(fs::read(&path).unwrap(), before, "dump changed the entry");

    // Whatever its name.
    let copy = env.root().join("saved-entry.txt");
    fs::copy(&path, &copy).unwrap();
    let out = env.run(&["dump", copy.to_str().unwrap(), "--message"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(out.stdout.ends_with(SEED));
}

#[test]
fn dump_of_a_missing_path_or_entry_exits_66() {
    let env = Env::new();
    let missing = env.root().join("no-such-entry.pck");
    let out = env.run(&["dump", missing.to_str().unwrap()], b"");
    assert_error(&out, 66);
    assert!(
        stderr(&out).contains("no-such-entry.pck"),
        "{}",
        stderr(&out)
    );

    env.enqueue("in", SEED, &[]);
    let out = env.run(&["dump", "in", &format!("1000.5+{HEX}")], b"");
    assert_error(&out, 66);
}

#[test]
fn empty_metadata_prints_empty() {
    let env = Env::new();
    let path = env.root().join("hand-written");
    fs::write(&path, b"---\n{}\n...\nmsg").unwrap();
    let out = env.run(&["dump", path.to_str().unwrap()], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "*Empty*\n");

    // Also as an entry of a queue, read by name.
    put_file(
        &env,
        "in",
        &format!("1000.5+{HEX}.pck"),
        b"---\n{}\n...\nmsg",
    );
    assert_eq!(dump(&env, "in", &format!("1000.5+{HEX}"), &[]), "*Empty*\n");
    let out = env.run(&["dequeue", "in"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, b"msg");
}

#[test]
fn python_reprs_of_values() {
    let env = Env::new();
    let mf = env.root().join("m.yaml");
    fs::write(
        &mf,
        "tuple1: !tuple [a]\n\
         tuple2: !tuple [a, 1]\n\
         dq: 'say \"hi\"'\n\
         both: \"it's \\\"x\\\"\"\n\
         esc: \"tab\\there\\nnl\"\n\
         lst: [\"it's\", 'a']\n\
         tiny: 1.0e-07\n\
         whole: 2.0\n\
         neg: -3\n",
    )
    .unwrap();
    let fb = env.enqueue("in", SEED, &["--meta-file", mf.to_str().unwrap()]);
    assert_eq!(
        dump(
            &env,
            "in",
            &fb,
            &["--skip", "_parsemsg", "--skip", "version"]
        ),
        "both  : it's \"x\"\n\
         dq    : say \"hi\"\n\
         esc   : tab\there\nnl\n\
         lst   : [\"it's\", 'a']\n\
         neg   : -3\n\
         tiny  : 1e-07\n\
         tuple1: ('a',)\n\
         tuple2: ('a', 1)\n\
         whole : 2.0\n"
    );
}

#[test]
fn keys_sort_by_code_point_and_pad_by_characters() {
    let env = Env::new();
    let mf = env.root().join("m.yaml");
    fs::write(
        &mf,
        "\"éé\": [\"Grüße\", {ok: true}]\nz: 1\nZ: 2\nB: 1.5e+16\n",
    )
    .unwrap();
    let fb = env.enqueue("in", SEED, &["--meta-file", mf.to_str().unwrap()]);
    assert_eq!(
        dump(&env, "in", &fb, &[]),
        "B        : 1.5e+16\n\
         Z        : 2\n\
         _parsemsg: False\n\
         version  : 3\n\
         z        : 1\n\
         éé       : ['Grüße', {'ok': True}]\n"
    );
    assert_eq!(
        dump(
            &env,
            "in",
            &fb,
            &["--skip", "_parsemsg", "--skip", "version"]
        ),
        "B : 1.5e+16\nZ : 2\nz : 1\néé: ['Grüße', {'ok': True}]\n"
    );
}
