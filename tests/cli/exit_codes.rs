//! Exit codes (SPEC §5) and the shape of every error: on stderr, each line starting with
//! `qtool: `, at most two lines, nothing on stdout, and nothing left in the queue.

use std::fs;

use crate::common::*;

fn p(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn success_is_0() {
    let env = Env::new();
    let out = env.run(&["enqueue", "in"], SEED);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fb = stdout(&out).trim().to_string();
    let out = env.run(&["dump", "in", &fb], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let out = env.run(&["run-once", "in", "--forward", "out"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let out = env.run(&["dequeue", "out"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
}

#[test]
fn quiet_success_prints_nothing_on_stderr() {
    let env = Env::new();
    env.enqueue("in", SEED, &[]);
    let out = env.run(&["-q", "run-once", "in", "--discard"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "-q: no summary");
}

#[test]
fn empty_dequeue_is_1() {
    let env = Env::new();
    let out = env.run(&["dequeue", "in"], b"");
    assert_eq!(code(&out), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.lines().count() <= 2, "{err}");
    assert!(err.lines().all(|l| l.starts_with("qtool: ")), "{err}");
}

#[test]
fn bad_queue_names_are_usage_errors_for_every_command() {
    let fb = format!("1000.1+{HEX}");
    for args in [
        vec!["enqueue", ".."],
        vec!["enqueue", "a/b"],
        vec!["enqueue", ".x"],
        vec!["enqueue", ""],
        vec!["dequeue", ".."],
        vec!["dequeue", "a/b"],
        vec!["dump", "..", &fb],
        vec!["dump", "", &fb],
        vec!["run-once", "..", "--discard"],
        vec!["run-once", "a/b", "--discard"],
        vec!["run-once", "", "--discard"],
        vec!["run-once", "in", "--forward", "../x"],
        vec!["run-once", "in", "--forward", ".x"],
    ] {
        let env = Env::new();
        let out = env.run(&args, SEED);
        assert_error(&out, 2);
        assert!(
            !env.queue_dir().exists(),
            "{args:?} created {}",
            env.queue_dir().display()
        );
    }
}

#[test]
fn bad_slices_are_usage_errors() {
    for spec in [
        "in:3:2", "in:0:3", "in:2:2", "in:1", "in:a:b", "in:0:0", "in:-1:2",
    ] {
        let env = Env::new();
        env.enqueue("in", SEED, &[]);
        let out = env.run(&["run-once", spec, "--discard"], b"");
        assert_error(&out, 2);
        assert_eq!(env.files("in").len(), 1, "{spec}: the queue was touched");
    }
}

#[test]
fn missing_arguments_exit_2() {
    let env = Env::new();
    for args in [
        vec!["enqueue"],
        vec!["dequeue"],
        vec!["dump"],
        vec!["run-once"],
        vec!["run-once", "in", "--discard", "--forward", "out"],
        vec!["no-such-command"],
    ] {
        let out = env.run(&args, b"");
        assert_eq!(code(&out), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty(), "{args:?}");
    }
}

#[test]
fn usage_errors_from_argument_parsing_have_the_error_shape() {
    let env = Env::new();
    for args in [
        vec!["enqueue"],
        vec!["dump"],
        vec!["run-once"],
        vec!["enqueue", "in", "--no-such-flag"],
        vec!["no-such-command"],
    ] {
        let out = env.run(&args, b"");
        assert_error(&out, 2);
    }
}

#[test]
fn a_runner_without_a_handler_is_a_usage_error() {
    let env = Env::new();
    env.enqueue("in", SEED, &[]);
    let out = env.run(&["run-once", "in"], b"");
    assert_error(&out, 2);
    assert_eq!(env.files("in").len(), 1);
}

#[test]
fn bad_data_is_65() {
    let env = Env::new();
    let deep = format!("x={}{}", "[".repeat(100), "]".repeat(100));
    let deep_map = format!("x={}1{}", "{a: ".repeat(100), "}".repeat(100));
    let not_mapping = env.root().join("list.yaml");
    fs::write(&not_mapping, "- a\n- b\n").unwrap();
    let deep_file = env.root().join("deep.yaml");
    let mut block = String::from("x:\n");
    for i in 1..=100 {
        block.push_str(&format!("{}k{i}:\n", "  ".repeat(i)));
    }
    block.push_str(&format!("{}v\n", "  ".repeat(101)));
    fs::write(&deep_file, block).unwrap();
    let bomb = env.root().join("bomb.yaml");
    let mut text = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    fs::write(&bomb, text).unwrap();
    let not_yaml = env.root().join("bad.yaml");
    fs::write(&not_yaml, "a: [unclosed\n").unwrap();

    let cases: Vec<(Vec<&str>, &[u8])> = vec![
        (vec!["enqueue", "in"], b""),
        (vec!["enqueue", "in", "-m", "x=[a"], SEED),
        (vec!["enqueue", "in", "-m", "x={a: 1"], SEED),
        (vec!["enqueue", "in", "-m", &deep], SEED),
        (vec!["enqueue", "in", "-m", &deep_map], SEED),
        (vec!["enqueue", "in", "--meta-file", p(&not_mapping)], SEED),
        (vec!["enqueue", "in", "--meta-file", p(&deep_file)], SEED),
        (vec!["enqueue", "in", "--meta-file", p(&bomb)], SEED),
        (vec!["enqueue", "in", "--meta-file", p(&not_yaml)], SEED),
    ];
    for (args, input) in cases {
        let out = run_with_input_bounded(&env, &args, input);
        assert_error(&out, 65);
        assert!(
            env.files("in").is_empty(),
            "{args:?} left {:?}",
            env.files("in")
        );
    }
}

/// `env.run`, but failing instead of hanging if qtool does not finish in 20 s.
fn run_with_input_bounded(env: &Env, args: &[&str], input: &[u8]) -> std::process::Output {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut c = env.cmd();
    c.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&data);
    });
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(20)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("qtool {args:?} did not finish in 20 s");
        }
    }
}

#[test]
fn moderate_nesting_is_accepted() {
    let env = Env::new();
    let v = format!("x={}1{}", "[".repeat(10), "]".repeat(10));
    let fb = env.enqueue("in", SEED, &["-m", &v]);
    let text = dump(&env, "in", &fb, &[]);
    assert!(
        text.contains(&format!("x        : {}1{}", "[".repeat(10), "]".repeat(10))),
        "{text}"
    );
}

#[test]
fn missing_input_is_66() {
    let env = Env::new();
    let missing = env.root().join("missing");
    for args in [
        vec!["enqueue", "in", p(&missing)],
        vec!["enqueue", "in", "--mbox", p(&missing)],
        vec!["enqueue", "in", "--maildir", p(&missing)],
        vec!["enqueue", "in", "--meta-file", p(&missing)],
        vec!["dump", p(&missing)],
    ] {
        let out = env.run(&args, SEED);
        assert_error(&out, 66);
        assert!(
            stderr(&out).contains(p(&missing)),
            "{args:?}: the error names the path: {}",
            stderr(&out)
        );
        assert!(env.files("in").is_empty(), "{args:?}");
    }
}

fn bad_config(text: &str, key: &str) {
    let env = Env::new();
    let cfg = env.config(text);
    for args in [
        vec!["-C", p(&cfg), "run-once", "in", "--discard"],
        vec!["-C", p(&cfg), "enqueue", "in"],
    ] {
        let out = env.run(&args, SEED);
        assert_error(&out, 78);
        let err = stderr(&out);
        assert!(err.contains(p(&cfg)), "{text:?}: the file is named: {err}");
        assert!(err.contains(key), "{text:?}: the key {key} is named: {err}");
        assert!(env.files("in").is_empty(), "{args:?}");
    }
}

#[test]
fn unknown_config_key_is_78() {
    bad_config("queue_dri: x\n", "queue_dri");
}

#[test]
fn unknown_runner_key_is_78() {
    bad_config("runners:\n  in: {instance: 2}\n", "instance");
}

#[test]
fn bad_sleep_time_is_78() {
    bad_config("runners:\n  in: {sleep_time: soon}\n", "sleep_time");
}

#[test]
fn instances_not_a_power_of_two_is_78() {
    bad_config("runners:\n  in: {instances: 3}\n", "instances");
}

#[test]
fn bad_handler_is_78() {
    bad_config("runners:\n  in: {handler: {exec: []}}\n", "handler");
}

#[test]
fn config_that_is_not_yaml_is_78() {
    let env = Env::new();
    let cfg = env.config("runners: [unclosed\n");
    let out = env.run(&["-C", p(&cfg), "run-once", "in", "--discard"], b"");
    assert_error(&out, 78);
    assert!(stderr(&out).contains(p(&cfg)), "{}", stderr(&out));
}

#[test]
fn config_found_in_the_current_directory_is_used() {
    // `./qtool.yaml` is read when no -C is given: its errors show.
    let env = Env::new();
    env.config("queue_dri: x\n");
    let out = env.run(&["run-once", "in", "--discard"], b"");
    assert_error(&out, 78);
    assert!(stderr(&out).contains("queue_dri"), "{}", stderr(&out));
}

#[test]
fn a_missing_config_file_named_with_c_is_an_error() {
    let env = Env::new();
    let missing = env.root().join("nope.yaml");
    let out = env.run(&["-C", p(&missing), "enqueue", "in"], SEED);
    let c = code(&out);
    assert!(
        c == Some(66) || c == Some(78),
        "exit {c:?}: {}",
        stderr(&out)
    );
    assert_error(&out, c.unwrap());
    assert!(stderr(&out).contains("nope.yaml"), "{}", stderr(&out));
    assert!(env.files("in").is_empty());
}

/// `qtool list | head -1` on a long listing: the reader goes away, qtool ends quietly
/// with 0 (as Unix filters do), never a panic.
#[test]
fn a_closed_pipe_ends_listing_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let env = Env::new();
    // Enough entries that every format overflows a pipe buffer (64 KiB).
    let mbox: String = (0..1500)
        .map(|i| format!("From a@b Thu Jan  1 00:00:00 2026\nSubject: {i}\n\nbody\n\n"))
        .collect();
    let path = env.root().join("m.mbox");
    std::fs::write(&path, mbox).unwrap();
    let out = env.run(&["enqueue", "in", "--mbox", path.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0));
    for format in ["table", "names", "json"] {
        let mut child = env
            .cmd()
            .args(["list", "in", "--format", format])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 10];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{format}: {err}");
        assert_eq!(out.status.code(), Some(0), "{format}: {err}");
    }
}

