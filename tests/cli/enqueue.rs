//! `qtool enqueue`: where messages come from (stdin, files, `-`, mbox, Maildir), how
//! metadata is built and typed (SPEC §2), what lands on disk (layout, names, modes), and
//! what is refused (empty input, missing files, bad queue names) without leaving files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::common::*;

fn lines(o: &std::process::Output) -> Vec<String> {
    stdout(o).lines().map(str::to_string).collect()
}

/// Dequeues the oldest entry and returns its message bytes.
fn dequeue(env: &Env, queue: &str) -> Vec<u8> {
    let out = env.run(&["dequeue", queue], b"");
    assert_eq!(code(&out), Some(0), "dequeue: {}", stderr(&out));
    out.stdout
}

fn dump_json(env: &Env, queue: &str, fb: &str) -> serde_json::Value {
    let text = dump(env, queue, fb, &["--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&text).expect("dump --format json");
    doc["metadata"].clone()
}

#[test]
fn stdin_message_becomes_one_entry_and_its_filebase_is_printed() {
    let env = Env::new();
    let out = env.run(&["enqueue", "in"], SEED);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let printed = lines(&out);
    assert_eq!(printed.len(), 1, "{printed:?}");
    assert_eq!(env.files("in"), vec![format!("{}.pck", printed[0])]);
    assert_eq!(dequeue(&env, "in"), SEED);
    assert!(env.files("in").is_empty());
}

#[test]
fn several_files_print_filebases_in_order_and_come_out_fifo() {
    let env = Env::new();
    let mut paths = Vec::new();
    for i in 1..=4 {
        let p = env.root().join(format!("m{i}.eml"));
        fs::write(&p, format!("Subject: message {i}\n\nbody {i}\n")).unwrap();
        paths.push(p.to_string_lossy().into_owned());
    }
    // `-` in the middle reads standard input there.
    let args = [
        "enqueue", "in", &paths[0], &paths[1], "-", &paths[2], &paths[3],
    ];
    let out = env.run(&args, b"Subject: from stdin\n\nstdin body\n");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let printed = lines(&out);
    assert_eq!(printed.len(), 5, "{printed:?}");
    let mut on_disk = env.files("in");
    on_disk.sort();
    let mut want: Vec<String> = printed.iter().map(|fb| format!("{fb}.pck")).collect();
    want.sort();
    assert_eq!(on_disk, want);

    let expect: Vec<Vec<u8>> = vec![
        b"Subject: message 1\n\nbody 1\n".to_vec(),
        b"Subject: message 2\n\nbody 2\n".to_vec(),
        b"Subject: from stdin\n\nstdin body\n".to_vec(),
        b"Subject: message 3\n\nbody 3\n".to_vec(),
        b"Subject: message 4\n\nbody 4\n".to_vec(),
    ];
    // Each printed filebase names the message given in that position...
    for (fb, msg) in printed.iter().zip(&expect) {
        let out = env.run(&["dump", "in", fb, "--format", "yaml", "--message"], b"");
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        assert!(out.stdout.ends_with(msg), "{fb} is not {msg:?}");
    }
    // ...and the queue hands them out in that order.
    for msg in &expect {
        assert_eq!(&dequeue(&env, "in"), msg);
    }
    assert_eq!(code(&env.run(&["dequeue", "in"], b"")), Some(1));
}

#[test]
fn dash_alone_reads_stdin() {
    let env = Env::new();
    let out = env.run(&["enqueue", "in", "-"], SEED);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(lines(&out).len(), 1);
    assert_eq!(dequeue(&env, "in"), SEED);
}

#[test]
fn mbox_gives_one_entry_per_message_with_from_quoting_undone() {
    let env = Env::new();
    let mbox = env.root().join("archive.mbox");
    fs::write(
        &mbox,
        "From anne@example.com Mon Jan  1 00:00:00 2024\n\
         From: anne@example.com\n\
         Subject: one\n\
         \n\
         first body\n\
         >From the quoted line\n\
         >>From a doubly quoted line\n\
         \n\
         From bart@example.com Mon Jan  1 00:01:00 2024\n\
         From: bart@example.com\n\
         Subject: two\n\
         \n\
         second body\n\
         \n\
         From cris@example.com Mon Jan  1 00:02:00 2024\n\
         From: cris@example.com\n\
         Subject: three\n\
         \n\
         third body\n",
    )
    .unwrap();
    let out = env.run(&["enqueue", "in", "--mbox", mbox.to_str().unwrap()], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(lines(&out).len(), 3, "{}", stdout(&out));
    assert_eq!(env.files("in").len(), 3);
    assert_eq!(
        dequeue(&env, "in"),
        b"From: anne@example.com\nSubject: one\n\nfirst body\nFrom the quoted line\n>From a doubly quoted line\n"
    );
    assert_eq!(
        dequeue(&env, "in"),
        b"From: bart@example.com\nSubject: two\n\nsecond body\n"
    );
    assert_eq!(
        dequeue(&env, "in"),
        b"From: cris@example.com\nSubject: three\n\nthird body\n"
    );
    assert!(env.files("in").is_empty());
}

#[test]
fn maildir_cur_and_new_are_enqueued_and_left_in_place() {
    let env = Env::new();
    let md = env.root().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(md.join(sub)).unwrap();
    }
    let cur = md.join("cur/1700000000.1.host:2,S");
    let new = md.join("new/1700000001.2.host");
    let tmp = md.join("tmp/1700000002.3.host");
    fs::write(&cur, b"Subject: seen\n\nin cur\n").unwrap();
    fs::write(&new, b"Subject: unseen\n\nin new\n").unwrap();
    fs::write(&tmp, b"Subject: half delivered\n\nin tmp\n").unwrap();
    let out = env.run(&["enqueue", "in", "--maildir", md.to_str().unwrap()], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(lines(&out).len(), 2, "{}", stdout(&out));

    let mut got = vec![dequeue(&env, "in"), dequeue(&env, "in")];
    got.sort();
    assert_eq!(
        got,
        vec![
            b"Subject: seen\n\nin cur\n".to_vec(),
            b"Subject: unseen\n\nin new\n".to_vec(),
        ]
    );
    assert!(env.files("in").is_empty());
    // The Maildir is untouched.
    assert_eq!(fs::read(&cur).unwrap(), b"Subject: seen\n\nin cur\n");
    assert_eq!(fs::read(&new).unwrap(), b"Subject: unseen\n\nin new\n");
    assert_eq!(
        fs::read(&tmp).unwrap(),
        b"Subject: half delivered\n\nin tmp\n"
    );
}

#[test]
fn meta_values_are_read_as_yaml_core_schema() {
    let env = Env::new();
    let fb = env.enqueue(
        "in",
        SEED,
        &["-m", "n=3", "-m", "r=[a, b]", "-m", "foo=yes", "-m", "x=~"],
    );
    assert_eq!(
        dump(&env, "in", &fb, &[]),
        "_parsemsg: False\nfoo      : yes\nn        : 3\nr        : ['a', 'b']\nversion  : 3\nx        : None\n"
    );
    let meta = dump_json(&env, "in", &fb);
    assert_eq!(meta["n"], serde_json::json!(3));
    assert_eq!(meta["r"], serde_json::json!(["a", "b"]));
    assert_eq!(meta["foo"], serde_json::json!("yes"));
    assert_eq!(meta["x"], serde_json::Value::Null);
    assert!(meta.as_object().unwrap().contains_key("x"));
}

#[test]
fn meta_file_is_merged_and_meta_pairs_win() {
    let env = Env::new();
    let mf = env.root().join("meta.yaml");
    fs::write(
        &mf,
        "listid: file.example.com\nfoo: from-file\nkeep: [1, 2]\n",
    )
    .unwrap();
    let fb = env.enqueue(
        "in",
        SEED,
        &[
            "--meta-file",
            mf.to_str().unwrap(),
            "-m",
            "foo=from-flag",
            "-m",
            "extra=1",
        ],
    );
    assert_eq!(
        dump(&env, "in", &fb, &[]),
        "_parsemsg: False\nextra    : 1\nfoo      : from-flag\nkeep     : [1, 2]\nlistid   : file.example.com\nversion  : 3\n"
    );
}

#[test]
fn later_meta_pair_wins_over_earlier() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &["-m", "foo=1", "-m", "foo=2"]);
    assert_eq!(
        dump(&env, "in", &fb, &[]),
        "_parsemsg: False\nfoo      : 2\nversion  : 3\n"
    );
}

#[test]
fn plaintext_sets_parsemsg_and_dump_adds_original_size() {
    let env = Env::new();
    let msg = b"From: a@example.com\nSubject: plain\n\nsome plain text here.\n";
    let fb = env.enqueue("in", msg, &["--plaintext"]);
    assert_eq!(
        dump(&env, "in", &fb, &[]),
        format!(
            "_parsemsg    : True\noriginal_size: {}\nversion      : 3\n",
            msg.len()
        )
    );
    // original_size is what dequeue adds, not stored: the message is unchanged.
    assert_eq!(dequeue(&env, "in"), msg);
}

#[test]
fn without_plaintext_parsemsg_is_false_and_no_original_size() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &[]);
    let meta = dump_json(&env, "in", &fb);
    assert_eq!(meta["_parsemsg"], serde_json::json!(false));
    assert!(meta.get("original_size").is_none(), "{meta}");
}

