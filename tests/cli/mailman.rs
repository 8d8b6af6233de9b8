//! Mailman 3 interop: qtool reads the queue files GNU Mailman 3.3.10 wrote (the fixtures)
//! exactly as Mailman prints and returns them, refuses hostile pickles without running
//! anything, and writes files (`queue_format: mailman`) that Mailman's own
//! `Switchboard.dequeue` reads back.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::common::*;

const FIXTURES: [&str; 5] = ["empty", "multipart", "plaintext", "seed", "types"];
const FB: &str = "1733342400.5+0123456789abcdef0123456789abcdef01234567";

#[test]
fn dump_of_every_fixture_is_mailmans_output() {
    let env = Env::new();
    for name in FIXTURES {
        let pck = fixtures().join(format!("{name}.pck"));
        let out = env.run(&["dump", pck.to_str().unwrap()], b"");
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let want = fs::read_to_string(fixtures().join(format!("{name}.dump"))).unwrap();
        assert_eq!(stdout(&out), want, "{name}");
    }
}

#[test]
fn dequeue_of_every_fixture_gives_mailmans_message() {
    for name in FIXTURES {
        let env = Env::new();
        fs::create_dir_all(env.queue("in")).unwrap();
        fs::copy(
            fixtures().join(format!("{name}.pck")),
            env.queue("in").join(format!("{FB}.pck")),
        )
        .unwrap();
        let meta = env.root().join("meta.yaml");
        let out = env.run(
            &["dequeue", "in", "--meta-out", meta.to_str().unwrap()],
            b"",
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let want = fs::read(fixtures().join(format!("{name}.eml"))).unwrap();
        assert!(out.stdout == want, "{name}: {}", stdout(&out));
        assert!(env.files("in").is_empty());
        let meta = fs::read_to_string(meta).unwrap();
        assert!(meta.contains("version: 3"), "{name}: {meta}");
    }
}

#[test]
fn a_runner_drains_a_mailman_queue_through_a_qtool_handler() {
    let env = Env::new();
    fs::create_dir_all(env.queue("in")).unwrap();
    fs::copy(
        fixtures().join("seed.pck"),
        env.queue("in").join(format!("{FB}.pck")),
    )
    .unwrap();
    let out = env.run(&["run-once", "in", "--forward", "out"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fb = env.files("out")[0].trim_end_matches(".pck").to_string();
    assert_eq!(
        dump(&env, "out", &fb, &[]),
        "_parsemsg: False\nbar      : no\nfoo      : yes\nlang     : en\nlistid   : test.example.com\nversion  : 3\n"
    );
    let msg = env.run(&["dequeue", "out"], b"");
    assert_eq!(msg.stdout, fs::read(fixtures().join("seed.eml")).unwrap());
}

#[test]
fn list_shows_mailman_entries() {
    let env = Env::new();
    fs::create_dir_all(env.queue("shunt")).unwrap();
    fs::copy(
        fixtures().join("multipart.pck"),
        env.queue("shunt").join(format!("{FB}.pck")),
    )
    .unwrap();
    let out = env.run(&["list", "shunt", "--format", "json"], b"");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["from"], "Bart Person <bart@example.com>");
    assert_eq!(v[0]["subject"], "Grüße from the list");
    assert_eq!(v[0]["listid"], "test.example.com");
    assert_eq!(v[0]["whichq"], "in");
}

/// Hostile pickles are data errors, and nothing they name is ever run.
#[test]
fn hostile_pickles_are_refused_without_running_anything() {
    let env = Env::new();
    let flag = env.root().join("PWNED");
    let cmd = format!("touch {}", flag.display());
    let proto0 = format!("cposix\nsystem\n(S'{cmd}'\ntR.").into_bytes();
    let mut proto4 = vec![0x80, 4, 0x8c, 5];
    proto4.extend_from_slice(b"posix");
    proto4.extend_from_slice(&[0x8c, 6]);
    proto4.extend_from_slice(b"system");
    proto4.push(0x93);
    proto4.push(0x8c);
    proto4.push(cmd.len() as u8);
    proto4.extend_from_slice(cmd.as_bytes());
    proto4.extend_from_slice(&[0x85, b'R', b'.']);
    let truncated = fs::read(fixtures().join("seed.pck")).unwrap()[..40].to_vec();
    for (i, bytes) in [proto0, proto4, truncated].iter().enumerate() {
        let path = env.root().join(format!("evil{i}.pck"));
        fs::write(&path, bytes).unwrap();
        let out = env.run(&["dump", path.to_str().unwrap()], b"");
        assert_eq!(out.status.code(), Some(65), "case {i}: {}", stderr(&out));
        put_file(&env, "in", &format!("{FB}.pck"), bytes);
        let run = env.run(&["run-once", "in", "--discard"], b"");
        assert_eq!(run.status.code(), Some(0));
        assert_eq!(env.files("bad"), vec![format!("{FB}.psv")], "case {i}");
        fs::remove_file(env.queue("bad").join(format!("{FB}.psv"))).unwrap();
    }
    assert!(!flag.exists(), "a pickle ran a command");
}

/// The Python of a virtualenv with GNU Mailman 3.3.10: `QTOOL_MAILMAN_PYTHON`, or one
/// made under target/ on first use (from PyPI). `None` only when it cannot be made.
fn mailman_python() -> Option<PathBuf> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("QTOOL_MAILMAN_PYTHON") {
            return Some(PathBuf::from(p));
        }
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mailman-venv");
        let python = venv.join("bin/python");
        let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
        let ready = || ok(Command::new(&python).args(["-c", "import mailman.core.switchboard"]));
        if !ready() {
            let made = ok(Command::new("python3").args(["-m", "venv"]).arg(&venv))
                && ok(Command::new(&python).args([
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "mailman==3.3.10",
                ]));
            if !made || !ready() {
                return None;
            }
        }
        Some(python)
    })
    .clone()
}

