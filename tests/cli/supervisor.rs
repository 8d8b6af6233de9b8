//! `qtool run --all` (SPEC §5): one runner process per slice of every runner with
//! `start: true`, restarted when it dies, given up on after `max_restarts`; one
//! supervisor per `queue_dir`; SIGTERM stops everything; a SIGKILLed supervisor leaves
//! no orphans. Processes are observed through /proc, as an admin would with `ps`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

/// A config with `in` (two slices, forwarding to `out`), `out` (discard) and a `shunt`
/// runner that is not started, all polling fast; `extra` adds runners.
fn supervisor_config(env: &Env, extra: &str) -> PathBuf {
    env.config(&format!(
        "queue_dir: {}\nrunners:\n  in:\n    handler: {{forward: out}}\n    instances: 2\n    sleep_time: 0.1s\n  out:\n    handler: discard\n    sleep_time: 0.1s\n  shunt: {{start: false, sleep_time: 0.1s}}\n{extra}",
        env.queue_dir().display()
    ))
}

fn start_supervisor(env: &Env, cfg: &Path) -> Background {
    spawn_logged(
        env,
        &["-C", cfg.to_str().unwrap(), "-v", "run", "--all"],
        &env.root().join("supervisor.log"),
    )
}

/// The supervisor's runner children as (pid, `RUNNER[:SLICE:RANGE]`), the argument after
/// `run` on their command line. A child between fork and exec still shows the
/// supervisor's own `run --all` and is left out.
fn runners_of(sup: u32) -> Vec<(u32, String)> {
    let mut found: Vec<(u32, String)> = children_of(sup)
        .into_iter()
        .filter_map(|pid| {
            let cmd = cmdline_of(pid);
            let words: Vec<&str> = cmd.split(' ').collect();
            let at = words.iter().position(|w| *w == "run")?;
            let spec = words.get(at + 1)?;
            (!spec.starts_with('-')).then(|| (pid, spec.to_string()))
        })
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}

fn specs(runners: &[(u32, String)]) -> Vec<&str> {
    runners.iter().map(|(_, s)| s.as_str()).collect()
}

/// Waits until the supervisor's children are exactly the runners `want` (sorted).
fn wait_for_runners(sup: &Background, want: &[&str]) -> Vec<(u32, String)> {
    let mut now = Vec::new();
    let ok = poll_for(30, || {
        now = runners_of(sup.pid());
        specs(&now) == want && children_of(sup.pid()).len() == want.len()
    });
    assert!(
        ok,
        "runner children {now:?} (all children {:?}), want {want:?}; log:\n{}",
        children_of(sup.pid()),
        sup.log_text()
    );
    now
}

/// How many entries the `out` runners have finished, from the verbose log.
fn out_finished(sup: &Background) -> usize {
    sup.log_text().matches(" out: finished ").count()
}