#[test]
fn empty_input_is_refused_with_65_and_leaves_no_file() {
    let env = Env::new();
    let out = env.run(&["enqueue", "in"], b"");
    assert_error(&out, 65);
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));

    let empty = env.root().join("empty.eml");
    fs::write(&empty, b"").unwrap();
    let out = env.run(&["enqueue", "in", empty.to_str().unwrap()], b"");
    assert_error(&out, 65);
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
}

#[test]
fn missing_file_is_refused_with_66_and_enqueues_nothing() {
    let env = Env::new();
    let missing = env.root().join("no-such.eml");
    let out = env.run(&["enqueue", "in", missing.to_str().unwrap()], SEED);
    assert_error(&out, 66);
    assert!(
        stderr(&out).contains("no-such.eml"),
        "the error names the file: {}",
        stderr(&out)
    );
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
}

#[test]
fn a_batch_that_fails_part_way_keeps_exactly_what_it_printed() {
    let env = Env::new();
    let good = env.root().join("good.eml");
    let later = env.root().join("later.eml");
    fs::write(&good, b"Subject: good\n\nx\n").unwrap();
    fs::write(&later, b"Subject: later\n\ny\n").unwrap();
    let missing = env.root().join("missing.eml");
    let out = env.run(
        &[
            "enqueue",
            "in",
            good.to_str().unwrap(),
            missing.to_str().unwrap(),
            later.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code(&out), Some(66), "{}", stderr(&out));
    let printed = lines(&out);
    let mut want: Vec<String> = printed.iter().map(|fb| format!("{fb}.pck")).collect();
    want.sort();
    assert_eq!(
        env.files("in"),
        want,
        "the queue holds exactly what was printed"
    );
    assert!(printed.len() <= 1);
    if printed.len() == 1 {
        assert_eq!(dequeue(&env, "in"), b"Subject: good\n\nx\n");
    }
}

#[test]
fn invalid_queue_names_are_refused_before_touching_disk() {
    for name in ["..", "a/b", ".x", "", "../escape", "_x", "a b", "in/"] {
        let env = Env::new();
        let out = env.run(&["enqueue", name], SEED);
        assert_error(&out, 2);
        assert!(
            !env.queue_dir().exists(),
            "queue name {name:?} created {}",
            env.queue_dir().display()
        );
        assert!(
            !env.root().join("escape").exists(),
            "queue name {name:?} escaped the queue directory"
        );
    }
}

#[test]
fn entry_file_is_yaml_metadata_between_markers_then_the_raw_message() {
    let env = Env::new();
    // A body that contains the markers itself must not confuse anything.
    let msg = b"Subject: markers\n\n---\n...\nafter\n";
    let fb = env.enqueue("in", msg, &["-m", "listid=test.example.com"]);
    let bytes = fs::read(env.queue("in").join(format!("{fb}.pck"))).unwrap();
    assert!(
        bytes.starts_with(b"---\n"),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    let end = bytes
        .windows(5)
        .position(|w| w == b"\n...\n")
        .expect("a `...` line ends the metadata");
    let yaml = std::str::from_utf8(&bytes[4..end + 1]).unwrap();
    let meta: serde_yaml::Value = serde_yaml::from_str(yaml).expect("metadata is YAML");
    let map = meta.as_mapping().expect("metadata is a mapping");
    assert_eq!(
        map.get("listid").and_then(|v| v.as_str()),
        Some("test.example.com")
    );
    assert_eq!(map.get("version").and_then(|v| v.as_i64()), Some(3));
    assert_eq!(&bytes[end + 5..], msg);
    assert_eq!(dequeue(&env, "in"), msg);
}

#[test]
fn binary_message_round_trips_byte_for_byte() {
    let env = Env::new();
    let mut msg = b"Subject: =?iso-8859-1?q?gr=FC=DFe?=\r\nX-Raw: \xe9t\xe9\r\n\r\n".to_vec();
    msg.extend_from_slice(b"NUL:\x00 high:\xff\xfe\x80 lone CR:\r bad utf8:\xc3\x28\n");
    msg.extend((0u8..=255).collect::<Vec<u8>>());
    msg.extend_from_slice(b"no newline at the end");
    let fb = env.enqueue("in", &msg, &[]);
    let path = env.root().join("out.bin");
    let out = env.run(&["dequeue", "in", &fb, "-o", path.to_str().unwrap()], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(&path).unwrap(), msg);

    // Through standard input and standard output as well.
    env.enqueue("in", &msg, &[]);
    assert_eq!(dequeue(&env, "in"), msg);
}

#[test]
fn filebase_is_time_plus_sha1_of_message_listid_and_time() {
    use sha1::{Digest, Sha1};
    let env = Env::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for (args, listid) in [
        (vec![], "--nolist--"),
        (vec!["-m", "listid=test.example.com"], "test.example.com"),
    ] {
        let fb = env.enqueue("in", SEED, &args);
        let (time, digest) = fb.split_once('+').expect("<time>+<digest>");
        let (int, frac) = time.split_once('.').expect("time has a fractional part");
        assert!(
            !int.is_empty() && int.bytes().all(|b| b.is_ascii_digit()),
            "{fb}"
        );
        assert!(
            !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()),
            "{fb}"
        );
        let t: f64 = time.parse().unwrap();
        assert!((t - now).abs() < 3600.0, "time {t} is not now ({now})");
        assert_eq!(digest.len(), 40, "{fb}");
        assert!(
            digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{fb}"
        );
        let mut h = Sha1::new();
        h.update(SEED);
        h.update(listid.as_bytes());
        h.update(time.as_bytes());
        let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, want, "digest of message + {listid} + {time}");
    }
}

