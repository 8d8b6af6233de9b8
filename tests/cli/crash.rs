//! What survives a crash: a runner killed with SIGKILL while its handler works leaves a
//! `.bak` that the next runner recovers (counting `_bak_count`), an entry recovered three
//! times goes to `bad`, a `.bak` held by a live runner is left alone, and SIGTERM/SIGINT
//! stop `qtool run` cleanly (between messages, exit 0).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A handler that records its pid (its process group: the runner starts it in its own)
/// and hangs.
fn hanging_handler(env: &Env) -> (PathBuf, HandlerReaper) {
    let pids = env.root().join("pids");
    let h = script(
        env.root(),
        "hang",
        &format!("echo $$ >> '{}'\nexec sleep 30", pids.display()),
    );
    (h, HandlerReaper(pids))
}

fn pid_count(reaper: &HandlerReaper) -> usize {
    fs::read_to_string(&reaper.0)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Starts `qtool run in -- HANDLER` and waits until the handler has started `n` times in
/// all (so this runner has claimed an entry and is inside its handler).
fn start_runner(env: &Env, handler: &Path, reaper: &HandlerReaper, n: usize) -> ChildGuard {
    let child = env.spawn(&["run", "in", "--", handler.to_str().unwrap()]);
    let guard = ChildGuard(child);
    assert!(
        wait_until(20, || pid_count(reaper) >= n),
        "the handler did not start (run #{n})"
    );
    guard
}

fn sigkill(mut guard: ChildGuard) {
    guard.0.kill().expect("SIGKILL the runner");
    guard.0.wait().expect("reap the runner");
}

fn bak_count(env: &Env, queue: &str, fb: &str) -> Option<String> {
    dump(env, queue, fb, &[]).lines().find_map(|l| {
        let (k, v) = l.split_once(": ")?;
        (k.trim_end() == "_bak_count").then(|| v.to_string())
    })
}

#[test]
fn sigkill_during_the_handler_leaves_a_bak_that_the_next_run_recovers() {
    let env = Env::new();
    let (hang, reaper) = hanging_handler(&env);
    let fb = env.enqueue("in", SEED, &["-m", "listid=test.example.com"]);

    let runner = start_runner(&env, &hang, &reaper, 1);
    assert_eq!(
        env.files("in"),
        vec![format!("{fb}.bak")],
        "claimed while handled"
    );
    sigkill(runner);
    assert_eq!(
        env.files("in"),
        vec![format!("{fb}.bak")],
        "the crash left the .bak"
    );

    let out = run_bounded(&env, &["run-once", "in", "--discard"], 30);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 recovered"),
        "the summary counts the recovery: {}",
        stderr(&out)
    );
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
}

#[test]
fn recovered_entry_keeps_its_message_and_metadata() {
    let env = Env::new();
    let (hang, reaper) = hanging_handler(&env);
    let mut msg = b"Subject: survivor\n\n".to_vec();
    msg.extend_from_slice(b"\x00\xff\xfe binary\r\n");
    env.enqueue(
        "in",
        &msg,
        &["-m", "listid=test.example.com", "-m", "foo=yes"],
    );
    sigkill(start_runner(&env, &hang, &reaper, 1));

    let out = run_bounded(&env, &["run-once", "in", "--forward", "out"], 30);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let outs = entries(&env, "out", ".pck");
    assert_eq!(outs.len(), 1, "{:?}", env.files("out"));
    let text = dump(&env, "out", &outs[0], &[]);
    assert!(text.lines().any(|l| l == "foo      : yes"), "{text}");
    assert!(
        text.lines().any(|l| l == "listid   : test.example.com"),
        "{text}"
    );
    assert_eq!(env.run(&["dequeue", "out"], b"").stdout, msg);
}