/// Enqueues `n` messages to `in` in one batch and returns their filebases.
fn enqueue_batch(env: &Env, tag: &str, n: usize) -> Vec<String> {
    let dir = env.root().join(format!("msgs-{tag}"));
    fs::create_dir(&dir).unwrap();
    let files: Vec<String> = (0..n)
        .map(|i| {
            let p = dir.join(format!("{i}.eml"));
            fs::write(&p, format!("Subject: {tag}-{i}\n\nbody\n")).unwrap();
            p.to_string_lossy().into_owned()
        })
        .collect();
    let mut args = vec!["enqueue", "in"];
    args.extend(files.iter().map(String::as_str));
    let out = env.run(&args, b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

const RUNNERS: [&str; 3] = ["in:0:2", "in:1:2", "out"];

#[test]
fn supervisor_runs_restarts_and_stops_one_process_per_slice() {
    let env = Env::new();
    let cfg = supervisor_config(&env, "");
    let mut sup = start_supervisor(&env, &cfg);
    let first = wait_for_runners(&sup, &RUNNERS);

    // Entries flow in → out → discarded, each handled by the slice that owns it.
    let fbs = enqueue_batch(&env, "a", 20);
    assert!(
        poll_for(30, || out_finished(&sup) >= 20
            && unfinished(&env, "in").is_empty()
            && unfinished(&env, "out").is_empty()),
        "entries did not flow through; in: {:?}, out: {:?}; log:\n{}",
        env.files("in"),
        env.files("out"),
        sup.log_text()
    );
    let log = sup.log_text();
    assert_eq!(out_finished(&sup), 20, "{log}");
    for fb in &fbs {
        let digest = fb.split_once('+').unwrap().1;
        let slice = if u8::from_str_radix(&digest[..1], 16).unwrap() < 8 {
            "in:0:2"
        } else {
            "in:1:2"
        };
        assert_eq!(
            log.matches(&format!(" {slice}: finished {fb}")).count(),
            1,
            "{fb} not finished once by {slice}:\n{log}"
        );
    }
    assert!(env.files("shunt").is_empty() && env.files("bad").is_empty());

    // A runner that dies is replaced by a new process for the same slice.
    let (victim, _) = first.iter().find(|(_, s)| s == "in:0:2").unwrap().clone();
    send_signal(victim, "KILL");
    let mut now = Vec::new();
    assert!(
        poll_for(30, || {
            now = runners_of(sup.pid());
            specs(&now) == RUNNERS && now.iter().all(|(pid, _)| *pid != victim)
        }),
        "no replacement for in:0:2 (pid {victim}): {now:?}; log:\n{}",
        sup.log_text()
    );
    assert!(
        sup.log_text().contains("restarting runner in:0:2"),
        "{}",
        sup.log_text()
    );
    let (replacement, _) = now.iter().find(|(_, s)| s == "in:0:2").unwrap().clone();
    for (pid, spec) in &first {
        if spec != "in:0:2" {
            assert!(
                now.contains(&(*pid, spec.clone())),
                "{spec} was restarted too"
            );
        }
    }
    enqueue_batch(&env, "b", 4);
    assert!(
        poll_for(30, || out_finished(&sup) >= 24),
        "entries stopped flowing after the restart; log:\n{}",
        sup.log_text()
    );

    // One supervisor per queue_dir: a second one refuses to start and names the first.
    let mut second = spawn_logged(
        &env,
        &["-C", cfg.to_str().unwrap(), "run", "--all"],
        &env.root().join("second.log"),
    );
    let st = second.wait_exit(30);
    assert_eq!(st.code(), Some(75), "{}", second.log_text());
    assert!(
        second.log_text().contains(&format!("pid {}", sup.pid())),
        "does not name pid {}: {}",
        sup.pid(),
        second.log_text()
    );
    assert_eq!(specs(&runners_of(sup.pid())), RUNNERS);

    // SIGTERM: every runner stops, then the supervisor exits 0.
    let last = runners_of(sup.pid());
    assert!(last.iter().any(|(pid, _)| *pid == replacement));
    sup.signal("TERM");
    let st = sup.wait_exit(30);
    assert_eq!(st.code(), Some(0), "{}", sup.log_text());
    for (pid, spec) in &last {
        assert!(
            poll_for(10, || process_gone(*pid)),
            "runner {spec} (pid {pid}) outlived the supervisor"
        );
    }
    let log = sup.log_text();
    assert!(log.matches("runner stopped").count() >= 3, "{log}");
    assert!(log.contains("supervisor stopped"), "{log}");
}

#[test]
fn supervisor_gives_up_on_a_runner_that_cannot_start_and_keeps_the_others() {
    let env = Env::new();
    let cfg = supervisor_config(
        &env,
        "  broken:\n    handler: discard\n    path: /proc/nonexistent/x\n    max_restarts: 2\n    sleep_time: 0.1s\n",
    );
    let mut sup = start_supervisor(&env, &cfg);
    assert!(
        poll_for(30, || sup.log_text().contains("giving up on runner broken")),
        "{}",
        sup.log_text()
    );
    let log = sup.log_text();
    assert_eq!(
        log.matches("restarting runner broken").count(),
        2,
        "max_restarts: 2 means two restarts:\n{log}"
    );
    wait_for_runners(&sup, &RUNNERS);

    let fb = env.enqueue("in", b"Subject: after\n\nbody\n", &[]);
    assert!(
        poll_for(30, || out_finished(&sup) >= 1
            && unfinished(&env, "in").is_empty()
            && unfinished(&env, "out").is_empty()),
        "{fb} did not flow in -> out after giving up on broken; log:\n{}",
        sup.log_text()
    );
    assert!(
        sup.child.try_wait().unwrap().is_none(),
        "the supervisor quit"
    );

    sup.signal("TERM");
    assert_eq!(sup.wait_exit(30).code(), Some(0), "{}", sup.log_text());
}

#[test]
fn runners_stop_by_themselves_when_the_supervisor_is_sigkilled() {
    let env = Env::new();
    let cfg = supervisor_config(&env, "");
    let mut sup = start_supervisor(&env, &cfg);
    let runners = wait_for_runners(&sup, &RUNNERS);
    // Let every runner get its signal handlers in place (it logs when it has).
    assert!(
        poll_for(30, || sup.log_text().matches("runner started").count() >= 3),
        "{}",
        sup.log_text()
    );
    sup.signal("KILL");
    sup.wait_exit(10);
    for (pid, spec) in &runners {
        assert!(
            poll_for(10, || process_gone(*pid)),
            "runner {spec} (pid {pid}) is an orphan: still running after its supervisor died"
        );
    }
    let log = sup.log_text();
    assert!(
        log.matches("runner stopped").count() >= 3,
        "runners did not stop in order:\n{log}"
    );
    // The lock died with the supervisor: a new one can start.
    let mut again = start_supervisor(&env, &cfg);
    wait_for_runners(&again, &RUNNERS);
    again.signal("TERM");
    assert_eq!(again.wait_exit(30).code(), Some(0), "{}", again.log_text());
}