/// A Redis queue_dir whose server cannot be reached is a temporary failure (75) that
/// names the server, and never becomes a local directory named `redis:`.
#[test]
fn an_unreachable_redis_is_a_temporary_failure() {
    let env = Env::new();
    let out = run_with(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_qtool"));
            c.current_dir(env.root());
            c
        },
        &["-d", "redis://127.0.0.1:1/0", "enqueue", "in"],
        SEED,
    );
    assert_error(&out, 75);
    assert!(
        stderr(&out).contains("redis://127.0.0.1:1/0"),
        "{}",
        stderr(&out)
    );
    assert!(!env.root().join("redis:").exists());
}

/// A malformed Redis URL is a configuration error (78).
#[test]
fn a_malformed_redis_url_is_a_config_error() {
    let env = Env::new();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_qtool"));
    c.current_dir(env.root()).env_remove("QTOOL_QUEUE_DIR");
    let out = run_with(c, &["-d", "redis://127.0.0.1:notaport/0", "list"], b"");
    assert_error(&out, 78);
    assert!(stderr(&out).contains("notaport"), "{}", stderr(&out));
}

/// Standard error closed by its reader (`qtool ... 2>&1 | head -c 10`): the error is
/// lost, the exit status is still the command's (66 here), never a panic's 101.
#[test]
fn a_closed_standard_error_does_not_turn_an_error_into_a_panic() {
    let env = Env::new();
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut c = env.cmd();
    c.args([
        "dump",
        "in",
        "1796400000.5+0123456789abcdef0123456789abcdef01234567",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(writer);
    let status = c.status().expect("run qtool");
    assert_eq!(status.code(), Some(66));
}
