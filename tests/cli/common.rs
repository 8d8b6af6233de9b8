//! Shared plumbing for the end-to-end tests: a temporary queue directory and the real
//! `qtool` binary.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const SEED: &[u8] = b"From: aperson@example.com\nTo: test@example.com\n\nA test message.\n";

/// The directory of the Mailman 3.3.10 fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/mailman")
}

/// A scratch area with a queue directory; everything is removed on drop.
pub struct Env {
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.tmp.path().join("queues")
    }

    pub fn queue(&self, name: &str) -> PathBuf {
        self.queue_dir().join(name)
    }

    /// A `qtool` command with `-d <queue_dir>`, run in the scratch directory (so no
    /// `./qtool.yaml` is picked up) and with no config from the environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_qtool"));
        c.current_dir(self.root())
            .env_remove("QTOOL_CONFIG")
            .env_remove("QTOOL_QUEUE_DIR")
            .arg("-d")
            .arg(self.queue_dir());
        c
    }

    /// Runs qtool with `args` and `stdin`, returning its output.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_with(self.cmd(), args, stdin)
    }

    /// Writes a config file and returns its path.
    pub fn config(&self, text: &str) -> PathBuf {
        let path = self.root().join("qtool.yaml");
        fs::write(&path, text).unwrap();
        path
    }

    /// Enqueues `message` with `args` (e.g. `-m k=v`) and returns the filebase.
    pub fn enqueue(&self, queue: &str, message: &[u8], args: &[&str]) -> String {
        let mut all = vec!["enqueue", queue];
        all.extend_from_slice(args);
        let out = self.run(&all, message);
        assert_eq!(
            out.status.code(),
            Some(0),
            "enqueue failed: {}",
            stderr(&out)
        );
        let text = stdout(&out);
        text.trim().to_string()
    }

    /// File names in a queue directory, sorted.
    pub fn files(&self, queue: &str) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(self.queue(queue)) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Spawns qtool in the background.
    pub fn spawn(&self, args: &[&str]) -> Child {
        let mut c = self.cmd();
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().expect("spawn qtool")
    }
}

pub fn run_with(mut c: Command, args: &[&str], stdin: &[u8]) -> Output {
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn qtool");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait qtool");
    feeder.join().unwrap();
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes an executable shell script and returns its path.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

// ---------------------------------------------------------------------------------------
// Helpers for the enqueue/dequeue/dump/runner/crash/exit_codes tests.

/// A filebase digest for hand-written entries.
pub const HEX: &str = "0123456789abcdef0123456789abcdef01234567";

/// The exit code of a finished qtool.
pub fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

/// Asserts that qtool failed with `want`, saying why on stderr in at most two lines, each
/// starting with `qtool: `, and printing nothing on stdout.
pub fn assert_error(o: &Output, want: i32) {
    let err = stderr(o);
    assert_eq!(code(o), Some(want), "stderr: {err}");
    assert!(o.stdout.is_empty(), "stdout not empty: {}", stdout(o));
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        !lines.is_empty() && lines.len() <= 2,
        "expected one or two lines on stderr, got: {err:?}"
    );
    for line in &lines {
        assert!(
            line.starts_with("qtool: "),
            "line without `qtool: `: {err:?}"
        );
    }
}

/// Polls `cond` every 20 ms until it holds or `secs` seconds have passed.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits for a child to exit within `secs` seconds; kills it and panics otherwise.
pub fn wait_or_kill(child: &mut Child, secs: u64, what: &str) -> std::process::ExitStatus {
    let mut status = None;
    let done = wait_until(secs, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if !done {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what}: still running after {secs} s (killed)");
    }
    status.unwrap()
}