/// Runs qtool under umask 0 so the modes it asks for show unmasked.
fn run_umask0(env: &Env, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut c = Command::new("sh");
    c.current_dir(env.root())
        .env_remove("QTOOL_CONFIG")
        .env_remove("QTOOL_QUEUE_DIR")
        .args(["-c", "umask 0; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_qtool"))
        .arg("-d")
        .arg(env.queue_dir());
    run_with(c, args, stdin)
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn entries_are_0660_and_queue_dirs_0770_under_umask_0() {
    let env = Env::new();
    let out = run_umask0(&env, &["enqueue", "in"], SEED);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fb = stdout(&out).trim().to_string();
    assert_eq!(mode(&env.queue("in")), 0o770, "queue directory mode");
    assert_eq!(
        mode(&env.queue("in").join(format!("{fb}.pck"))),
        0o660,
        "entry mode"
    );

    // Entries a runner writes elsewhere (forward) get the same modes.
    let out = run_umask0(&env, &["run-once", "in", "--forward", "out"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let outs = env.files("out");
    assert_eq!(outs.len(), 1, "{outs:?}");
    assert_eq!(
        mode(&env.queue("out")),
        0o770,
        "forward queue directory mode"
    );
    assert_eq!(
        mode(&env.queue("out").join(&outs[0])),
        0o660,
        "forwarded entry mode"
    );
}

// ---------------------------------------------------------------------------------------
// Metadata round-trips (SPEC §2)

const TRICKY: &[(&str, &str)] = &[
    ("s_yes", "yes"),
    ("s_no", "no"),
    ("s_on", "on"),
    ("s_off", "off"),
    ("s_float", "1.0"),
    ("s_tilde", "~"),
    ("s_null", "null"),
    ("s_true", "true"),
    ("s_int", "42"),
    ("s_empty", ""),
    ("s_dots", "..."),
    ("s_dashes", "---"),
];

fn tricky_meta_file(env: &Env) -> std::path::PathBuf {
    let mut text = String::new();
    for (k, v) in TRICKY {
        text.push_str(&format!("{k}: \"{v}\"\n"));
    }
    let path = env.root().join("tricky.yaml");
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn tricky_strings_stay_strings_in_dump_json() {
    let env = Env::new();
    let mf = tricky_meta_file(&env);
    let fb = env.enqueue("in", SEED, &["--meta-file", mf.to_str().unwrap()]);
    let meta = dump_json(&env, "in", &fb);
    for (k, v) in TRICKY {
        assert_eq!(meta[*k], serde_json::json!(v), "key {k}");
    }
    let text = dump(&env, "in", &fb, &[]);
    for (k, v) in TRICKY {
        let line = text
            .lines()
            .find(|l| l.split(':').next().unwrap().trim_end() == *k)
            .unwrap_or_else(|| panic!("no {k} in {text}"));
        assert_eq!(line.split_once(": ").unwrap().1, *v, "{line}");
    }
}

#[test]
fn tricky_strings_stay_strings_in_dequeue_meta_out() {
    let env = Env::new();
    let mf = tricky_meta_file(&env);
    env.enqueue("in", SEED, &["--meta-file", mf.to_str().unwrap()]);
    let meta_out = env.root().join("meta-out.yaml");
    let out = env.run(
        &["dequeue", "in", "--meta-out", meta_out.to_str().unwrap()],
        b"",
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, SEED);
    let text = fs::read_to_string(&meta_out).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("--meta-out is YAML");
    for (k, v) in TRICKY {
        assert_eq!(
            doc.get(*k).and_then(|x| x.as_str()),
            Some(*v),
            "key {k} in {text}"
        );
        // Not written as a bare word a YAML 1.1 reader (PyYAML) would take for a bool
        // or a null.
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{k}:")))
            .unwrap_or_else(|| panic!("no {k} line in {text}"));
        assert_ne!(line, format!("{k}: {v}"), "{k} is written unquoted");
    }
    // Feeding the file back in gives the same metadata.
    let fb = env.enqueue("again", SEED, &["--meta-file", meta_out.to_str().unwrap()]);
    let meta = dump_json(&env, "again", &fb);
    for (k, v) in TRICKY {
        assert_eq!(meta[*k], serde_json::json!(v), "key {k} after a round trip");
    }
}

#[test]
fn nested_mappings_lists_and_scalars_survive() {
    let env = Env::new();
    let mf = env.root().join("nested.yaml");
    fs::write(
        &mf,
        "nested: {a: {b: [1, {c: \"d\"}, [x, y]]}, e: null}\n\
         list: [1, 2.5, \"three\", true, null, [], {}]\n\
         neg: -17\n\
         ratio: 0.5\n\
         flag: false\n",
    )
    .unwrap();
    let fb = env.enqueue("in", SEED, &["--meta-file", mf.to_str().unwrap()]);
    assert_eq!(
        dump(&env, "in", &fb, &[]),
        "_parsemsg: False\n\
         flag     : False\n\
         list     : [1, 2.5, 'three', True, None, [], {}]\n\
         neg      : -17\n\
         nested   : {'a': {'b': [1, {'c': 'd'}, ['x', 'y']]}, 'e': None}\n\
         ratio    : 0.5\n\
         version  : 3\n"
    );
    // The same after a forward and after a dequeue --meta-out / --meta-file round trip.
    let out = env.run(&["run-once", "in", "--forward", "out"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fwd = entries(&env, "out", ".pck");
    assert_eq!(fwd.len(), 1);
    let meta_out = env.root().join("m.yaml");
    let out = env.run(
        &["dequeue", "out", "--meta-out", meta_out.to_str().unwrap()],
        b"",
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fb2 = env.enqueue("again", SEED, &["--meta-file", meta_out.to_str().unwrap()]);
    assert_eq!(
        dump(&env, "again", &fb2, &["--skip", "lang"]),
        "_parsemsg: False\n\
         flag     : False\n\
         list     : [1, 2.5, 'three', True, None, [], {}]\n\
         neg      : -17\n\
         nested   : {'a': {'b': [1, {'c': 'd'}, ['x', 'y']]}, 'e': None}\n\
         ratio    : 0.5\n\
         version  : 3\n"
    );
}

#[test]
fn big_integers_stay_integers_in_dump() {
    let env = Env::new();
    // As qtool itself writes an integer too big for 64 bits.
    let mf = env.root().join("big.yaml");
    fs::write(&mf, "big: !int \"123456789012345678901234567890\"\n").unwrap();
    let fb = env.enqueue("in", SEED, &["--meta-file", mf.to_str().unwrap()]);
    assert_eq!(
        dump(&env, "in", &fb, &[]),
        "_parsemsg: False\nbig      : 123456789012345678901234567890\nversion  : 3\n"
    );
    // It survives a forward (re-enqueue) unchanged.
    let out = env.run(&["run-once", "in", "--forward", "out"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fwd = entries(&env, "out", ".pck");
    assert_eq!(
        dump(&env, "out", &fwd[0], &["--skip", "lang"]),
        "_parsemsg: False\nbig      : 123456789012345678901234567890\nversion  : 3\n"
    );
}

#[test]
fn plain_big_integers_are_accepted_as_integers() {
    let env = Env::new();
    let mf = env.root().join("big.yaml");
    fs::write(&mf, "big: 123456789012345678901234567890\n").unwrap();
    let out = env.run(
        &["enqueue", "in", "--meta-file", mf.to_str().unwrap()],
        SEED,
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fb = stdout(&out).trim().to_string();
    assert_eq!(
        dump(&env, "in", &fb, &[]),
        "_parsemsg: False\nbig      : 123456789012345678901234567890\nversion  : 3\n"
    );
    let out = env.run(
        &[
            "enqueue",
            "in2",
            "-m",
            "big=-123456789012345678901234567890",
        ],
        SEED,
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fb = stdout(&out).trim().to_string();
    assert_eq!(
        dump(&env, "in2", &fb, &[]),
        "_parsemsg: False\nbig      : -123456789012345678901234567890\nversion  : 3\n"
    );
}

#[test]
fn big_integers_stay_numbers_in_dump_json() {
    let env = Env::new();
    let mf = env.root().join("big.yaml");
    fs::write(&mf, "big: !int \"123456789012345678901234567890\"\n").unwrap();
    let fb = env.enqueue("in", SEED, &["--meta-file", mf.to_str().unwrap()]);
    let text = dump(&env, "in", &fb, &["--format", "json"]);
    assert!(
        text.contains("\"big\": 123456789012345678901234567890"),
        "{text}"
    );
}

#[test]
fn underscore_keys_are_dropped_and_version_and_received_time_set() {
    let env = Env::new();
    let mf = env.root().join("m.yaml");
    fs::write(&mf, "_volatile: 1\n_bak_count: 2\nversion: 99\nkeep: 1\n").unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let fb = env.enqueue(
        "in",
        SEED,
        &["--meta-file", mf.to_str().unwrap(), "-m", "_secret=x"],
    );
    let meta = dump_json(&env, "in", &fb);
    let obj = meta.as_object().unwrap();
    assert!(!obj.contains_key("_volatile"), "{meta}");
    assert!(!obj.contains_key("_secret"), "{meta}");
    assert!(!obj.contains_key("_bak_count"), "{meta}");
    assert_eq!(meta["_parsemsg"], serde_json::json!(false));
    assert_eq!(meta["version"], serde_json::json!(3));
    assert_eq!(meta["keep"], serde_json::json!(1));
    assert!(
        !obj.contains_key("received_time"),
        "dump hides received_time"
    );

    let all: serde_json::Value =
        serde_json::from_str(&dump(&env, "in", &fb, &["--all", "--format", "json"])).unwrap();
    let rt = all["metadata"]["received_time"]
        .as_f64()
        .expect("received_time is a float");
    assert!(
        (rt - before).abs() < 3600.0,
        "received_time {rt} is not now"
    );
}

#[test]
fn received_time_is_kept_across_a_forward() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &["-m", "listid=test.example.com"]);
    let before = dump(&env, "in", &fb, &["--all"]);
    let rt_line = before
        .lines()
        .find(|l| l.starts_with("received_time"))
        .expect("--all shows received_time")
        .to_string();
    let out = env.run(&["run-once", "in", "--forward", "out"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fwd = entries(&env, "out", ".pck");
    assert_eq!(fwd.len(), 1);
    assert_ne!(fwd[0], fb, "a forwarded entry is a new entry");
    let after = dump(&env, "out", &fwd[0], &["--all"]);
    assert!(
        after.lines().any(|l| l == rt_line),
        "{rt_line:?} not in\n{after}"
    );

    // An explicit received_time given at enqueue is kept as given.
    let fb = env.enqueue("in", SEED, &["-m", "received_time=1234567890.5"]);
    let text = dump(&env, "in", &fb, &["--all"]);
    assert!(
        text.lines()
            .any(|l| l.ends_with(": 1234567890.5") && l.starts_with("received_time")),
        "{text}"
    );
}
