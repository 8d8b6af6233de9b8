//! Handler abuse: exec handlers that stop reading, flood their output, hang, leave
//! children behind, cannot start, or get arguments full of shell syntax. What an admin
//! relies on: the runner neither hangs nor balloons, no shell ever sees an argument,
//! children do not outlive their handler, and the entry ends up done or shunted with a
//! short reason.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn ok(out: &std::process::Output) {
    assert_eq!(code(out), Some(0), "{}", stderr(out));
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
}

/// The `shunt_reason` of the only entry in `shunt`.
fn shunt_reason(env: &Env) -> String {
    let shunted = entries(env, "shunt", ".pck");
    assert_eq!(shunted.len(), 1, "{:?}", env.files("shunt"));
    let out = env.run(&["dump", "shunt", &shunted[0], "--format", "json"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    doc["metadata"]["shunt_reason"]
        .as_str()
        .expect("shunt_reason is a string")
        .to_string()
}

fn big_message(mb: usize) -> Vec<u8> {
    let mut msg = b"From: a@example.com\nSubject: big\n\n".to_vec();
    msg.extend((0..mb << 20).map(|i| b'a' + (i % 26) as u8));
    msg
}

/// Pids a handler wrote to `file`, one per line.
fn pids(file: &Path) -> Vec<u32> {
    read_lossy(file)
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Kills (SIGKILL) the pids listed in a file on drop: children a buggy run leaves.
struct PidReaper(PathBuf);

impl Drop for PidReaper {
    fn drop(&mut self) {
        for pid in pids(&self.0) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Handlers that stop reading

#[test]
fn handlers_that_close_stdin_early_get_a_10_mb_message_without_a_hang() {
    let msg = big_message(10);
    for (body, outcome) in [
        ("exec 0<&-\nsleep 1\nexit 0", None),
        ("head -c 100 >/dev/null\nexit 0", None),
        (
            "exec 0<&-\necho closed it >&2\nexit 3",
            Some("handler exited 3: closed it"),
        ),
    ] {
        let env = Env::new();
        let h = script(env.root(), "handler", body);
        env.enqueue("in", &msg, &[]);
        let out = run_bounded(&env, &["run-once", "in", "--", p(&h)], 60);
        ok(&out);
        assert!(env.files("in").is_empty(), "{body}: {:?}", env.files("in"));
        match outcome {
            None => assert!(env.files("shunt").is_empty(), "{body}: shunted"),
            Some(want) => {
                let reason = shunt_reason(&env);
                assert!(reason.contains(want), "{body}: {reason}");
            }
        }
    }
}

#[test]
fn a_child_holding_the_handlers_stdin_does_not_hang_the_runner() {
    let env = Env::new();
    let d = env.root().display().to_string();
    let group = HandlerReaper(env.root().join("group"));
    let child = PidReaper(env.root().join("child"));
    let h = script(
        env.root(),
        "handler",
        &format!(
            "echo $$ > '{d}/group'\nexec 3<&0\nsleep 300 <&3 &\necho $! > '{d}/child'\nexit 0"
        ),
    );
    env.enqueue("in", &big_message(10), &[]);
    let out = run_bounded(&env, &["run-once", "in", "--", p(&h)], 30);
    ok(&out);
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    for pid in pids(&child.0) {
        assert!(
            poll_for(10, || process_gone(pid)),
            "child {pid} outlived its handler"
        );
    }
    drop(group);
}

// ---------------------------------------------------------------------------------------
// Floods

/// Runs `run-once in -- HANDLER` and returns its output and the largest VmHWM (peak
/// resident memory, KiB) seen while it ran.
fn run_watching_memory(env: &Env, handler: &Path) -> (std::process::Output, u64) {
    let mut child = env.spawn(&["run-once", "in", "--", p(handler)]);
    let pid = child.id();
    let mut peak = 0u64;
    let finished = poll_for(120, || {
        if let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in status.lines() {
                if let Some(v) = line.strip_prefix("VmHWM:") {
                    let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak = peak.max(kb);
                }
            }
        }
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
        panic!("run-once still running after 120 s");
    }
    (child.wait_with_output().unwrap(), peak)
}

#[test]
fn a_handler_flooding_stdout_and_stderr_leaves_the_runner_small_and_the_reason_short() {
    for (name, flood) in [
        (
            "text",
            "head -c 50000000 /dev/zero\nhead -c 50000000 /dev/zero | tr '\\0' e >&2",
        ),
        (
            "binary",
            "head -c 50000000 /dev/urandom\nhead -c 50000000 /dev/urandom >&2",
        ),
    ] {
        let env = Env::new();
        let h = script(
            env.root(),
            "handler",
            &format!("cat >/dev/null\n{flood}\nexit 3"),
        );
        env.enqueue("in", SEED, &[]);
        let (out, peak_kb) = run_watching_memory(&env, &h);
        ok(&out);
        assert!(
            peak_kb < 64 * 1024,
            "{name}: the runner peaked at {peak_kb} KiB for 100 MB of handler output"
        );
        let reason = shunt_reason(&env);
        assert!(reason.starts_with("handler exited 3"), "{name}: {reason:?}");
        assert!(
            reason.chars().count() < 400,
            "{name}: shunt_reason of {} chars",
            reason.chars().count()
        );
        assert!(
            !reason.chars().any(|c| c.is_control()),
            "{name}: {reason:?}"
        );
        // The log line naming the entry is short as well.
        let err = stderr(&out);
        assert!(err.lines().all(|l| l.len() < 1000), "{name}: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// Hangs and leftovers

#[test]
fn a_hanging_handler_that_ignores_sigterm_is_killed_at_its_timeout_with_its_children() {
    let env = Env::new();
    let d = env.root().display().to_string();
    let cfg = env.config("runners:\n  in: {timeout: 1s}\n");
    let group = HandlerReaper(env.root().join("group"));
    let kids = PidReaper(env.root().join("kids"));
    let h = script(
        env.root(),
        "handler",
        &format!(
            "echo $$ > '{d}/group'\ntrap '' TERM INT HUP\n\
             (trap '' TERM INT HUP; exec sleep 300) &\necho $! >> '{d}/kids'\n\
             sleep 300\nexit 0"
        ),
    );
    // A message the handler never reads: the writer must not keep the runner waiting.
    env.enqueue("in", &big_message(10), &[]);
    let out = run_bounded(&env, &["-C", p(&cfg), "run-once", "in", "--", p(&h)], 60);
    ok(&out);
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let reason = shunt_reason(&env);
    assert!(reason.contains("timed out"), "{reason}");
    let children = pids(&kids.0);
    assert_eq!(children.len(), 1, "the handler did not start its child");
    for pid in children {
        assert!(poll_for(10, || process_gone(pid)), "child {pid} survived");
    }
    drop(group);
}

#[test]
fn children_a_handler_leaves_behind_are_killed_when_it_exits() {
    for exit in [0, 3] {
        let env = Env::new();
        let d = env.root().display().to_string();
        let group = HandlerReaper(env.root().join("group"));
        let kids = PidReaper(env.root().join("kids"));
        let h = script(
            env.root(),
            "handler",
            &format!(
                "echo $$ > '{d}/group'\ncat >/dev/null\n\
                 (sleep 300 & echo $! >> '{d}/kids')\n\
                 (trap '' TERM INT HUP; exec sleep 301) &\necho $! >> '{d}/kids'\n\
                 exit {exit}"
            ),
        );
        env.enqueue("in", SEED, &[]);
        let out = run_bounded(&env, &["run-once", "in", "--", p(&h)], 60);
        ok(&out);
        assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
        let children = pids(&kids.0);
        assert_eq!(children.len(), 2, "the handler did not start its children");
        for pid in children {
            assert!(
                poll_for(10, || process_gone(pid)),
                "exit {exit}: child {pid} outlived its handler"
            );
        }
        drop(group);
    }
}

// ---------------------------------------------------------------------------------------
// No shell

#[test]
fn handler_arguments_are_never_seen_by_a_shell() {
    let env = Env::new();
    let d = env.root().display().to_string();
    let marks: Vec<PathBuf> = (0..6)
        .map(|_| std::env::temp_dir().join(unique_name("SHELL")))
        .collect();
    let m: Vec<String> = marks.iter().map(|m| m.display().to_string()).collect();
    let args = vec![
        format!("$(touch {})", m[0]),
        ";".to_string(),
        format!("; touch {}", m[1]),
        format!("`touch {}`", m[2]),
        format!("| touch {}", m[3]),
        format!("&& touch {} &", m[4]),
        "$HOME".to_string(),
        "*".to_string(),
        "a\nb".to_string(),
        "'\"\\".to_string(),
    ];
    // /bin/echo itself: if a shell were involved, a mark would appear.
    env.enqueue("in", SEED, &[]);
    let mut argv = vec!["run-once", "in", "--", "/bin/echo"];
    argv.extend(args.iter().map(String::as_str));
    ok(&run_bounded(&env, &argv, 30));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));

    // A recording handler sees exactly those arguments, unexpanded.
    let rec = script(
        env.root(),
        "record",
        &format!("for a in \"$@\"; do printf '%s\\0' \"$a\"; done > '{d}/args'\nexit 0"),
    );
    env.enqueue("in", SEED, &["-m", &format!("x=$(touch {})", m[5])]);
    let mut argv = vec!["run-once", "in", "--", p(&rec)];
    argv.extend(args.iter().map(String::as_str));
    ok(&run_bounded(&env, &argv, 30));
    let got = fs::read(env.root().join("args")).unwrap();
    let want: Vec<u8> = args
        .iter()
        .flat_map(|a| a.bytes().chain(std::iter::once(0)))
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "arguments changed on the way"
    );

    // A command line written as one string in the config is one program name.
    let cfg = env.config(&format!(
        "runners:\n  in: {{handler: {{exec: \"/bin/echo hi; touch {}\"}}}}\n",
        m[0]
    ));
    env.enqueue("in", SEED, &[]);
    ok(&run_bounded(&env, &["-C", p(&cfg), "run-once", "in"], 30));
    let reason = shunt_reason(&env);
    assert!(reason.contains("could not start"), "{reason}");

    for mark in &marks {
        assert!(
            !mark.exists(),
            "{} was created: a shell ran",
            mark.display()
        );
    }
}

// ---------------------------------------------------------------------------------------
// The environment and the metadata file

#[test]
fn metadata_reaches_the_handler_only_through_a_private_file_that_is_removed() {
    let env = Env::new();
    let d = env.root().display().to_string();
    let tmp = env.root().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let marker = unique_name("marker");
    let h = script(
        env.root(),
        "handler",
        &format!(
            "cat >/dev/null\n\
             env > '{d}/env'\n\
             printf '%s\\n' \"$QTOOL_METADATA\" >> '{d}/metapaths'\n\
             stat -c '%a %u %F' \"$QTOOL_METADATA\" > '{d}/metastat'\n\
             cp \"$QTOOL_METADATA\" '{d}/meta.yaml'\n\
             case \"$(cat '{d}/mode')\" in\n\
               keep) exit 75;;\n\
               fail) exit 3;;\n\
               hang) exec sleep 30;;\n\
               *) exit 0;;\n\
             esac"
        ),
    );
    let cfg = env.config("runners:\n  in: {timeout: 1s}\n");
    for mode in ["done", "keep", "fail", "hang"] {
        fs::write(env.root().join("mode"), mode).unwrap();
        let fb = env.enqueue(
            "in",
            SEED,
            &[
                "-m",
                &format!("listid={marker}.example.com"),
                "-m",
                "secret=s3cr3t",
            ],
        );
        let mut c = env.cmd();
        c.env("TMPDIR", &tmp);
        let out = output_within(c, &["-C", p(&cfg), "run-once", "in", "--", p(&h)], b"", 60);
        ok(&out);

        let envtext = read_lossy(&env.root().join("env"));
        let vars: Vec<(&str, &str)> = envtext.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        assert_eq!(get("QTOOL_QUEUE"), Some("in"), "{mode}");
        assert_eq!(get("QTOOL_FILEBASE"), Some(fb.as_str()), "{mode}");
        let metapath = get("QTOOL_METADATA").expect("QTOOL_METADATA").to_string();
        assert!(
            Path::new(&metapath).starts_with(&tmp),
            "{mode}: metadata file {metapath} is not in $TMPDIR"
        );
        assert!(
            !envtext.contains(&marker) && !envtext.contains("s3cr3t"),
            "{mode}: metadata leaked into the environment: {envtext}"
        );
        let stat = read_lossy(&env.root().join("metastat"));
        assert_eq!(stat.trim(), "600 0 regular file", "{mode}");
        let meta = read_lossy(&env.root().join("meta.yaml"));
        assert!(
            meta.contains(&marker) && meta.contains("s3cr3t"),
            "{mode}: {meta}"
        );
        assert!(
            !Path::new(&metapath).exists(),
            "{mode}: {metapath} left behind"
        );
        // Clean up the entry for the next round.
        for q in ["in", "shunt"] {
            for f in env.files(q) {
                fs::remove_file(env.queue(q).join(f)).unwrap();
            }
        }
    }
    let left: Vec<_> = fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "files left in $TMPDIR: {left:?}");
}

#[test]
fn an_unusable_tmpdir_does_not_orphan_the_entry() {
    let env = Env::new();
    let not_a_dir = env.root().join("not-a-dir");
    fs::write(&not_a_dir, b"x").unwrap();
    let h = script(env.root(), "handler", "cat >/dev/null\nexit 0");
    let fb = env.enqueue("in", SEED, &[]);
    let mut c = env.cmd();
    c.env("TMPDIR", &not_a_dir);
    let out = output_within(c, &["run-once", "in", "--", p(&h)], b"", 60);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(p(&not_a_dir)), "TMPDIR not named: {err}");
    assert_eq!(
        env.files("in"),
        vec![format!("{fb}.pck")],
        "the entry must be put back, not left claimed; exit {:?}: {err}",
        code(&out)
    );
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
}

// ---------------------------------------------------------------------------------------
// Handlers that cannot start

#[test]
fn handlers_that_cannot_start_are_shunted_with_a_reason() {
    let env = Env::new();
    let not_exec = env.root().join("not-executable");
    fs::write(&not_exec, "#!/bin/sh\nexit 0\n").unwrap();
    let bad_interp = script(env.root(), "bad-interpreter", "exit 0");
    fs::write(&bad_interp, "#!/nonexistent/interpreter\nexit 0\n").unwrap();
    let dir = env.root().join("a-directory");
    fs::create_dir(&dir).unwrap();
    let tmp = env.root().join("tmp");
    fs::create_dir(&tmp).unwrap();
    for (program, name) in [
        (p(&not_exec), "not-executable"),
        (p(&bad_interp), "bad-interpreter"),
        (p(&dir), "a-directory"),
        (
            "no-such-command-in-path-qtool",
            "no-such-command-in-path-qtool",
        ),
    ] {
        let env = Env::new();
        let fb = env.enqueue("in", SEED, &["-m", "foo=bar"]);
        let mut c = env.cmd();
        c.env("TMPDIR", &tmp);
        let out = output_within(c, &["run-once", "in", "--", program, "arg"], b"", 30);
        ok(&out);
        assert!(stderr(&out).contains(&fb), "{name}: {}", stderr(&out));
        assert!(env.files("in").is_empty(), "{name}: {:?}", env.files("in"));
        let reason = shunt_reason(&env);
        assert!(
            reason.contains("could not start") && reason.contains(name),
            "{name}: {reason}"
        );
        // The message and metadata are intact in shunt.
        let s = entries(&env, "shunt", ".pck");
        let text = dump(&env, "shunt", &s[0], &["--message"]);
        assert!(
            text.lines()
                .any(|l| l.starts_with("foo ") && l.ends_with(": bar")),
            "{name}: {text}"
        );
        assert!(text.ends_with(std::str::from_utf8(SEED).unwrap()), "{text}");
    }
    let left: Vec<_> = fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "metadata files left behind: {left:?}");
}