#[test]
fn three_crashes_send_the_entry_to_bad_with_bak_count_3() {
    let env = Env::new();
    let (hang, reaper) = hanging_handler(&env);
    let fb = env.enqueue("in", SEED, &["-m", "listid=test.example.com"]);

    for round in 1..=3 {
        // Each new runner recovers the orphan (counting it), claims it again, and dies
        // with it in its handler.
        sigkill(start_runner(&env, &hang, &reaper, round));
        assert_eq!(
            env.files("in"),
            vec![format!("{fb}.bak")],
            "after crash #{round}"
        );
        let want = if round == 1 {
            None
        } else {
            Some((round - 1).to_string())
        };
        assert_eq!(
            bak_count(&env, "in", &fb),
            want,
            "_bak_count after {} recoveries",
            round - 1
        );
        assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
    }

    // The third recovery gives up on it: preserved in bad, not handed to the handler.
    let out = run_bounded(&env, &["run-once", "in", "--forward", "out"], 30);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains(&fb), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert!(env.files("out").is_empty(), "{:?}", env.files("out"));
    assert_eq!(env.files("bad"), vec![format!("{fb}.psv")]);
    assert_eq!(bak_count(&env, "bad", &fb).as_deref(), Some("3"));
    let path = env.queue("bad").join(format!("{fb}.psv"));
    let out = env.run(&["dump", path.to_str().unwrap(), "--message"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(out.stdout.ends_with(SEED), "the message is preserved");
}

#[test]
fn orphaned_bak_files_are_counted_then_preserved() {
    let env = Env::new();
    let a = format!("1000.1+{HEX}");
    let b = format!("1000.2+{HEX}");
    put_file(
        &env,
        "in",
        &format!("{a}.bak"),
        &native_entry("listid: x.example.com\n", b"orphan a\n"),
    );
    put_file(
        &env,
        "in",
        &format!("{b}.bak"),
        &native_entry("_bak_count: 2\n", b"orphan b\n"),
    );
    // A handler that keeps everything queued, so the recovered entry can be inspected.
    let keep = script(env.root(), "keep", "exit 75");
    let out = run_bounded(&env, &["run-once", "in", "--", keep.to_str().unwrap()], 30);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    // b reached the limit: preserved with its count, never handled.
    assert_eq!(env.files("bad"), vec![format!("{b}.psv")]);
    assert_eq!(bak_count(&env, "bad", &b).as_deref(), Some("3"));
    // a was recovered and handled (kept), so no .bak is left.
    let left = env.files("in");
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with(".pck"), "{left:?}");
    assert_eq!(env.run(&["dequeue", "in"], b"").stdout, b"orphan a\n");
}

#[test]
fn a_bak_held_by_a_live_runner_is_left_alone() {
    let env = Env::new();
    let (hang, reaper) = hanging_handler(&env);
    let fb = env.enqueue("in", SEED, &[]);
    let runner = start_runner(&env, &hang, &reaper, 1);

    let out = run_bounded(&env, &["run-once", "in", "--discard"], 30);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        env.files("in"),
        vec![format!("{fb}.bak")],
        "the live runner's claim was not touched"
    );
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
    assert_eq!(pid_count(&reaper), 1, "nobody else ran the handler on it");
    assert_eq!(bak_count(&env, "in", &fb), None, "not counted as recovered");
    // Once the runner dies, the orphan is recovered.
    sigkill(runner);
    let out = run_bounded(&env, &["run-once", "in", "--discard"], 30);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
}

/// A `.bak` that is still locked when a runner starts (a dead runner's handler, say,
/// holding its stdin for a moment) is not forgotten: once its holder is gone the same
/// running runner recovers it and handles it, without a restart.
#[test]
fn a_bak_busy_at_start_is_recovered_once_its_holder_is_gone() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &[]);
    let pck = env.queue("in").join(format!("{fb}.pck"));
    let bak = env.queue("in").join(format!("{fb}.bak"));
    fs::rename(&pck, &bak).unwrap();
    // flock(1) holds the same kind of lock a claim does, for two seconds.
    let holder = std::process::Command::new("flock")
        .arg("-x")
        .arg(&bak)
        .args(["-c", "sleep 2"])
        .spawn()
        .expect("flock(1) from util-linux");
    let holder = ChildGuard(holder);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let cfg = env.config("runners:\n  in: {sleep_time: 0.2s}\n");
    let log = env.root().join("r.log");
    let mut runner = spawn_logged(
        &env,
        &["-C", cfg.to_str().unwrap(), "run", "in", "--discard", "-v"],
        &log,
    );
    assert!(
        poll_for(20, || env.files("in").is_empty()),
        "the busy .bak was never recovered: {:?}\n{}",
        env.files("in"),
        read_lossy(&log)
    );
    drop(holder);
    send_signal(runner.child.id(), "TERM");
    let status = wait_or_kill(&mut runner.child, 20, "runner");
    assert_eq!(status.code(), Some(0));
    let text = read_lossy(&log);
    assert!(text.contains("held by live processes left alone"), "{text}");
    assert!(
        text.contains(&format!("recovered orphaned entry {fb}")),
        "{text}"
    );
}