const READER: &str = r#"
import sys
from mailman.core.switchboard import Switchboard
sb = Switchboard(sys.argv[1], sys.argv[2], recover=False)
for fb in sb.files:
    msg, data = sb.dequeue(fb)
    data.pop('received_time')
    sys.stdout.write(msg.as_string())
    sys.stdout.write('\n=====\n' + repr(sorted(data.items())) + '\n')
    sb.finish(fb)
"#;

#[test]
fn mailman_reads_what_qtool_writes_with_queue_format_mailman() {
    let Some(python) = mailman_python() else {
        eprintln!(
            "SKIPPED: no Mailman 3.3.10 virtualenv (PyPI unreachable?); set QTOOL_MAILMAN_PYTHON"
        );
        return;
    };
    let env = Env::new();
    let config = env.config("queue_format: mailman\n");
    let mut c = env.cmd();
    c.arg("-C").arg(&config);
    let msg = b"From: aperson@example.com\nTo: test@example.com\nSubject: hi\n\nA test message.\n";
    let out = run_with(
        c,
        &[
            "enqueue",
            "in",
            "-m",
            "listid=test.example.com",
            "-m",
            "foo=yes",
            "-m",
            "t=[1, 2]",
        ],
        msg,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Through a runner too: the forwarded entry is written by qtool as a Mailman file.
    let mut c = env.cmd();
    c.arg("-C").arg(&config);
    let out = run_with(c, &["run-once", "in", "--forward", "out"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let read = Command::new(&python)
        .args(["-c", READER, "out"])
        .arg(env.queue("out"))
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let text = String::from_utf8_lossy(&read.stdout);
    assert_eq!(
        text,
        "From: aperson@example.com\nTo: test@example.com\nSubject: hi\n\nA test message.\n\n=====\n\
         [('_parsemsg', True), ('foo', 'yes'), ('lang', 'en'), ('listid', 'test.example.com'), \
         ('original_size', 76), ('t', [1, 2]), ('version', 3)]\n"
    );
    assert!(env.files("out").is_empty(), "Mailman's finish removed it");
}
