//! Runners as long-lived processes (SPEC §3, §5): many producers and runners on one
//! queue handle every message exactly once; SIGKILLed runners lose nothing; a live
//! runner's claim is never recovered from under it; slices split the hash space; the
//! signals of `qtool run`; the handler timeout kills the handler's whole process group.
//!
//! Every wait is a polling loop with a generous deadline; nothing here asserts timing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use crate::common::*;

/// How many times each line occurs in a file.
fn line_counts(path: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in read_lossy(path).lines() {
        *counts.entry(line.to_string()).or_insert(0) += 1;
    }
    counts
}

fn line_count(path: &Path) -> usize {
    read_lossy(path).lines().count()
}

/// `qtool dump QUEUE FILEBASE`, which must succeed.
fn dump_meta(env: &Env, queue: &str, fb: &str) -> String {
    let out = env.run(&["dump", queue, fb], b"");
    assert_eq!(out.status.code(), Some(0), "dump: {}", stderr(&out));
    stdout(&out)
}

/// Runs `qtool ARGS` to completion (killed and failed after `secs` seconds); returns its
/// exit status and its stderr.
fn run_capped(
    env: &Env,
    name: &str,
    args: &[&str],
    secs: u64,
) -> (std::process::ExitStatus, String) {
    let mut r = spawn_logged(env, args, &env.root().join(format!("{name}.stderr")));
    let st = r.wait_exit(secs);
    (st, r.log_text())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A handler that appends `<filebase> <first line>` (the tests' messages start with
/// their Subject) to `log` with one short write (atomic under O_APPEND).
fn subject_logger(env: &Env, log: &Path) -> std::path::PathBuf {
    script(
        env.root(),
        "log-subject.sh",
        &format!(
            "IFS= read -r subject\necho \"$QTOOL_FILEBASE $subject\" >> '{}'",
            log.display()
        ),
    )
}

#[test]
fn every_message_is_handled_exactly_once_by_competing_runners() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 250;
    let env = Env::new();
    let cfg = env.config("runners:\n  in: {sleep_time: 0.1s}\n");
    let log = env.root().join("handled.log");
    let handler = subject_logger(&env, &log);

    let mut runners: Vec<Background> = ["in", "in", "in:0:2", "in:1:2"]
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            spawn_logged(
                &env,
                &["-C", s(&cfg), "run", spec, "--", s(&handler)],
                &env.root().join(format!("runner{i}.log")),
            )
        })
        .collect();

    let enqueued: Vec<String> = std::thread::scope(|scope| {
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let env = &env;
                scope.spawn(move || {
                    (0..PER_PRODUCER)
                        .map(|n| {
                            let msg = format!("Subject: p{p}-{n}\n\nbody\n");
                            env.enqueue("in", msg.as_bytes(), &[])
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        producers
            .into_iter()
            .flat_map(|h| h.join().expect("producer"))
            .collect()
    });
    assert_eq!(enqueued.len(), PRODUCERS * PER_PRODUCER);

    let drained = poll_for(60, || unfinished(&env, "in").is_empty());
    assert!(
        drained,
        "queue not drained: {:?}",
        unfinished(&env, "in").len()
    );
    for r in &runners {
        r.signal("TERM");
    }
    for r in &mut runners {
        let st = r.wait_exit(30);
        assert_eq!(st.code(), Some(0), "runner log:\n{}", r.log_text());
        assert!(r.log_text().contains("runner stopped"), "{}", r.log_text());
    }

    let counts = line_counts(&log);
    let mut by_subject: BTreeMap<String, usize> = BTreeMap::new();
    let mut handled_fbs = BTreeSet::new();
    for (line, n) in &counts {
        let (fb, subject) = line.split_once(' ').expect("`<filebase> <subject>`");
        *by_subject.entry(subject.to_string()).or_insert(0) += n;
        handled_fbs.insert(fb.to_string());
    }
    let twice: Vec<_> = by_subject.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    for p in 0..PRODUCERS {
        for n in 0..PER_PRODUCER {
            let subject = format!("Subject: p{p}-{n}");
            assert_eq!(by_subject.get(&subject), Some(&1), "{subject} not handled");
        }
    }
    assert_eq!(by_subject.len(), PRODUCERS * PER_PRODUCER);
    let enqueued: BTreeSet<String> = enqueued.into_iter().collect();
    assert_eq!(
        handled_fbs, enqueued,
        "handled entries are not the enqueued ones"
    );
    assert!(
        env.files("shunt").is_empty(),
        "shunt: {:?}",
        env.files("shunt")
    );
    assert!(env.files("bad").is_empty(), "bad: {:?}", env.files("bad"));
}

#[test]
fn sigkilled_runners_lose_nothing_and_repeat_at_most_one_entry_per_kill() {
    const ENTRIES: usize = 600;
    const KILLS: usize = 10;
    let env = Env::new();
    let msgs = env.root().join("msgs");
    fs::create_dir(&msgs).unwrap();
    let files: Vec<String> = (0..ENTRIES)
        .map(|n| {
            let path = msgs.join(format!("m{n:03}.eml"));
            fs::write(&path, format!("Subject: m{n:03}\n\nbody {n}\n")).unwrap();
            path.to_string_lossy().into_owned()
        })
        .collect();
    let mut args = vec!["enqueue", "in"];
    args.extend(files.iter().map(String::as_str));
    let out = env.run(&args, b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), ENTRIES);

    let log = env.root().join("handled.log");
    let handler = script(
        env.root(),
        "handler.sh",
        &format!(
            "IFS= read -r subject\necho \"$subject\" >> '{}'\nsleep 0.005",
            log.display()
        ),
    );
    let run_args = ["run", "in", "--", s(&handler)];
    let mut runner_logs = Vec::new();
    for k in 0..KILLS {
        let before = line_count(&log);
        let rlog = env.root().join(format!("runner{k}.log"));
        let mut r = spawn_logged(&env, &run_args, &rlog);
        runner_logs.push(rlog);
        // Let this runner handle some entries (a varying number) before killing it.
        let target = before + 20 + 5 * k;
        assert!(
            poll_for(30, || line_count(&log) >= target),
            "runner {k} made no progress; its log:\n{}",
            r.log_text()
        );
        r.signal("KILL");
        let st = r.wait_exit(10);
        assert_eq!(st.signal(), Some(9));
    }
    assert!(
        !unfinished(&env, "in").is_empty(),
        "the queue drained before the last kill; the test proves nothing"
    );

    let rlog = env.root().join("runner-final.log");
    let mut last = spawn_logged(&env, &run_args, &rlog);
    runner_logs.push(rlog);
    assert!(
        poll_for(60, || unfinished(&env, "in").is_empty()),
        "queue not drained: {:?}",
        unfinished(&env, "in").len()
    );
    last.signal("TERM");
    assert_eq!(last.wait_exit(30).code(), Some(0), "{}", last.log_text());

    // A killed runner's handler may still be writing its line: wait for the log to settle.
    let mut prev = usize::MAX;
    poll_for(5, || {
        let now = line_count(&log);
        let settled = now == prev;
        prev = now;
        std::thread::sleep(std::time::Duration::from_millis(100));
        settled
    });
    // A handler whose runner was killed before it fed the message sees empty input and
    // logs an empty subject; that is the handler's business, not a handled entry.
    let mut counts = line_counts(&log);
    counts.remove("");
    for n in 0..ENTRIES {
        let subject = format!("Subject: m{n:03}");
        assert!(counts.contains_key(&subject), "{subject} was lost");
    }
    assert_eq!(counts.len(), ENTRIES, "unexpected lines: {counts:?}");
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.len() <= KILLS,
        "{} entries handled more than once after {KILLS} kills: {repeated:?}",
        repeated.len()
    );
    let recovered: usize = runner_logs
        .iter()
        .map(|p| read_lossy(p).matches("recovered orphaned entry").count())
        .sum();
    assert!(
        recovered <= KILLS,
        "{recovered} recoveries after {KILLS} kills"
    );
    assert!(
        repeated.len() <= recovered,
        "{} entries repeated but only {recovered} recovered",
        repeated.len()
    );
    assert!(env.files("bad").is_empty(), "bad: {:?}", env.files("bad"));
    assert!(
        env.files("shunt").is_empty(),
        "shunt: {:?}",
        env.files("shunt")
    );
    assert!(unfinished(&env, "in").is_empty());
}

#[test]
fn run_once_and_recover_leave_the_claim_of_a_live_runner_alone() {
    let env = Env::new();
    let pids = env.root().join("handler.pids");
    let _reaper = GroupReaper(pids.clone());
    let started = env.root().join("started");
    let handler = script(
        env.root(),
        "slow.sh",
        &format!(
            "echo $$ >> '{}'\ntouch '{}'\nexec sleep 30",
            pids.display(),
            started.display()
        ),
    );
    let fb1 = env.enqueue("in", b"Subject: long\n\nlong one\n", &[]);
    let mut live = spawn_logged(
        &env,
        &["run", "in", "--grace", "1s", "--", s(&handler)],
        &env.root().join("live.log"),
    );
    assert!(
        poll_for(30, || started.exists()
            && env.files("in") == vec![format!("{fb1}.bak")]),
        "the live runner did not claim {fb1}: {:?}\n{}",
        env.files("in"),
        live.log_text()
    );
    let fb2 = env.enqueue("in", b"Subject: short\n\nshort one\n", &[]);

    let out = env.run(&["run-once", "in", "--discard"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The pass ran (the ready entry is gone) but the live claim is untouched.
    assert_eq!(env.files("in"), vec![format!("{fb1}.bak")], "fb2 was {fb2}");
    assert!(
        stderr(&out).contains("1 done") && stderr(&out).contains("0 recovered"),
        "{}",
        stderr(&out)
    );
    let meta = dump_meta(&env, "in", &fb1);
    assert!(
        !meta.contains("_bak_count"),
        "recovered a live claim:\n{meta}"
    );
    assert!(env.files("bad").is_empty(), "bad: {:?}", env.files("bad"));

    // `qtool recover` leaves it alone too.
    let out = env.run(&["recover", "in"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains(&fb1),
        "recover touched a live claim: {}",
        stdout(&out)
    );
    assert_eq!(env.files("in"), vec![format!("{fb1}.bak")]);
    let meta = dump_meta(&env, "in", &fb1);
    assert!(
        !meta.contains("_bak_count"),
        "recovered a live claim:\n{meta}"
    );
    assert!(env.files("bad").is_empty(), "bad: {:?}", env.files("bad"));

    // Stopping the live runner gives the entry back, still uncounted.
    live.signal("TERM");
    assert_eq!(live.wait_exit(30).code(), Some(0), "{}", live.log_text());
    assert_eq!(env.files("in"), vec![format!("{fb1}.pck")]);
    let meta = dump_meta(&env, "in", &fb1);
    assert!(!meta.contains("_bak_count"), "{meta}");
}

#[test]
fn slices_split_the_queue_by_the_first_bit_of_the_digest() {
    let env = Env::new();
    let msgs = env.root().join("msgs");
    fs::create_dir(&msgs).unwrap();
    let files: Vec<String> = (0..40)
        .map(|n| {
            let path = msgs.join(format!("m{n}.eml"));
            fs::write(&path, format!("Subject: s{n}\n\nbody {n}\n")).unwrap();
            path.to_string_lossy().into_owned()
        })
        .collect();
    let mut args = vec!["enqueue", "in"];
    args.extend(files.iter().map(String::as_str));
    let out = env.run(&args, b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(all.len(), 40);
    let first_hex = |fb: &String| {
        let digest = fb.split_once('+').unwrap().1;
        u8::from_str_radix(&digest[..1], 16).unwrap()
    };
    let (low, high): (Vec<String>, Vec<String>) =
        all.iter().cloned().partition(|fb| first_hex(fb) < 8);
    assert!(
        !low.is_empty() && !high.is_empty(),
        "40 digests all on one side"
    );
    let pck = |fbs: &[String]| {
        let mut v: Vec<String> = fbs.iter().map(|fb| format!("{fb}.pck")).collect();
        v.sort();
        v
    };

    let out = env.run(&["run-once", "in:0:2", "--discard"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{} done", low.len())),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.files("in"),
        pck(&high),
        "in:0:2 must take exactly the digests starting 0-7"
    );

    let out = env.run(&["run-once", "in:1:2", "--discard"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{} done", high.len())),
        "{}",
        stderr(&out)
    );
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
}

#[test]
fn bad_slice_specs_are_usage_errors_that_say_what_is_allowed() {
    let env = Env::new();
    let fb = env.enqueue("in", b"Subject: x\n\nx\n", &[]);
    for (spec, allowed) in [
        ("in:2:2", "0 to 1"),
        ("in:0:3", "power of two"),
        ("in:x:2", "RUNNER:SLICE:RANGE"),
        ("in:0", "RUNNER:SLICE:RANGE"),
        ("in:0:2:4", "RUNNER:SLICE:RANGE"),
    ] {
        for cmd in ["run-once", "run"] {
            let (st, err) = run_capped(&env, "bad-spec", &[cmd, spec, "--discard"], 30);
            fs::remove_file(env.root().join("bad-spec.stderr")).unwrap();
            assert_eq!(st.code(), Some(2), "{cmd} {spec}: {err}");
            assert!(
                err.contains(allowed),
                "{cmd} {spec}: no `{allowed}` in {err:?}"
            );
            assert!(err.lines().count() <= 2, "{cmd} {spec}: {err:?}");
        }
    }
    assert_eq!(
        env.files("in"),
        vec![format!("{fb}.pck")],
        "a bad spec touched the queue"
    );
}

/// Starts `qtool run ARGS` with stderr in `<root>/<name>.log` and waits until it says
/// it started (so its signal handlers are in place).
fn start_runner(env: &Env, name: &str, args: &[&str]) -> Background {
    let r = spawn_logged(env, args, &env.root().join(format!("{name}.log")));
    assert!(
        poll_for(30, || r.log_text().contains("runner started")),
        "{name} did not start: {}",
        r.log_text()
    );
    r
}

#[test]
fn sigterm_and_sigint_stop_an_idle_runner_with_status_0() {
    let env = Env::new();
    for sig in ["TERM", "INT"] {
        let mut r = start_runner(&env, sig, &["run", "in", "--discard"]);
        r.signal(sig);
        let st = r.wait_exit(30);
        assert_eq!(st.code(), Some(0), "SIG{sig}: {}", r.log_text());
        assert!(
            r.log_text().contains("runner stopped"),
            "SIG{sig}: {}",
            r.log_text()
        );
    }
}

#[test]
fn sigterm_lets_the_running_handler_finish_its_message() {
    let env = Env::new();
    let started = env.root().join("started");
    let finished = env.root().join("finished");
    let handler = script(
        env.root(),
        "h.sh",
        &format!(
            "touch '{}'\nsleep 2\ntouch '{}'\nexit 0",
            started.display(),
            finished.display()
        ),
    );
    let fb = env.enqueue("in", b"Subject: x\n\nx\n", &[]);
    let mut r = start_runner(&env, "r", &["run", "in", "--", s(&handler)]);
    assert!(poll_for(30, || started.exists()), "{}", r.log_text());
    r.signal("TERM");
    let st = r.wait_exit(30);
    assert_eq!(st.code(), Some(0), "{}", r.log_text());
    assert!(finished.exists(), "the handler was cut short");
    assert!(env.files("in").is_empty(), "{fb}: {:?}", env.files("in"));
    assert!(
        env.files("shunt").is_empty(),
        "shunted: {:?}",
        env.files("shunt")
    );
    assert!(r.log_text().contains("runner stopped"), "{}", r.log_text());
}

#[test]
fn sigterm_with_a_hung_handler_kills_it_after_the_grace_and_puts_the_entry_back() {
    let env = Env::new();
    let pids = env.root().join("handler.pids");
    let _reaper = GroupReaper(pids.clone());
    let handler = script(
        env.root(),
        "hang.sh",
        &format!("echo $$ >> '{}'\nexec sleep 60", pids.display()),
    );
    let fb = env.enqueue("in", b"Subject: x\n\nx\n", &[]);
    let mut r = start_runner(
        &env,
        "r",
        &["run", "in", "--grace", "1s", "--", s(&handler)],
    );
    assert!(
        poll_for(30, || !read_lossy(&pids).trim().is_empty()),
        "{}",
        r.log_text()
    );
    let handler_pid: u32 = read_lossy(&pids).trim().parse().unwrap();
    r.signal("TERM");
    let st = r.wait_exit(30);
    assert_eq!(st.code(), Some(0), "{}", r.log_text());
    assert_eq!(
        env.files("in"),
        vec![format!("{fb}.pck")],
        "{}",
        r.log_text()
    );
    assert!(
        env.files("shunt").is_empty(),
        "shunted: {:?}",
        env.files("shunt")
    );
    assert!(
        poll_for(10, || process_gone(handler_pid)),
        "the hung handler (pid {handler_pid}) is still running"
    );
}

#[test]
fn sigusr1_stops_the_runner_with_status_75() {
    let env = Env::new();
    let mut r = start_runner(&env, "r", &["run", "in", "--discard"]);
    r.signal("USR1");
    let st = r.wait_exit(30);
    assert_eq!(st.code(), Some(75), "{}", r.log_text());
}

#[test]
fn sighup_reopens_the_log_file_after_rotation() {
    let env = Env::new();
    let logf = env.root().join("qtool.log");
    let rotated = env.root().join("qtool.log.1");
    let mut r = spawn_logged(
        &env,
        &["-v", "run", "in", "--discard", "--log-file", s(&logf)],
        &env.root().join("stderr.log"),
    );
    assert!(
        poll_for(30, || read_lossy(&logf).contains("runner started")),
        "no start line in the log file: {:?}; stderr: {}",
        read_lossy(&logf),
        r.log_text()
    );
    fs::rename(&logf, &rotated).unwrap();
    r.signal("HUP");
    let fb = env.enqueue("in", b"Subject: x\n\nx\n", &[]);
    assert!(
        poll_for(30, || read_lossy(&logf).contains(&fb)),
        "no new log file with {fb}: {:?}; old: {:?}",
        read_lossy(&logf),
        read_lossy(&rotated)
    );
    assert!(
        !read_lossy(&rotated).contains(&fb),
        "written to the rotated file"
    );
    r.signal("TERM");
    assert_eq!(r.wait_exit(30).code(), Some(0));
    assert!(read_lossy(&logf).contains("runner stopped"));
    assert!(r.log_text().is_empty(), "stderr: {}", r.log_text());
}

#[test]
fn a_handler_past_its_timeout_is_shunted_and_its_whole_process_group_killed() {
    let env = Env::new();
    let cfg = env.config("runners:\n  in: {timeout: 1s}\n");
    let pids = env.root().join("handler.pids");
    let _reaper = GroupReaper(pids.clone());
    let grandchild = env.root().join("grandchild.pid");
    let handler = script(
        env.root(),
        "slow.sh",
        &format!(
            "echo $$ >> '{}'\nsleep 300 &\necho $! > '{}'\nsleep 60\nwait",
            pids.display(),
            grandchild.display()
        ),
    );
    let fb = env.enqueue("in", b"Subject: x\n\nx\n", &[]);
    let (st, err) = run_capped(
        &env,
        "run-once",
        &["-C", s(&cfg), "run-once", "in", "--", s(&handler)],
        30,
    );
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(env.files("in").is_empty(), "{fb}: {:?}", env.files("in"));
    let shunted = env.files("shunt");
    assert_eq!(shunted.len(), 1, "{shunted:?}\n{err}");
    let sfb = shunted[0].strip_suffix(".pck").unwrap();
    let meta = dump_meta(&env, "shunt", sfb);
    let reason = meta
        .lines()
        .find(|l| l.starts_with("shunt_reason"))
        .unwrap_or_else(|| panic!("no shunt_reason:\n{meta}"));
    assert!(reason.contains("timed out"), "{reason}");
    assert!(
        meta.lines()
            .any(|l| l.starts_with("whichq") && l.ends_with(": in")),
        "{meta}"
    );

    let gpid: u32 = read_lossy(&grandchild)
        .trim()
        .parse()
        .expect("grandchild pid");
    assert!(
        poll_for(5, || process_gone(gpid)),
        "the handler's background child (pid {gpid}) survived the timeout"
    );
}

#[test]
fn a_handler_never_acts_on_a_truncated_message_when_its_runner_is_sigkilled() {
    let env = Env::new();
    let pids = env.root().join("handler.pids");
    let _reaper = GroupReaper(pids.clone());
    let go = env.root().join("go");
    let size = env.root().join("size");
    // The handler waits (without reading its input) until told to go, then counts what
    // it was given: the runner is killed while the message is still being fed.
    let handler = script(
        env.root(),
        "count.sh",
        &format!(
            "echo $$ >> '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\nwc -c > '{}'",
            pids.display(),
            go.display(),
            size.display()
        ),
    );
    let mut message = b"Subject: big\n\n".to_vec();
    message.resize(1 << 20, b'x');
    message.push(b'\n');
    env.enqueue("in", &message, &[]);
    let mut r = spawn_logged(
        &env,
        &["run", "in", "--", s(&handler)],
        &env.root().join("runner.log"),
    );
    assert!(
        poll_for(30, || !read_lossy(&pids).trim().is_empty()),
        "{}",
        r.log_text()
    );
    let handler_pid: u32 = read_lossy(&pids).trim().parse().unwrap();
    r.signal("KILL");
    r.wait_exit(10);
    fs::write(&go, b"").unwrap();
    assert!(
        poll_for(10, || process_gone(handler_pid)),
        "the handler still runs"
    );
    let seen = read_lossy(&size);
    assert!(
        seen.is_empty() || seen.trim() == message.len().to_string(),
        "the handler of a dead runner went on with {} of the message's {} bytes",
        seen.trim(),
        message.len()
    );
}

#[test]
fn a_metadata_file_left_by_a_killed_runner_does_not_stop_a_new_one() {
    let env = Env::new();
    let handler = script(env.root(), "ok.sh", "cat > /dev/null\nexit 0");
    let mut r = start_runner(&env, "r", &["run", "in", "--", s(&handler)]);
    // A runner SIGKILLed while its handler ran leaves its metadata file in TMPDIR (no
    // destructor runs); pids are reused. Plant what such a runner with this pid left.
    let tmp = env.root().join("tmp");
    for n in 0..3 {
        fs::write(
            tmp.join(format!("qtool-{}-{n}.yaml", r.pid())),
            "stale: 1\n",
        )
        .unwrap();
    }
    let fb = env.enqueue("in", b"Subject: x\n\nx\n", &[]);
    assert!(
        poll_for(30, || unfinished(&env, "in").is_empty()
            || r.child.try_wait().unwrap().is_some()),
        "{}",
        r.log_text()
    );
    assert!(
        r.child.try_wait().unwrap().is_none(),
        "the runner died: {}",
        r.log_text()
    );
    assert!(
        unfinished(&env, "in").is_empty(),
        "{fb}: {:?}",
        env.files("in")
    );
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
    r.signal("TERM");
    assert_eq!(r.wait_exit(30).code(), Some(0), "{}", r.log_text());
}