/// Starts `qtool run` with a log file and waits until it has logged (so its signal
/// handlers are in place).
fn start_logged(env: &Env, extra: &[&str]) -> (ChildGuard, PathBuf) {
    let log = env.root().join("runner.log");
    let mut args = vec!["run", "in", "--log-file", log.to_str().unwrap()];
    args.extend_from_slice(extra);
    let guard = ChildGuard(env.spawn(&args));
    assert!(
        wait_until(20, || fs::metadata(&log)
            .map(|m| m.len() > 0)
            .unwrap_or(false)),
        "the runner never logged to {}",
        log.display()
    );
    (guard, log)
}

fn signal(guard: &ChildGuard, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &guard.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn sigterm_stops_an_idle_runner_with_exit_0() {
    let env = Env::new();
    let (mut guard, _log) = start_logged(&env, &["--discard"]);
    signal(&guard, "-TERM");
    let status = wait_or_kill(&mut guard.0, 20, "qtool run after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn sigint_stops_an_idle_runner_with_exit_0() {
    let env = Env::new();
    let (mut guard, _log) = start_logged(&env, &["--discard"]);
    signal(&guard, "-INT");
    let status = wait_or_kill(&mut guard.0, 20, "qtool run after SIGINT");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn sigterm_during_a_handler_finishes_that_entry_and_starts_no_other() {
    let env = Env::new();
    let pids = env.root().join("pids");
    let go = env.root().join("go");
    let reaper = HandlerReaper(pids.clone());
    let h = script(
        env.root(),
        "slow",
        &format!(
            "echo $$ >> '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\ncat > /dev/null\nexit 0",
            pids.display(),
            go.display()
        ),
    );
    let first = env.enqueue("in", b"Subject: first\n\nx\n", &[]);
    let second = env.enqueue("in", b"Subject: second\n\ny\n", &[]);
    let (mut guard, _log) = start_logged(&env, &["--", h.to_str().unwrap()]);
    assert!(
        wait_until(20, || pid_count(&reaper) >= 1),
        "handler never started"
    );
    assert!(env.files("in").contains(&format!("{first}.bak")));

    signal(&guard, "-TERM");
    fs::write(&go, b"").unwrap();
    let status = wait_or_kill(&mut guard.0, 20, "qtool run after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(
        pid_count(&reaper),
        1,
        "a second entry was started after the stop"
    );
    assert_eq!(
        env.files("in"),
        vec![format!("{second}.pck")],
        "the first entry is done, the second still queued"
    );
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
}

#[test]
fn sighup_reopens_the_log_file() {
    let env = Env::new();
    fs::create_dir_all(env.queue("in")).unwrap();
    let log = env.root().join("runner.log");
    let args = [
        "-v",
        "run",
        "in",
        "--discard",
        "--log-file",
        log.to_str().unwrap(),
    ];
    let mut guard = ChildGuard(env.spawn(&args));
    assert!(
        wait_until(20, || fs::metadata(&log)
            .map(|m| m.len() > 0)
            .unwrap_or(false)),
        "the runner never logged"
    );
    // logrotate: move the file away, then SIGHUP.
    let rotated = env.root().join("runner.log.1");
    fs::rename(&log, &rotated).unwrap();
    signal(&guard, "-HUP");
    // Staged elsewhere and renamed in, so the entry appears at once, whole.
    let fb = env.enqueue("staging", SEED, &[]);
    fs::rename(
        env.queue("staging").join(format!("{fb}.pck")),
        env.queue("in").join(format!("{fb}.pck")),
    )
    .unwrap();
    assert!(
        wait_until(20, || fs::read_to_string(&log)
            .map(|t| t.contains(&fb))
            .unwrap_or(false)),
        "after SIGHUP the runner did not log {fb} to a new {}",
        log.display()
    );
    assert!(!fs::read_to_string(&rotated).unwrap().contains(&fb));
    signal(&guard, "-TERM");
    let status = wait_or_kill(&mut guard.0, 20, "qtool run after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
}