/// Writes a file with `bytes` in a queue directory (created if needed).
pub fn put_file(env: &Env, queue: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let dir = env.queue(queue);
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// A native entry file's bytes.
pub fn native_entry(meta_yaml: &str, message: &[u8]) -> Vec<u8> {
    let mut v = format!("---\n{meta_yaml}...\n").into_bytes();
    v.extend_from_slice(message);
    v
}

/// The filebases of the entries with extension `ext` (e.g. ".pck") in a queue.
pub fn entries(env: &Env, queue: &str, ext: &str) -> Vec<String> {
    env.files(queue)
        .into_iter()
        .filter_map(|f| f.strip_suffix(ext).map(str::to_string))
        .filter(|f| !f.contains(".pck"))
        .collect()
}

/// `qtool dump QUEUE FILEBASE [ARGS]` that must succeed; returns stdout.
pub fn dump(env: &Env, queue: &str, fb: &str, args: &[&str]) -> String {
    let mut all = vec!["dump", queue, fb];
    all.extend_from_slice(args);
    let out = env.run(&all, b"");
    assert_eq!(code(&out), Some(0), "dump failed: {}", stderr(&out));
    stdout(&out)
}

/// Kills (SIGKILL) the process groups whose leaders' pids a handler wrote, one per line,
/// into a file: the handlers a killed runner leaves behind. Runs on drop.
pub struct HandlerReaper(pub PathBuf);

impl Drop for HandlerReaper {
    fn drop(&mut self) {
        if let Ok(text) = fs::read_to_string(&self.0) {
            for pid in text.split_whitespace() {
                let _ = Command::new("kill")
                    .args(["-9", "--", &format!("-{pid}")])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// Kills a spawned child (SIGKILL) and reaps it on drop, whatever the test did.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs qtool with `args` and no input, killing it (and failing) if it is still running
/// after `secs` seconds: for cases where a bug would hang.
pub fn run_bounded(env: &Env, args: &[&str], secs: u64) -> Output {
    let child = env.spawn(args);
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(out) => out.expect("wait for qtool"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("qtool {args:?} still running after {secs} s (killed)");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers for the concurrency and supervisor tests: long-lived processes, signals, /proc.

/// Polls `cond` every 20 ms for up to `secs` seconds; true as soon as it holds.
pub fn poll_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A qtool running in the background, SIGKILLed and reaped when dropped (so a failing
/// test leaves no runner behind).
pub struct Background {
    pub child: Child,
    pub log: PathBuf,
}

impl Background {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (a name such as `TERM`, `INT`, `HUP`, `USR1`, `KILL`).
    pub fn signal(&self, sig: &str) {
        send_signal(self.pid(), sig);
    }

    /// What it has written to standard error so far.
    pub fn log_text(&self) -> String {
        read_lossy(&self.log)
    }

    /// Waits up to `secs` seconds for it to exit; panics (after killing it) otherwise.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let mut status = None;
        let done = poll_for(secs, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        if !done {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "qtool (pid {}) still running after {secs} s; its log:\n{}",
                self.pid(),
                self.log_text()
            );
        }
        status.unwrap()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `qtool -d <queue_dir> ARGS` with stdin and stdout on /dev/null and stderr
/// appended to `log`, which a test can poll. Its `TMPDIR` is `<root>/tmp`, so the
/// handler metadata files of runners other tests SIGKILL cannot collide with its own.
pub fn spawn_logged(env: &Env, args: &[&str], log: &Path) -> Background {
    let err = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    let tmp = env.root().join("tmp");
    fs::create_dir_all(&tmp).expect("create TMPDIR");
    let mut c = env.cmd();
    c.args(args)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err));
    Background {
        child: c.spawn().expect("spawn qtool"),
        log: log.to_path_buf(),
    }
}

/// `kill -SIG PID`, which must succeed.
pub fn send_signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}

/// A file's text (lossy), empty when it does not exist.
pub fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// `/proc/PID/stat`'s state letter and parent pid, `None` when there is no such process.
pub fn proc_state(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// True when PID no longer runs (gone, or a zombie nobody has reaped yet).
pub fn process_gone(pid: u32) -> bool {
    !matches!(proc_state(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// The live (not zombie) child processes of `ppid`.
pub fn children_of(ppid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((state, parent)) = proc_state(pid) {
            if parent == ppid && state != 'Z' && state != 'X' {
                kids.push(pid);
            }
        }
    }
    kids.sort();
    kids
}

/// A process's command line with its arguments separated by spaces (empty if gone).
pub fn cmdline_of(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The filebases of a queue's entries that still wait for a runner or are being worked
/// on (`.pck` and `.bak`).
pub fn unfinished(env: &Env, queue: &str) -> Vec<String> {
    env.files(queue)
        .into_iter()
        .filter(|f| f.ends_with(".pck") || f.ends_with(".bak"))
        .collect()
}

/// SIGKILLs, on drop, the process groups whose leaders' pids a handler script recorded
/// (one per line) in a file: handlers run in their own group and may outlive a test.
pub struct GroupReaper(pub PathBuf);

impl Drop for GroupReaper {
    fn drop(&mut self) {
        for pid in read_lossy(&self.0).split_whitespace() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers for the disk, hostile-input and handler-abuse tests.

/// `qtool -d <queue_dir>` started through `sh -c '<prelude>; exec qtool "$@"'`, so a
/// test can set a umask or a memory limit (`ulimit -v`) for qtool alone.
pub fn qtool_after(env: &Env, prelude: &str) -> Command {
    let mut c = Command::new("sh");
    c.current_dir(env.root())
        .env_remove("QTOOL_CONFIG")
        .env_remove("QTOOL_QUEUE_DIR")
        .arg("-c")
        .arg(format!("{prelude}\nexec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_qtool"))
        .arg("-d")
        .arg(env.queue_dir());
    c
}

/// Runs `c` with `args` and `stdin`; kills it (SIGKILL) and fails the test if it has not
/// finished after `secs` seconds, so a hang is a failure rather than a stuck test run.
pub fn output_within(mut c: Command, args: &[&str], stdin: &[u8], secs: u64) -> Output {
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let pid = child.id();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{args:?} still running after {secs} s (killed)");
        }
    }
}

/// A name no other test (or test run) uses, for files outside the scratch directory.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}
