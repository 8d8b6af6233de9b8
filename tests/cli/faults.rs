//! A crash at every step: for each fault point (`QTOOL_FAULT`, see src/fault.rs) the
//! process aborts there, and the queue afterwards must hold every entry in exactly one
//! place — or, at the documented at-least-once moments, in two — and `recover` or the next
//! runner must put everything right.

use crate::common::*;

/// Runs qtool with `QTOOL_FAULT=point` and checks that it died there (SIGABRT).
fn crash(env: &Env, point: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut c = env.cmd();
    c.env("QTOOL_FAULT", point);
    let out = run_with(c, args, stdin);
    assert_eq!(
        out.status.code(),
        None,
        "{point}: expected an abort, got {:?}: {}",
        out.status,
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(&format!("QTOOL_FAULT={point}")),
        "{}",
        stderr(&out)
    );
    out
}

fn names(env: &Env, queue: &str) -> Vec<String> {
    env.files(queue)
}

fn with_ext(env: &Env, queue: &str, ext: &str) -> usize {
    names(env, queue)
        .iter()
        .filter(|n| n.ends_with(ext))
        .count()
}

#[test]
fn enqueue_crash_before_rename_leaves_only_a_temp_file_that_recover_removes() {
    for point in ["enqueue.written", "enqueue.synced"] {
        let env = Env::new();
        let out = crash(&env, point, &["enqueue", "in", "-"], SEED);
        assert!(out.stdout.is_empty(), "{point}: nothing may be printed");
        assert_eq!(
            with_ext(&env, "in", ".pck"),
            0,
            "{point}: {:?}",
            names(&env, "in")
        );
        assert_eq!(with_ext(&env, "in", ".pck.tmp"), 1, "{point}");
        // The entry was never visible; list and run-once see nothing.
        let list = env.run(&["list", "in", "--format", "names"], b"");
        assert_eq!(stdout(&list), "");
        let rec = env.run(&["recover", "in"], b"");
        assert_eq!(rec.status.code(), Some(0));
        assert!(
            stderr(&rec).contains("1 temporary files removed"),
            "{}",
            stderr(&rec)
        );
        assert!(
            names(&env, "in").is_empty(),
            "{point}: {:?}",
            names(&env, "in")
        );
    }
}

#[test]
fn enqueue_crash_after_rename_leaves_a_complete_entry() {
    let env = Env::new();
    let out = crash(&env, "enqueue.renamed", &["enqueue", "in", "-"], SEED);
    // Visible but not printed: the producer may enqueue it again (at least once).
    assert!(out.stdout.is_empty());
    let files = names(&env, "in");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".pck"));
    let msg = env.run(&["dequeue", "in"], b"");
    assert_eq!(msg.stdout, SEED);
}

#[test]
fn a_batch_crash_before_the_commit_leaves_nothing_visible() {
    let env = Env::new();
    let dir = env.root().join("msgs");
    std::fs::create_dir(&dir).unwrap();
    let mut args = vec!["enqueue".to_string(), "in".to_string()];
    for i in 0..20 {
        let p = dir.join(format!("m{i}"));
        std::fs::write(&p, format!("Subject: {i}\n\nbody\n")).unwrap();
        args.push(p.to_string_lossy().into_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crash(&env, "enqueue.synced", &args, b"");
    assert_eq!(with_ext(&env, "in", ".pck"), 0);
    assert_eq!(with_ext(&env, "in", ".pck.tmp"), 20);
    env.run(&["recover", "in"], b"");
    assert!(names(&env, "in").is_empty());
}

#[test]
fn claim_crash_before_rename_leaves_the_entry_ready() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &[]);
    crash(&env, "claim.locked", &["run-once", "in", "--discard"], b"");
    assert_eq!(names(&env, "in"), vec![format!("{fb}.pck")]);
    let out = env.run(&["run-once", "in", "--discard"], b"");
    assert!(stderr(&out).contains("1 done"), "{}", stderr(&out));
    assert!(names(&env, "in").is_empty());
}

/// Crashes after the claim leave an orphaned `.bak`: the next runner recovers it with
/// `_bak_count: 1` and handles it.
#[test]
fn crashes_while_claimed_leave_a_bak_that_is_recovered_and_counted() {
    for point in ["claim.renamed", "handler.done", "finish"] {
        let env = Env::new();
        let fb = env.enqueue("in", SEED, &[]);
        crash(&env, point, &["run-once", "in", "--discard"], b"");
        assert_eq!(names(&env, "in"), vec![format!("{fb}.bak")], "{point}");
        let rec = env.run(&["recover", "in"], b"");
        assert_eq!(stdout(&rec), format!("recovered in/{fb}\n"), "{point}");
        assert_eq!(names(&env, "in"), vec![format!("{fb}.pck")], "{point}");
        let d = dump(&env, "in", &fb, &[]);
        assert!(d.contains("_bak_count: 1\n"), "{point}: {d}");
        let out = env.run(&["run-once", "in", "--discard"], b"");
        assert!(stderr(&out).contains("1 done"), "{point}: {}", stderr(&out));
        assert!(names(&env, "in").is_empty(), "{point}");
    }
}

/// A crash after the forward wrote its copy but before the source was finished: the
/// entry is in both queues, the documented at-least-once moment; recovery hands the
/// source again, so the target gets a second copy — never zero.
#[test]
fn forward_crash_duplicates_but_never_loses() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &[]);
    crash(
        &env,
        "forward.written",
        &["run-once", "in", "--forward", "out"],
        b"",
    );
    assert_eq!(names(&env, "in"), vec![format!("{fb}.bak")]);
    assert_eq!(with_ext(&env, "out", ".pck"), 1);
    let out = env.run(&["run-once", "in", "--forward", "out"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(names(&env, "in").is_empty());
    assert_eq!(with_ext(&env, "out", ".pck"), 2);
}

#[test]
fn shunt_crash_duplicates_in_shunt_but_never_loses() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &[]);
    let fail = script(env.root(), "fail", "exit 3");
    let h = fail.to_str().unwrap();
    crash(&env, "shunt.written", &["run-once", "in", "--", h], b"");
    assert_eq!(names(&env, "in"), vec![format!("{fb}.bak")]);
    assert_eq!(with_ext(&env, "shunt", ".pck"), 1);
    env.run(&["run-once", "in", "--", h], b"");
    assert!(names(&env, "in").is_empty());
    assert_eq!(with_ext(&env, "shunt", ".pck"), 2);
}

/// Crashes inside recovery itself: before the rewritten file replaces the orphan, the
/// orphan is intact (and the temp file is cleaned later); after, the rewritten `.bak`
/// is there with its count. Either way the next recovery finishes the job.
#[test]
fn recovery_crashes_leave_one_bak() {
    for (point, count_after) in [("recover.written", "1"), ("recover.replaced", "2")] {
        let env = Env::new();
        let fb = env.enqueue("in", SEED, &[]);
        crash(&env, "handler.done", &["run-once", "in", "--discard"], b"");
        crash(&env, point, &["recover", "in"], b"");
        let baks = with_ext(&env, "in", ".bak");
        assert_eq!(baks, 1, "{point}: {:?}", names(&env, "in"));
        assert_eq!(with_ext(&env, "in", ".pck"), 0, "{point}");
        let rec = env.run(&["recover", "in"], b"");
        assert_eq!(rec.status.code(), Some(0));
        assert_eq!(names(&env, "in"), vec![format!("{fb}.pck")], "{point}");
        let d = dump(&env, "in", &fb, &[]);
        assert!(
            d.contains(&format!("_bak_count: {count_after}\n")),
            "{point}: {d}"
        );
    }
}
