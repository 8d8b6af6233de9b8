//! Disks that fill up, queue directories that cannot exist, entries that cannot be read:
//! what an admin sees (exit codes, stderr, files) when the storage under qtool fails.
//!
//! These tests mount small tmpfs file systems, so they need root (as CI runs them).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A tmpfs mounted on a directory for the life of the value: unmounted on drop, even
/// when the test panics.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(path).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "cannot mount a tmpfs on {} (these tests need root)",
            path.display()
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Writes a file in `dir` until the file system is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).unwrap();
    let chunk = vec![0x55u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    let _ = f.sync_all();
    path
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every file below `dir` whose name ends in `.tmp`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return found;
    };
    for item in rd {
        let path = item.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            found.extend(temp_files(&path));
        } else if path.to_string_lossy().ends_with(".tmp") {
            found.push(path);
        }
    }
    found
}

fn assert_disk_full(out: &std::process::Output) {
    let err = stderr(out);
    assert!(
        matches!(code(out), Some(74 | 75)),
        "expected 74 or 75 for a full disk, got {:?}: {err}",
        code(out)
    );
    assert!(
        err.contains("full") || err.contains("No space left"),
        "stderr does not say the disk is full: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.lines().all(|l| l.starts_with("qtool: ")), "{err}");
}

/// `dequeue QUEUE FILEBASE -o FILE`, returning the message bytes.
fn dequeue_named(env: &Env, queue: &str, fb: &str) -> Vec<u8> {
    let path = env.root().join(format!("dequeued-{fb}"));
    let out = env.run(&["dequeue", queue, fb, "-o", p(&path)], b"");
    assert_eq!(code(&out), Some(0), "dequeue {fb}: {}", stderr(&out));
    let bytes = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    bytes
}

#[test]
fn a_message_larger_than_the_free_space_is_refused_and_earlier_entries_survive() {
    let env = Env::new();
    let disk = Tmpfs::mount(&env.queue_dir(), "1m");
    let mut before = Vec::new();
    for i in 0..3 {
        let msg = format!("Subject: small {i}\n\nbody {i}\n").into_bytes();
        let fb = env.enqueue("in", &msg, &["-m", "listid=test.example.com"]);
        before.push((fb, msg));
    }
    let big = env.root().join("big.eml");
    {
        let mut f = fs::File::create(&big).unwrap();
        f.write_all(b"Subject: too big\n\n").unwrap();
        f.write_all(&vec![b'x'; 2 << 20]).unwrap();
    }
    let out = env.run(&["enqueue", "in", p(&big)], b"");
    assert_disk_full(&out);
    assert!(
        out.stdout.is_empty(),
        "printed a filebase: {}",
        stdout(&out)
    );
    assert!(
        temp_files(disk.path()).is_empty(),
        "{:?}",
        temp_files(disk.path())
    );
    let mut want: Vec<String> = before.iter().map(|(fb, _)| format!("{fb}.pck")).collect();
    want.sort();
    assert_eq!(env.files("in"), want, "only the earlier entries are queued");
    for (fb, msg) in &before {
        assert_eq!(&dequeue_named(&env, "in", fb), msg, "entry {fb} damaged");
    }
    drop(disk);
}

#[test]
fn an_endless_message_is_cut_off_by_the_full_disk_and_leaves_nothing() {
    let env = Env::new();
    let disk = Tmpfs::mount(&env.queue_dir(), "1m");
    let fb = env.enqueue("in", SEED, &[]);
    let out = run_bounded(&env, &["enqueue", "in", "/dev/zero"], 60);
    assert_disk_full(&out);
    assert!(
        out.stdout.is_empty(),
        "printed a filebase: {}",
        stdout(&out)
    );
    assert!(
        temp_files(disk.path()).is_empty(),
        "{:?}",
        temp_files(disk.path())
    );
    assert_eq!(env.files("in"), vec![format!("{fb}.pck")]);
    // The space is free again: the next message fits.
    let next = env.enqueue("in", b"Subject: next\n\nx\n", &[]);
    assert_eq!(dequeue_named(&env, "in", &fb), SEED);
    assert_eq!(dequeue_named(&env, "in", &next), b"Subject: next\n\nx\n");
    drop(disk);
}

#[test]
fn a_batch_that_runs_out_of_space_keeps_exactly_what_it_printed() {
    let env = Env::new();
    let disk = Tmpfs::mount(&env.queue_dir(), "1m");
    let mut paths = Vec::new();
    let mut messages = Vec::new();
    for i in 0..50 {
        let mut msg = format!("Subject: batch {i}\n\n").into_bytes();
        msg.extend((0..40 * 1024).map(|j: usize| b'a' + ((i * 7 + j) % 26) as u8));
        let path = env.root().join(format!("f{i:02}.eml"));
        fs::write(&path, &msg).unwrap();
        paths.push(path);
        messages.push(msg);
    }
    let mut args = vec!["enqueue", "in"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let out = env.run(&args, b"");
    assert_disk_full(&out);
    let printed: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert!(
        !printed.is_empty() && printed.len() < 50,
        "expected some but not all of 50 x 40 KiB to fit in 1 MiB, printed {}",
        printed.len()
    );
    assert!(
        temp_files(disk.path()).is_empty(),
        "{:?}",
        temp_files(disk.path())
    );
    let mut want: Vec<String> = printed.iter().map(|fb| format!("{fb}.pck")).collect();
    want.sort();
    assert_eq!(
        env.files("in"),
        want,
        "the queue holds exactly the printed entries"
    );
    // The printed entries are the first files, in order, each intact.
    for (i, fb) in printed.iter().enumerate() {
        assert!(
            dequeue_named(&env, "in", fb) == messages[i],
            "entry {fb} is not the message of f{i:02}.eml"
        );
    }
    drop(disk);
}

#[test]
fn a_forward_to_a_full_queue_puts_the_entry_back() {
    let env = Env::new();
    let target = env.root().join("out-disk");
    let disk = Tmpfs::mount(&target, "1m");
    let cfg = env.config(&format!("runners:\n  out: {{path: {}}}\n", p(&target)));
    let msg = b"From: a@example.com\nSubject: waits for space\n\nbody\n";
    let fb = env.enqueue("in", msg, &["-m", "listid=test.example.com"]);
    let filler = fill(disk.path());

    let out = run_bounded(
        &env,
        &["-C", p(&cfg), "run-once", "in", "--forward", "out"],
        60,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), Some(0), "{err}");
    assert!(err.contains(&fb), "the put-back entry is not named: {err}");
    assert_eq!(
        env.files("in"),
        vec![format!("{fb}.pck")],
        "put back as .pck"
    );
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
    let left: Vec<_> = fs::read_dir(disk.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        vec!["filler".to_string()],
        "nothing left in the full queue"
    );

    // Once there is space again, the same entry goes through, whole.
    fs::remove_file(filler).unwrap();
    let out = run_bounded(
        &env,
        &["-C", p(&cfg), "run-once", "in", "--forward", "out"],
        60,
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let out = env.run(&["-C", p(&cfg), "dequeue", "out"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, msg);
    drop(disk);
}

#[test]
fn min_free_refuses_an_enqueue_before_writing_anything() {
    // A 1 MiB disk is below `min_free: 100M` even when empty.
    let env = Env::new();
    let disk = Tmpfs::mount(&env.queue_dir(), "1m");
    let cfg = env.config("min_free: 100M\n");
    let out = env.run(&["-C", p(&cfg), "enqueue", "in"], SEED);
    assert_error(&out, 75);
    assert!(stderr(&out).contains("min_free"), "{}", stderr(&out));
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    drop(disk);

    // On an ordinary disk, a limit larger than any disk.
    let env = Env::new();
    let cfg = env.config("min_free: 1000000G\n");
    let a = env.root().join("a.eml");
    fs::write(&a, SEED).unwrap();
    for args in [
        vec!["-C", p(&cfg), "enqueue", "in"],
        vec!["-C", p(&cfg), "enqueue", "in", p(&a), p(&a)],
    ] {
        let out = env.run(&args, SEED);
        assert_error(&out, 75);
        assert!(stderr(&out).contains("min_free"), "{}", stderr(&out));
        assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    }
}

#[test]
fn min_free_on_the_forward_target_puts_the_entry_back() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &[]);
    let cfg = env.config("min_free: 1000000G\n");
    let out = env.run(&["-C", p(&cfg), "run-once", "in", "--forward", "out"], b"");
    let err = stderr(&out);
    assert_eq!(code(&out), Some(0), "{err}");
    assert!(err.contains(&fb), "{err}");
    assert_eq!(env.files("in"), vec![format!("{fb}.pck")]);
    assert!(env.files("out").is_empty(), "{:?}", env.files("out"));
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
}

#[test]
fn a_kept_entry_on_a_full_disk_is_put_back_not_orphaned() {
    let env = Env::new();
    let fb = env.enqueue("in", SEED, &["-m", "foo=bar"]);
    let h = script(env.root(), "handler", "cat >/dev/null\nexit 75");
    let cfg = env.config("min_free: 1000000G\n");
    let out = env.run(&["-C", p(&cfg), "run-once", "in", "--", p(&h)], b"");
    let err = stderr(&out);
    assert_eq!(
        env.files("in"),
        vec![format!("{fb}.pck")],
        "the kept entry must stay ready, not claimed; stderr: {err}"
    );
    assert_eq!(code(&out), Some(0), "{err}");
    assert!(err.contains(&fb), "{err}");
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
    // Nothing was lost or changed.
    let text = dump(&env, "in", &fb, &["--message"]);
    assert!(text.contains("foo      : bar"), "{text}");
}

#[test]
fn recovery_on_a_full_disk_leaves_the_orphan_intact() {
    let env = Env::new();
    let disk = Tmpfs::mount(&env.queue_dir(), "1m");
    let fb = format!("1000.5+{HEX}");
    let bytes = native_entry("listid: test.example.com\nversion: 3\n", SEED);
    let bak = put_file(&env, "in", &format!("{fb}.bak"), &bytes);
    let filler = fill(disk.path());

    let out = env.run(&["recover", "in"], b"");
    assert_disk_full(&out);
    assert_eq!(env.files("in"), vec![format!("{fb}.bak")]);
    assert_eq!(fs::read(&bak).unwrap(), bytes, "the orphan was changed");
    assert!(
        temp_files(disk.path()).is_empty(),
        "{:?}",
        temp_files(disk.path())
    );

    fs::remove_file(filler).unwrap();
    let out = env.run(&["recover", "in"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(env.files("in"), vec![format!("{fb}.pck")]);
    let text = dump(&env, "in", &fb, &["--message"]);
    assert!(text.contains("_bak_count: 1"), "{text}");
    drop(disk);
}

#[test]
fn dequeue_to_a_full_disk_leaves_the_entry_queued() {
    let env = Env::new();
    let outdir = env.root().join("small");
    let disk = Tmpfs::mount(&outdir, "1m");
    let mut msg = b"Subject: does not fit\n\n".to_vec();
    msg.extend(std::iter::repeat_n(b'z', 2 << 20));
    let fb = env.enqueue("in", &msg, &[]);
    let dest = outdir.join("message.eml");
    let out = env.run(&["dequeue", "in", "-o", p(&dest)], b"");
    assert_disk_full(&out);
    assert_eq!(env.files("in"), vec![format!("{fb}.pck")], "still queued");
    drop(disk);
    assert!(dequeue_named(&env, "in", &fb) == msg, "the entry changed");
}

#[test]
fn a_queue_dir_under_a_regular_file_is_refused_without_a_panic() {
    let env = Env::new();
    let file = env.root().join("file");
    fs::write(&file, b"not a directory\n").unwrap();
    let qdir = file.join("q");
    let fb = format!("1000.1+{HEX}");
    let cmd = |args: &[&str], stdin: &[u8]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_qtool"));
        c.current_dir(env.root())
            .env_remove("QTOOL_CONFIG")
            .env_remove("QTOOL_QUEUE_DIR")
            .arg("-d")
            .arg(&qdir);
        run_with(c, args, stdin)
    };

    let out = cmd(&["enqueue", "in"], SEED);
    assert_error(&out, 73);
    assert!(stderr(&out).contains(p(&file)), "{}", stderr(&out));
    assert_eq!(fs::read(&file).unwrap(), b"not a directory\n");

    for args in [
        vec!["dequeue", "in"],
        vec!["run-once", "in", "--discard"],
        vec!["run-once", "in", "--forward", "out"],
        vec!["list"],
        vec!["list", "in"],
        vec!["stats"],
        vec!["recover", "in"],
        vec!["unshunt"],
        vec!["dump", "in", &fb],
        vec!["delete", "in", &fb],
        vec!["move", "in", &fb, "--to", "out"],
    ] {
        let out = cmd(&args, b"");
        let err = stderr(&out);
        assert!(
            matches!(code(&out), Some(66 | 73 | 74)),
            "{args:?}: exit {:?}: {err}",
            code(&out)
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.contains(p(&file)) || err.contains(&fb),
            "{args:?}: {err}"
        );
        assert!(
            err.lines().all(|l| l.starts_with("qtool: ")),
            "{args:?}: {err}"
        );
    }
    assert_eq!(fs::read(&file).unwrap(), b"not a directory\n");
}

#[test]
fn a_directory_entry_with_files_inside_goes_to_bad_as_it_is() {
    let env = Env::new();
    let fb = format!("1000.1+{HEX}");
    let dir = env.queue("in").join(format!("{fb}.pck"));
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("inner.txt"), b"inner\n").unwrap();
    fs::write(dir.join("sub").join("deeper.txt"), b"deeper\n").unwrap();

    // Named directly, by the reading commands: refused, nothing changes or panics.
    let out = env.run(&["dump", "in", &fb], b"");
    assert!(
        !stderr(&out).contains("panicked") && matches!(code(&out), Some(65 | 66)),
        "dump: {:?} {}",
        code(&out),
        stderr(&out)
    );
    let good = env.enqueue("in", SEED, &[]);
    let out = run_bounded(&env, &["run-once", "in", "--forward", "out"], 30);
    let err = stderr(&out);
    assert_eq!(code(&out), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(&fb), "the preserved entry is not named: {err}");
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    let moved = env.queue("bad").join(format!("{fb}.psv"));
    assert!(moved.is_dir(), "{:?}", env.files("bad"));
    assert_eq!(fs::read(moved.join("inner.txt")).unwrap(), b"inner\n");
    assert_eq!(
        fs::read(moved.join("sub").join("deeper.txt")).unwrap(),
        b"deeper\n"
    );
    // The good entry behind it went through.
    assert_eq!(entries(&env, "out", ".pck").len(), 1, "{good}");
    assert_eq!(env.run(&["dequeue", "out"], b"").stdout, SEED);

    // `dequeue` of a named directory entry: refused (65), moved to bad, no panic.
    let fb2 = format!("1000.2+{HEX}");
    let dir2 = env.queue("in").join(format!("{fb2}.pck"));
    fs::create_dir_all(&dir2).unwrap();
    fs::write(dir2.join("x"), b"x").unwrap();
    let out = env.run(&["dequeue", "in", &fb2], b"");
    assert_error(&out, 65);
    assert!(env.queue("bad").join(format!("{fb2}.psv")).is_dir());
}

#[test]
fn a_full_tmpdir_puts_the_entry_back_instead_of_orphaning_it() {
    let env = Env::new();
    let tmp = env.root().join("tmp");
    let disk = Tmpfs::mount(&tmp, "64k");
    let h = script(env.root(), "handler", "cat >/dev/null\nexit 0");
    let long = format!("x={}", "a".repeat(8000));
    let fb = env.enqueue("in", SEED, &["-m", &long]);
    fill(disk.path());
    let mut c = env.cmd();
    c.env("TMPDIR", &tmp);
    let out = output_within(c, &["run-once", "in", "--", p(&h)], b"", 60);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("full") || err.contains("No space left"),
        "{err}"
    );
    assert_eq!(
        env.files("in"),
        vec![format!("{fb}.pck")],
        "the entry must be put back, not left claimed; exit {:?}: {err}",
        code(&out)
    );
    assert!(env.files("bad").is_empty(), "{:?}", env.files("bad"));
    assert!(env.files("shunt").is_empty(), "{:?}", env.files("shunt"));
    drop(disk);
}

/// A runner starting on a full disk cannot rewrite an orphan's `_bak_count`: it says so,
/// leaves the orphan as it is, and still runs its pass (exit 0) instead of failing.
#[test]
fn a_runner_on_a_full_disk_still_runs_when_recovery_cannot() {
    let env = Env::new();
    let disk = Tmpfs::mount(&env.queue_dir(), "1m");
    let fb = format!("1000.5+{HEX}");
    let bytes = native_entry("listid: test.example.com\nversion: 3\n", SEED);
    let bak = put_file(&env, "in", &format!("{fb}.bak"), &bytes);
    let filler = fill(disk.path());
    let out = env.run(&["run-once", "in", "--discard"], b"");
    let err = stderr(&out);
    assert_eq!(code(&out), Some(0), "{err}");
    assert!(err.contains(&format!("cannot recover {fb} now")), "{err}");
    assert_eq!(fs::read(&bak).unwrap(), bytes, "the orphan was changed");
    fs::remove_file(filler).unwrap();
    drop(disk);
}
