//! The Redis Streams backend end to end: every test starts its own Debian
//! `redis-server` (a free loopback port, a scratch directory, AOF with
//! `appendfsync always`), drives the real `qtool` binary at `-d redis://...` (or a config
//! that mixes Redis and directory queues), and looks at what is in Redis with
//! `redis-cli`: the streams `qtool:{<queue>.<i>}`, their index hashes, the consumer group.
//!
//! Without `/usr/bin/redis-server` these tests fail (never skip) and say what to install.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

// ---------------------------------------------------------------------------------------
// A redis-server per test.

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_CLI: &str = "/usr/bin/redis-cli";

/// A `redis-server` of its own on a free loopback port, with an append-only file synced
/// on every write in a scratch directory; SIGKILLed and reaped when dropped.
pub struct RedisServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        for tool in [REDIS_SERVER, REDIS_CLI] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: the Redis tests need Debian's redis-server \
                 (apt-get install redis-server); they are never skipped"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir for redis-server");
        let mut why = String::new();
        // Another process may take the port between our probe and the server's bind:
        // then try another one.
        for _ in 0..5 {
            let port = free_port();
            match spawn_redis(dir.path(), port, &[]) {
                Ok(child) => {
                    return RedisServer {
                        dir,
                        port,
                        child: Some(child),
                    }
                }
                Err(e) => why = e,
            }
        }
        panic!("cannot start {REDIS_SERVER}: {why}");
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// SIGKILLs the server (a crash: nothing is flushed that was not already synced).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (it reloads its AOF).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match spawn_redis(self.dir.path(), self.port, &[]) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                // The old socket may linger for a moment.
                Err(e) if Instant::now() >= deadline => {
                    panic!("cannot restart redis-server on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// SIGKILL, then start again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// `redis-cli -p PORT ARGS...`, which must succeed; its standard output without the
    /// final newline (raw replies: one line per element).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(REDIS_CLI)
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && !text.starts_with("ERR") && !text.starts_with("WRONGTYPE"),
            "redis-cli {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.strip_suffix('\n').unwrap_or(&text).to_string()
    }

    /// `redis-cli ARGS` read as a number.
    pub fn int(&self, args: &[&str]) -> i64 {
        let text = self.cli(args);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("redis-cli {args:?}: not a number: {text:?}"))
    }

    /// The lines of `redis-cli ARGS`, sorted.
    pub fn lines(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = self
            .cli(args)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }

    /// `XLEN qtool:{<queue>.<i>}`.
    pub fn xlen(&self, queue: &str, i: u32) -> i64 {
        self.int(&["XLEN", &stream(queue, i)])
    }

    /// The filebases in the index of stream `i` of `queue`, sorted.
    pub fn index(&self, queue: &str, i: u32) -> Vec<String> {
        self.lines(&["HKEYS", &format!("{}:index", stream(queue, i))])
    }

    /// How many entries of stream `i` of `queue` are pending in the group.
    pub fn pending(&self, queue: &str, i: u32) -> i64 {
        let text = self.cli(&["XPENDING", &stream(queue, i), "qtool"]);
        text.lines()
            .next()
            .unwrap_or("0")
            .trim()
            .parse()
            .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The stream key of stream `i` of `queue`.
fn stream(queue: &str, i: u32) -> String {
    format!("qtool:{{{queue}.{i}}}")
}

/// A loopback port nothing listens on (at the time of the call).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Starts `redis-server` on `port` in `dir` and waits for `PING`; its log is appended
/// to `dir/redis.log`.
fn spawn_redis(dir: &Path, port: u16, extra: &[&str]) -> Result<Child, String> {
    let log_path = dir.join("redis.log");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("open redis.log");
    let mut child = Command::new(REDIS_SERVER)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot run {REDIS_SERVER}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!(
                "it exited ({st}); its log:\n{}",
                read_lossy(&log_path)
            ));
        }
        if ping(port) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "no PONG on port {port} after 15 s; its log:\n{}",
                read_lossy(&log_path)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when a server on `port` answers `PING` with `+PONG` (not `-LOADING`).
fn ping(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

// ---------------------------------------------------------------------------------------
// qtool at a Redis server (or with a config of mixed queues).

/// How to run qtool in a test: in the scratch directory, without config or queue
/// directory from the environment, with `-d LOCATION` when given.
#[derive(Clone)]
struct Qt {
    root: PathBuf,
    location: Option<String>,
    config: Option<PathBuf>,
}

impl Qt {
    /// qtool with `-d <the server's URL>`.
    fn redis(env: &Env, server: &RedisServer) -> Qt {
        Qt {
            root: env.root().to_path_buf(),
            location: Some(server.url()),
            config: None,
        }
    }

    /// The same with `-C CONFIG` too.
    fn with_config(mut self, config: &Path) -> Qt {
        self.config = Some(config.to_path_buf());
        self
    }

    /// qtool with `-C CONFIG` and no `-d`: the config says where every queue is.
    fn config_only(env: &Env, config: &Path) -> Qt {
        Qt {
            root: env.root().to_path_buf(),
            location: None,
            config: Some(config.to_path_buf()),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_qtool"));
        c.current_dir(&self.root)
            .env_remove("QTOOL_CONFIG")
            .env_remove("QTOOL_QUEUE_DIR");
        if let Some(config) = &self.config {
            c.arg("-C").arg(config);
        }
        if let Some(location) = &self.location {
            c.arg("-d").arg(location);
        }
        c
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        output_within(self.cmd(), args, stdin, 60)
    }

    /// Runs qtool, which must exit 0; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, b"");
        assert_eq!(
            code(&out),
            Some(0),
            "qtool {args:?}\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Enqueues `message` with `args`; returns the filebase printed.
    fn enqueue(&self, queue: &str, message: &[u8], args: &[&str]) -> String {
        let mut all = vec!["enqueue", queue];
        all.extend_from_slice(args);
        let out = self.run(&all, message);
        assert_eq!(code(&out), Some(0), "enqueue: {}", stderr(&out));
        let fb = stdout(&out).trim().to_string();
        assert!(is_filebase(&fb), "enqueue printed {fb:?}");
        fb
    }

    /// `list QUEUE --format names`: the filebases of a queue in FIFO order.
    fn names(&self, queue: &str) -> Vec<String> {
        self.ok(&["list", queue, "--format", "names"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `dump QUEUE FB [ARGS]`, which must succeed.
    fn dump(&self, queue: &str, fb: &str, args: &[&str]) -> String {
        let mut all = vec!["dump", queue, fb];
        all.extend_from_slice(args);
        self.ok(&all)
    }

    /// Spawns qtool with stderr appended to `log` (and `TMPDIR` in the scratch area).
    fn spawn_logged(&self, args: &[&str], log: &Path) -> Background {
        let err = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        let tmp = self.root.join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        let mut c = self.cmd();
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
}

/// True for `<time>+<40 hex>`.
fn is_filebase(s: &str) -> bool {
    match s.split_once('+') {
        Some((t, h)) => {
            t.parse::<f64>().is_ok()
                && h.len() == 40
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        None => false,
    }
}

/// The slice of `of` (a power of two up to 16) that a filebase's digest falls in.
fn slice_of(fb: &str, of: u32) -> u32 {
    let hex = fb.split_once('+').expect("a filebase").1;
    let nibble = u32::from_str_radix(&hex[..1], 16).unwrap();
    nibble * of / 16
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// How many times each line occurs in a file.
fn line_counts(path: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in read_lossy(path).lines() {
        *counts.entry(line.to_string()).or_insert(0) += 1;
    }
    counts
}

/// A handler that appends `<tag> <filebase> <first line of the message>` to `log` in
/// one short write (atomic under O_APPEND). The tests' messages start with a Subject.
fn logging_handler(env: &Env, log: &Path) -> PathBuf {
    script(
        env.root(),
        "log-handler.sh",
        &format!(
            "IFS= read -r first\necho \"$1 $QTOOL_FILEBASE $first\" >> '{}'",
            log.display()
        ),
    )
}

/// A message whose bytes would be mangled by any text processing: 8-bit, NUL, CRLF, a
/// line that looks like YAML's document end, no final newline.
const BINARY: &[u8] =
    b"From: aperson@example.com\r\nSubject: bytes\r\n\r\n\x00\xff\xfe caf\xe9\r\n...\n---\nend";

/// Waits up to `secs` seconds for `cond`, failing with `what` and the runners' logs.
fn must(secs: u64, what: &str, logs: &[&Background], cond: impl FnMut() -> bool) {
    if !wait_until(secs, cond) {
        let logs: Vec<String> = logs.iter().map(|b| b.log_text()).collect();
        panic!(
            "{what} (after {secs} s); runner logs:\n{}",
            logs.join("\n---\n")
        );
    }
}

// ---------------------------------------------------------------------------------------
// 1. The seed scenario.

#[test]
fn redis_seed_scenario_end_to_end() {
    let env = Env::new();
    let mut redis = RedisServer::start();
    let q = Qt::redis(&env, &redis);
    let fb = q.enqueue(
        "test",
        SEED,
        &[
            "-m",
            "listid=test.example.com",
            "-m",
            "foo=yes",
            "-m",
            "bar=no",
        ],
    );
    // Acknowledged means in the AOF: a SIGKILLed server comes back with it.
    redis.restart();
    assert_eq!(q.names("test"), vec![fb.clone()]);
    assert_eq!(redis.xlen("test", 0), 1);
    assert_eq!(redis.index("test", 0), vec![fb.clone()]);
    assert_eq!(
        redis.lines(&["SMEMBERS", "qtool:queues"]),
        vec!["test".to_string()]
    );
    assert_eq!(redis.cli(&["GET", "qtool:{test}:streams"]), "1");
    // The message is stored byte for byte in the `msg` field, the name in `fb`.
    assert_eq!(
        redis
            .cli(&["XRANGE", &stream("test", 0), "-", "+"])
            .lines()
            .nth(2),
        Some(fb.as_str())
    );

    // `list`: one ready row, in the table every queue has.
    let table = q.ok(&["list", "test"]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["QUEUE", "FILEBASE", "STATE", "AGE", "SIZE", "LISTID", "FROM", "SUBJECT"],
        "{table}"
    );
    assert_eq!(lines.len(), 2, "{table}");
    let row = &lines[1];
    assert_eq!(
        (row[0], row[1], row[2], row[5], row[6], row[7]),
        (
            "test",
            fb.as_str(),
            "ready",
            "test.example.com",
            "aperson@example.com",
            "-"
        ),
        "{table}"
    );
    assert!(row[3].ends_with('s'), "age: {table}");

    let out = q.run(&["run-once", "test", "--forward", "out"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("test: 1 done, 0 kept, 0 shunted, 0 put back, 0 preserved, 0 recovered"),
        "{}",
        stderr(&out)
    );
    assert!(q.names("test").is_empty());
    assert_eq!(redis.xlen("test", 0), 0);
    assert!(redis.index("test", 0).is_empty());
    let outs = q.names("out");
    assert_eq!(outs.len(), 1);

    assert_eq!(
        q.dump("out", &outs[0], &[]),
        "_parsemsg: False\nbar      : no\nfoo      : yes\nlang     : en\nlistid   : test.example.com\nversion  : 3\n"
    );

    let msg = q.run(&["dequeue", "out"], b"");
    assert_eq!(code(&msg), Some(0), "{}", stderr(&msg));
    assert_eq!(msg.stdout, SEED);
    assert!(q.names("out").is_empty());
    assert_eq!(redis.xlen("out", 0), 0);
    assert!(redis.index("out", 0).is_empty());
    assert_error(&q.run(&["dequeue", "out"], b""), 1);
}

// ---------------------------------------------------------------------------------------
// 2. Every command on Redis.

#[test]
fn redis_enqueue_files_stdin_and_mbox() {
    let env = Env::new();
    let redis = RedisServer::start();
    let q = Qt::redis(&env, &redis);

    // Several FILEs: one line each, in order, FIFO kept.
    let a = env.root().join("a.eml");
    let b = env.root().join("b.eml");
    fs::write(&a, b"Subject: a\n\nA\n").unwrap();
    fs::write(&b, BINARY).unwrap();
    let out = q.ok(&["enqueue", "in", s(&a), s(&b), "-m", "n=3"]);
    let fbs: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(fbs.len(), 2, "{out}");
    assert!(fbs.iter().all(|f| is_filebase(f)), "{out}");
    assert_eq!(q.names("in"), fbs);
    assert_eq!(redis.xlen("in", 0), 2);
    assert_eq!(redis.index("in", 0), {
        let mut v = fbs.clone();
        v.sort();
        v
    });
    assert_eq!(
        q.dump("in", &fbs[1], &[]),
        "_parsemsg: False\nn        : 3\nversion  : 3\n"
    );

    // stdin, as `-`.
    let fb = q.enqueue("in", b"Subject: c\n\nC\n", &["-", "--plaintext"]);
    // As Mailman's dequeue: a plain-text entry's dump shows its original_size.
    assert_eq!(
        q.dump("in", &fb, &[]),
        "_parsemsg    : True\noriginal_size: 14\nversion      : 3\n"
    );
    assert_eq!(redis.xlen("in", 0), 3);

    // An mbox: every message, in order, without its From_ line.
    let mbox = env.root().join("m.mbox");
    fs::write(
        &mbox,
        "From a@example.com Thu Jan  1 00:00:00 2026\nSubject: m1\n\none\n\n\
         From a@example.com Thu Jan  1 00:00:00 2026\nSubject: m2\n\ntwo\n",
    )
    .unwrap();
    let out = q.ok(&["enqueue", "box", "--mbox", s(&mbox)]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(redis.xlen("box", 0), 2);

    // Out they come in FIFO order, byte for byte.
    for want in [&b"Subject: a\n\nA\n"[..], BINARY, b"Subject: c\n\nC\n"] {
        let out = q.run(&["dequeue", "in"], b"");
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        assert_eq!(out.stdout, want);
    }
    let m1 = q.run(&["dequeue", "box"], b"");
    assert_eq!(m1.stdout, b"Subject: m1\n\none\n");
    let m2 = q.run(&["dequeue", "box"], b"");
    assert_eq!(m2.stdout, b"Subject: m2\n\ntwo\n");
    assert_eq!(redis.xlen("in", 0), 0);
    assert_eq!(redis.xlen("box", 0), 0);

    // Empty input is refused and nothing is stored.
    assert_error(&q.run(&["enqueue", "in"], b""), 65);
    assert_eq!(redis.xlen("in", 0), 0);
}

#[test]
fn redis_list_stats_and_dump_formats() {
    let env = Env::new();
    let redis = RedisServer::start();
    let q = Qt::redis(&env, &redis);
    let msg = b"From: someone@example.org\nSubject: hello there\n\nbody\n";
    let fb = q.enqueue("in", msg, &["-m", "listid=l.example.com", "-m", "r=[a, b]"]);

    let doc: Value = serde_json::from_str(&q.ok(&["list", "in", "--format", "json"])).unwrap();
    let rows = doc.as_array().expect("a JSON array");
    assert_eq!(rows.len(), 1, "{doc}");
    let row = &rows[0];
    assert_eq!(row["queue"], "in");
    assert_eq!(row["filebase"], fb.as_str());
    assert_eq!(row["state"], "ready");
    assert_eq!(row["listid"], "l.example.com");
    assert_eq!(row["from"], "someone@example.org");
    assert_eq!(row["subject"], "hello there");
    // The size is what the stream entry holds: metadata and message.
    let size = row["size"].as_u64().expect("size");
    assert!(size > msg.len() as u64, "{doc}");
    let index_line = redis.cli(&["HGET", "qtool:{in.0}:index", &fb]);
    assert_eq!(
        index_line.split(' ').nth(1),
        Some(size.to_string().as_str())
    );

    let doc: Value = serde_json::from_str(&q.ok(&["stats", "in", "--format", "json"])).unwrap();
    let st = &doc.as_array().expect("a JSON array")[0];
    assert_eq!(st["queue"], "in");
    assert_eq!(st["ready"], 1);
    assert_eq!(st["claimed"], 0);
    assert_eq!(st["preserved"], 0);
    assert_eq!(st["bytes"], size);
    assert_eq!(st["ages"]["0-5m"], 1);

    let table = q.ok(&["stats", "in"]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert_eq!(
        &lines[0][..6],
        ["QUEUE", "READY", "CLAIMED", "PRESERVED", "BYTES", "OLDEST"]
    );
    assert_eq!(&lines[1][..5], ["in", "1", "0", "0", &size.to_string()[..]]);

    assert_eq!(
        q.dump("in", &fb, &[]),
        "_parsemsg: False\nlistid   : l.example.com\nr        : ['a', 'b']\nversion  : 3\n"
    );
    let all = q.dump("in", &fb, &["--all", "--message"]);
    assert!(all.contains("received_time: "), "{all}");
    assert!(all.ends_with("\nbody\n"), "{all}");
    let json: Value = serde_json::from_str(&q.dump("in", &fb, &["--format", "json"])).unwrap();
    assert_eq!(json["metadata"]["r"], serde_json::json!(["a", "b"]));
    // Reading changed nothing.
    assert_eq!(redis.xlen("in", 0), 1);
    assert_eq!(redis.pending("in", 0), 0);

    // A filebase that is not there: 66, and a hint.
    let missing = format!("1000.5+{HEX}");
    assert_error(&q.run(&["dump", "in", &missing], b""), 66);
}

#[test]
fn redis_dequeue_by_name_with_meta_out_and_output_file() {
    let env = Env::new();
    let redis = RedisServer::start();
    let q = Qt::redis(&env, &redis);
    let first = q.enqueue("in", b"Subject: first\n\n1\n", &[]);
    let second = q.enqueue("in", BINARY, &["-m", "listid=x.example.com"]);

    let msg = env.root().join("msg.eml");
    let meta = env.root().join("meta.yaml");
    let out = q.run(
        &[
            "dequeue",
            "in",
            &second,
            "-o",
            s(&msg),
            "--meta-out",
            s(&meta),
        ],
        b"",
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(fs::read(&msg).unwrap(), BINARY);
    let meta = fs::read_to_string(&meta).unwrap();
    assert!(meta.contains("listid: x.example.com"), "{meta}");
    assert_eq!(q.names("in"), vec![first.clone()]);
    assert_eq!(redis.index("in", 0), vec![first]);
    // Nothing is left held.
    assert_eq!(redis.int(&["EXISTS", "qtool:{in.0}:held"]), 0);
    // The same name again: gone.
    assert_error(&q.run(&["dequeue", "in", &second], b""), 66);
}

#[test]
fn redis_run_once_with_discard_forward_and_exec_handlers() {
    let env = Env::new();
    let redis = RedisServer::start();
    let q = Qt::redis(&env, &redis);

    // --discard
    q.enqueue("d", SEED, &[]);
    q.enqueue("d", SEED, &[]);
    let out = q.run(&["run-once", "d", "--discard"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("d: 2 done"), "{}", stderr(&out));
    assert_eq!(redis.xlen("d", 0), 0);
    assert_eq!(redis.pending("d", 0), 0);

    // --forward: to another Redis queue, metadata as processed (lang added).
    let fb = q.enqueue("f", BINARY, &["-m", "listid=test.example.com"]);
    let out = q.run(&["run-once", "f", "--forward", "g"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(redis.xlen("f", 0), 0);
    assert_eq!(redis.xlen("g", 0), 1);
    let g = q.names("g");
    assert_eq!(g.len(), 1);
    assert_ne!(g[0], fb, "a forward is a new entry");
    assert!(q.dump("g", &g[0], &[]).contains("lang     : en\n"));
    assert_eq!(q.run(&["dequeue", "g"], b"").stdout, BINARY);

    // An exec handler: stdin is the message, QTOOL_* as on the filesystem.
    let seen = env.root().join("seen");
    fs::create_dir(&seen).unwrap();
    let h = script(
        env.root(),
        "h.sh",
        &format!(
            "cat > '{d}/msg'\ncp \"$QTOOL_METADATA\" '{d}/meta'\n\
             echo \"$QTOOL_QUEUE $QTOOL_FILEBASE\" > '{d}/env'\nexit \"$1\"",
            d = seen.display()
        ),
    );
    let fb = q.enqueue(
        "x",
        BINARY,
        &["-m", "listid=test.example.com", "-m", "foo=yes"],
    );
    let out = q.run(&["run-once", "x", "--", s(&h), "0"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(seen.join("msg")).unwrap(), BINARY);
    assert_eq!(read_lossy(&seen.join("env")), format!("x {fb}\n"));
    let meta = read_lossy(&seen.join("meta"));
    for line in [
        "lang: en",
        "listid: test.example.com",
        "foo: \"yes\"",
        "version: 3",
    ] {
        assert!(meta.lines().any(|l| l == line), "{line:?} in:\n{meta}");
    }
    assert_eq!(redis.xlen("x", 0), 0);

    // Exit 75: kept queued (re-enqueued, as Mailman's keepqueued; nothing pending).
    q.enqueue("x", SEED, &["-m", "foo=bar"]);
    let out = q.run(&["run-once", "x", "--", s(&h), "75"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("x: 0 done, 1 kept"),
        "{}",
        stderr(&out)
    );
    let kept = q.names("x");
    assert_eq!(kept.len(), 1);
    let fb = kept[0].clone();
    assert!(q.dump("x", &fb, &[]).contains("foo      : bar\n"));
    assert_eq!(redis.xlen("x", 0), 1);
    assert_eq!(redis.pending("x", 0), 0);

    // Exit 3: shunted with the reason; run-once still exits 0 and names the entry.
    let out = q.run(&["run-once", "x", "--", s(&h), "3"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains(&fb), "{}", stderr(&out));
    assert_eq!(redis.xlen("x", 0), 0);
    assert_eq!(redis.xlen("shunt", 0), 1);
    let shunted = q.names("shunt");
    assert_eq!(shunted.len(), 1);
    let d = q.dump("shunt", &shunted[0], &[]);
    assert!(d.contains("shunt_reason: handler exited 3"), "{d}");
    assert!(d.contains("whichq      : x\n"), "{d}");
}

#[test]
fn redis_unshunt_recover_move_and_delete() {
    let env = Env::new();
    let redis = RedisServer::start();
    let q = Qt::redis(&env, &redis);
    let fail = script(
        env.root(),
        "fail.sh",
        "cat >/dev/null\necho 'no such list' >&2\nexit 3",
    );

    // Shunt one entry of `x`, then unshunt it back to `x`, reason dropped.
    q.enqueue("x", SEED, &["-m", "listid=test.example.com"]);
    let out = q.run(&["run-once", "x", "--", s(&fail)], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let shunted = q.names("shunt");
    assert_eq!(shunted.len(), 1);
    let table = q.ok(&["list", "shunt"]);
    assert!(table.lines().next().unwrap().ends_with("REASON"), "{table}");
    assert!(table.contains("handler exited 3: no such list"), "{table}");

    let out = q.ok(&["unshunt"]);
    let line = out.trim();
    let back = line
        .strip_prefix(&format!("shunt/{} -> x/", shunted[0]))
        .unwrap_or_else(|| panic!("unshunt printed {out:?}"));
    assert!(is_filebase(back), "{out}");
    assert_eq!(redis.xlen("shunt", 0), 0);
    assert!(redis.index("shunt", 0).is_empty());
    assert_eq!(q.names("x"), vec![back.to_string()]);
    let d = q.dump("x", back, &[]);
    assert!(!d.contains("shunt_reason"), "{d}");
    // As Mailman's unshunt: whichq stays, only the reason goes.
    assert!(d.contains("whichq   : x\n"), "{d}");
    assert!(d.contains("listid   : test.example.com"), "{d}");

    // recover with nothing to recover.
    let out = q.run(&["recover", "x"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "qtool: x: 0 recovered, 0 preserved, 0 held by live processes, 0 temporary files removed\n"
    );

    // move: to another queue, metadata unchanged, message byte for byte.
    let fb = q.enqueue("x", BINARY, &["-m", "foo=yes"]);
    let before = q.dump("x", &fb, &["--all"]);
    let out = q.ok(&["move", "x", &fb, "--to", "y"]);
    let moved = out
        .trim()
        .strip_prefix(&format!("x/{fb} -> y/"))
        .unwrap_or_else(|| panic!("move printed {out:?}"))
        .to_string();
    assert_eq!(q.names("x"), vec![back.to_string()]);
    assert_eq!(redis.index("y", 0), vec![moved.clone()]);
    assert_eq!(q.dump("y", &moved, &["--all"]), before);

    // delete: gone from the stream and the index.
    let out = q.ok(&["delete", "y", &moved]);
    assert_eq!(out, format!("deleted y/{moved}\n"));
    assert_eq!(redis.xlen("y", 0), 0);
    assert!(redis.index("y", 0).is_empty());
    assert_error(&q.run(&["delete", "y", &moved], b""), 66);

    // A repair by name never touches an entry a runner holds: claim one with a hanging
    // handler, then try to delete and move it.
    let pids = env.root().join("pids");
    let _reaper = GroupReaper(pids.clone());
    let hang = script(
        env.root(),
        "hang.sh",
        &format!("echo $$ >> '{}'\nexec sleep 30", pids.display()),
    );
    let mut runner = q.spawn_logged(&["run", "x", "--", s(&hang)], &env.root().join("r.log"));
    must(20, "the handler did not start", &[&runner], || {
        pids.exists()
    });
    assert_eq!(redis.pending("x", 0), 1);
    let out = q.run(&["delete", "x", back], b"");
    assert_ne!(
        code(&out),
        Some(0),
        "deleted a claimed entry: {}",
        stdout(&out)
    );
    assert_eq!(redis.xlen("x", 0), 1);
    runner.signal("KILL");
    runner.wait_exit(10);
}

/// A `dequeue` whose output fails leaves the entry ready; one that dies after writing it
/// (before removing it) leaves it held, and the entry comes back, counted, once it has
/// been held for the claim timeout.
#[test]
fn redis_dequeue_that_fails_or_dies_leaves_the_entry_for_recovery() {
    let env = Env::new();
    let redis = RedisServer::start();
    let cfg = env.config("claim_timeout: 2s\n");
    let q = Qt::redis(&env, &redis).with_config(&cfg);
    let fb = q.enqueue("in", SEED, &["-m", "listid=test.example.com"]);

    let nowhere = env.root().join("no/such/dir/msg.eml");
    let out = q.run(&["dequeue", "in", "-o", s(&nowhere)], b"");
    assert_ne!(code(&out), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("no/such/dir"), "{}", stderr(&out));
    assert_eq!(q.names("in"), vec![fb.clone()]);
    assert_eq!(redis.xlen("in", 0), 1);
    assert_eq!(redis.int(&["EXISTS", "qtool:{in.0}:held"]), 0);
    assert_eq!(bak_count(&q, "in", &fb), None);

    // Dies (as kill -9 would) after writing the message, before removing the entry.
    let mut c = q.cmd();
    c.env("QTOOL_FAULT", "finish");
    let out = output_within(c, &["dequeue", "in"], b"", 30);
    assert_eq!(code(&out), None, "the fault point aborts: {}", stderr(&out));
    assert_eq!(out.stdout, SEED);
    assert_eq!(redis.xlen("in", 0), 0, "taken out of the stream");
    assert_eq!(
        redis.int(&["HLEN", "qtool:{in.0}:held"]),
        3,
        "held: meta, body, holder"
    );
    let doc: Value = serde_json::from_str(&q.ok(&["list", "in", "--format", "json"])).unwrap();
    assert_eq!(doc[0]["filebase"], fb.as_str(), "{doc}");
    assert_eq!(doc[0]["state"], "claimed", "{doc}");
    // Nobody else gets it meanwhile.
    assert_error(&q.run(&["dequeue", "in"], b""), 1);

    let mut last = String::new();
    let recovered = wait_until(15, || {
        let out = q.run(&["recover", "in"], b"");
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        last = stdout(&out);
        !last.is_empty()
    });
    assert!(recovered, "the held entry was never recovered");
    assert_eq!(last, format!("recovered in/{fb}\n"));
    assert_eq!(redis.int(&["EXISTS", "qtool:{in.0}:held"]), 0);
    assert_eq!(q.names("in"), vec![fb.clone()]);
    assert_eq!(bak_count(&q, "in", &fb).as_deref(), Some("1"));
    assert_eq!(q.run(&["dequeue", "in"], b"").stdout, SEED);
    assert!(q.names("in").is_empty());
}

// ---------------------------------------------------------------------------------------
// 3. Four producers and four runners, exactly once.

#[test]
fn redis_four_producers_and_four_runners_handle_1000_messages_exactly_once() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 250;
    let env = Env::new();
    let redis = RedisServer::start();
    let cfg = env.config("claim_timeout: 10s\nrunners:\n  in: {sleep_time: 0.1s}\n");
    let q = Qt::redis(&env, &redis).with_config(&cfg);
    let log = env.root().join("handled.log");
    let handler = logging_handler(&env, &log);

    let mut runners: Vec<Background> = (0..4)
        .map(|i| {
            q.spawn_logged(
                &["run", "in", "--", s(&handler), &format!("r{i}")],
                &env.root().join(format!("runner{i}.log")),
            )
        })
        .collect();

    let mboxes: Vec<PathBuf> = (0..PRODUCERS)
        .map(|p| {
            let mut text = String::new();
            for n in 0..PER_PRODUCER {
                text.push_str(&format!(
                    "From p{p}@example.com Thu Jan  1 00:00:00 2026\n\
                     Subject: p{p}-{n}\nMessage-ID: <p{p}-{n}@example.com>\n\nbody {p} {n}\n\n"
                ));
            }
            let path = env.root().join(format!("p{p}.mbox"));
            fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let enqueued: Vec<String> = std::thread::scope(|scope| {
        let producers: Vec<_> = mboxes
            .iter()
            .map(|mbox| {
                let q = q.clone();
                scope.spawn(move || {
                    let out = q.ok(&["enqueue", "in", "--mbox", s(mbox)]);
                    out.lines().map(str::to_string).collect::<Vec<_>>()
                })
            })
            .collect();
        producers
            .into_iter()
            .flat_map(|h| h.join().expect("producer"))
            .collect()
    });
    assert_eq!(enqueued.len(), PRODUCERS * PER_PRODUCER);

    let refs: Vec<&Background> = runners.iter().collect();
    must(60, "not every message was handled", &refs, || {
        read_lossy(&log).lines().count() >= PRODUCERS * PER_PRODUCER
    });
    must(20, "the queue did not drain", &refs, || {
        redis.xlen("in", 0) == 0 && redis.pending("in", 0) == 0
    });
    for r in &runners {
        r.signal("TERM");
    }
    for r in &mut runners {
        let st = r.wait_exit(30);
        assert_eq!(st.code(), Some(0), "runner log:\n{}", r.log_text());
        assert!(r.log_text().contains("runner stopped"), "{}", r.log_text());
    }

    let mut by_subject: BTreeMap<String, usize> = BTreeMap::new();
    let mut handled_fbs = BTreeSet::new();
    let mut by_runner: BTreeMap<String, usize> = BTreeMap::new();
    for (line, n) in line_counts(&log) {
        let mut parts = line.splitn(3, ' ');
        let (runner, fb, subject) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().expect("`<runner> <filebase> <subject>`"),
        );
        *by_subject.entry(subject.to_string()).or_insert(0) += n;
        *by_runner.entry(runner.to_string()).or_insert(0) += n;
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
        enqueued.len(),
        PRODUCERS * PER_PRODUCER,
        "filebases are unique"
    );
    assert_eq!(handled_fbs, enqueued);
    // The runners competed (not one runner doing everything while the rest idled).
    assert!(by_runner.len() >= 2, "{by_runner:?}");

    assert!(q.names("in").is_empty());
    assert!(redis.index("in", 0).is_empty());
    assert!(q.names("shunt").is_empty());
    assert!(q.names("bad").is_empty());
}

// ---------------------------------------------------------------------------------------
// 4. SIGKILL and recovery after the claim timeout.

const CRASH_CONFIG: &str = "claim_timeout: 2s\nrunners:\n  in: {sleep_time: 0.1s}\n";

/// A handler that records its pid (its own process group) and hangs.
fn hanging_handler(env: &Env) -> (PathBuf, GroupReaper) {
    let pids = env.root().join("pids");
    let h = script(
        env.root(),
        "hang.sh",
        &format!("echo $$ >> '{}'\nexec sleep 60", pids.display()),
    );
    (h, GroupReaper(pids))
}

fn pid_count(reaper: &GroupReaper) -> usize {
    read_lossy(&reaper.0).lines().count()
}

/// SIGKILLs a runner and the handler process groups it left behind.
fn crash(mut runner: Background, reaper: &GroupReaper) {
    runner.signal("KILL");
    runner.wait_exit(10);
    for pid in read_lossy(&reaper.0).split_whitespace() {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
    }
}

/// The `_bak_count` line of `dump`, if any.
fn bak_count(q: &Qt, queue: &str, fb: &str) -> Option<String> {
    q.dump(queue, fb, &[]).lines().find_map(|l| {
        let (k, v) = l.split_once(": ")?;
        (k.trim_end() == "_bak_count").then(|| v.to_string())
    })
}

#[test]
fn redis_sigkilled_runner_entry_is_recovered_by_the_next_runner_after_the_claim_timeout() {
    let env = Env::new();
    let redis = RedisServer::start();
    let cfg = env.config(CRASH_CONFIG);
    let q = Qt::redis(&env, &redis).with_config(&cfg);
    let (hang, reaper) = hanging_handler(&env);
    let fb = q.enqueue("in", SEED, &["-m", "listid=test.example.com"]);

    let first = q.spawn_logged(&["run", "in", "--", s(&hang)], &env.root().join("r1.log"));
    must(20, "the handler did not start", &[&first], || {
        pid_count(&reaper) >= 1
    });
    assert_eq!(redis.pending("in", 0), 1);
    let doc: Value = serde_json::from_str(&q.ok(&["list", "in", "--format", "json"])).unwrap();
    assert_eq!(doc[0]["state"], "claimed", "{doc}");

    // A live runner keeps its claim fresh: well past the claim timeout, `recover` (and
    // so any other runner) leaves it alone.
    std::thread::sleep(Duration::from_millis(3500));
    let out = q.run(&["recover", "in"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "recovered from a live runner: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("0 recovered, 0 preserved, 1 held by live processes"),
        "{}",
        stderr(&out)
    );
    assert_eq!(bak_count(&q, "in", &fb), None);

    crash(first, &reaper);
    assert_eq!(
        redis.pending("in", 0),
        1,
        "the crash left the entry pending"
    );

    // The next runner takes it over once it has been idle for the claim timeout, with
    // `_bak_count: 1` in the metadata its handler gets.
    let seen = env.root().join("seen");
    fs::create_dir(&seen).unwrap();
    let record = script(
        env.root(),
        "record.sh",
        &format!(
            "cp \"$QTOOL_METADATA\" '{d}/meta'\ncat > '{d}/msg'\necho done >> '{d}/done'",
            d = seen.display()
        ),
    );
    let mut second = q.spawn_logged(&["run", "in", "--", s(&record)], &env.root().join("r2.log"));
    must(
        20,
        "the second runner did not handle the entry",
        &[&second],
        || seen.join("done").exists(),
    );
    let meta = read_lossy(&seen.join("meta"));
    assert!(meta.lines().any(|l| l == "_bak_count: 1"), "{meta}");
    assert!(
        meta.lines().any(|l| l == "listid: test.example.com"),
        "{meta}"
    );
    assert_eq!(fs::read(seen.join("msg")).unwrap(), SEED);
    must(10, "the queue did not drain", &[&second], || {
        redis.xlen("in", 0) == 0 && redis.pending("in", 0) == 0
    });
    assert!(
        second
            .log_text()
            .contains(&format!("recovered orphaned entry {fb}")),
        "{}",
        second.log_text()
    );
    second.signal("TERM");
    assert_eq!(
        second.wait_exit(20).code(),
        Some(0),
        "{}",
        second.log_text()
    );
    assert_eq!(read_lossy(&seen.join("done")), "done\n", "handled once");
    assert!(q.names("bad").is_empty());
    assert!(q.names("shunt").is_empty());
}

#[test]
fn redis_three_crashes_send_the_entry_to_bad_with_bak_count_3() {
    let env = Env::new();
    let redis = RedisServer::start();
    let cfg = env.config(CRASH_CONFIG);
    let q = Qt::redis(&env, &redis).with_config(&cfg);
    let (hang, reaper) = hanging_handler(&env);
    let fb = q.enqueue("in", SEED, &["-m", "listid=test.example.com"]);

    for round in 1..=3 {
        // Each new runner recovers the orphan once it is idle for the claim timeout
        // (counting it), claims it again, and dies with it in its handler.
        let runner = q.spawn_logged(
            &["run", "in", "--", s(&hang)],
            &env.root().join(format!("r{round}.log")),
        );
        must(
            20,
            &format!("the handler did not start (run #{round})"),
            &[&runner],
            || pid_count(&reaper) >= round,
        );
        crash(runner, &reaper);
        assert_eq!(redis.pending("in", 0), 1, "after crash #{round}");
        let want = (round > 1).then(|| (round - 1).to_string());
        assert_eq!(
            bak_count(&q, "in", &fb),
            want,
            "_bak_count after {} recoveries",
            round - 1
        );
        assert!(q.names("bad").is_empty());
    }

    // The third recovery gives up on it: preserved in bad, never handed to a handler.
    let mut last = String::new();
    let done = wait_until(15, || {
        let out = q.run(&["recover", "in"], b"");
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        last = stdout(&out);
        !last.is_empty()
    });
    assert!(done, "recover never took the entry over");
    assert_eq!(
        last,
        format!("preserved in/{fb} in bad: recovered 3 times (_bak_count: 3)\n")
    );
    assert_eq!(redis.xlen("in", 0), 0);
    assert_eq!(redis.pending("in", 0), 0);
    assert!(redis.index("in", 0).is_empty());
    assert_eq!(q.names("bad"), vec![fb.clone()]);
    assert_eq!(bak_count(&q, "bad", &fb).as_deref(), Some("3"));
    let doc: Value = serde_json::from_str(&q.ok(&["list", "bad", "--format", "json"])).unwrap();
    assert_eq!(doc[0]["state"], "preserved", "{doc}");
    assert!(q
        .dump("bad", &fb, &["--message"])
        .ends_with(std::str::from_utf8(SEED).unwrap()));
    // A runner of `bad` takes nothing from it.
    let out = q.run(&["run-once", "bad", "--discard"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(q.names("bad"), vec![fb]);
}

// ---------------------------------------------------------------------------------------
// 5. Redis restarted (SIGKILL) mid-run: nothing acknowledged is lost.

#[test]
fn redis_killed_and_restarted_mid_run_loses_no_acknowledged_enqueue() {
    const MESSAGES: usize = 120;
    let env = Env::new();
    let mut redis = RedisServer::start();
    let cfg = env.config(CRASH_CONFIG);
    let q = Qt::redis(&env, &redis).with_config(&cfg);
    let log = env.root().join("handled.log");
    let handler = logging_handler(&env, &log);
    let mut runner = q.spawn_logged(
        &["run", "in", "--", s(&handler), "r"],
        &env.root().join("r.log"),
    );

    let acked = Mutex::new(Vec::new());
    let count = AtomicUsize::new(0);
    let deferred = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(60);
            for n in 0..MESSAGES {
                let msg = format!("Subject: m{n}\n\nbody {n}\n");
                // As an MTA would: a 75 is deferred and tried again.
                loop {
                    let out = q.run(&["enqueue", "in"], msg.as_bytes());
                    match code(&out) {
                        Some(0) => {
                            acked.lock().unwrap().push(n);
                            count.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        Some(75) => {
                            assert_error(&out, 75);
                            deferred.fetch_add(1, Ordering::SeqCst);
                            assert!(Instant::now() < deadline, "enqueue kept failing");
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        other => panic!("enqueue exited {other:?}: {}", stderr(&out)),
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        assert!(
            wait_until(30, || count.load(Ordering::SeqCst) >= MESSAGES / 3),
            "the producer did not get going"
        );
        redis.kill();
        std::thread::sleep(Duration::from_millis(700));
        redis.start_again();
        producer.join().expect("producer");
    });
    let acked = acked.into_inner().unwrap();
    assert_eq!(acked.len(), MESSAGES);
    assert!(
        deferred.load(Ordering::SeqCst) > 0,
        "no enqueue failed while Redis was down: the test did not test anything"
    );

    let subjects = || -> BTreeSet<String> {
        read_lossy(&log)
            .lines()
            .filter_map(|l| l.splitn(3, ' ').nth(2).map(str::to_string))
            .collect()
    };
    must(
        60,
        "not every acknowledged message was handled",
        &[&runner],
        || {
            let seen = subjects();
            acked
                .iter()
                .all(|n| seen.contains(&format!("Subject: m{n}")))
        },
    );
    must(20, "the queue did not drain", &[&runner], || {
        redis.xlen("in", 0) == 0 && redis.pending("in", 0) == 0
    });
    assert!(q.names("in").is_empty());
    assert!(q.names("shunt").is_empty(), "{:?}", q.names("shunt"));
    assert!(q.names("bad").is_empty(), "{:?}", q.names("bad"));

    // The runner did not give up: it said it would try again, and it is still running.
    assert!(
        runner.child.try_wait().unwrap().is_none(),
        "the runner exited: {}",
        runner.log_text()
    );
    let text = runner.log_text();
    assert!(
        text.contains("cannot use Redis at") && text.contains("trying again in"),
        "{text}"
    );
    runner.signal("TERM");
    assert_eq!(
        runner.wait_exit(20).code(),
        Some(0),
        "{}",
        runner.log_text()
    );
}

// ---------------------------------------------------------------------------------------
// 6. Queues on both backends in one config.

#[test]
fn redis_move_between_a_directory_queue_and_a_redis_queue_and_back() {
    let env = Env::new();
    let redis = RedisServer::start();
    let cfg = env.config(&format!(
        "queue_dir: {}\nrunners:\n  out: {{path: '{}'}}\n",
        env.queue_dir().display(),
        redis.url()
    ));
    let q = Qt::config_only(&env, &cfg);
    let fb = q.enqueue(
        "in",
        BINARY,
        &[
            "-m",
            "listid=test.example.com",
            "-m",
            "foo=yes",
            "-m",
            "n=[1, {a: b}]",
        ],
    );
    assert_eq!(env.files("in"), vec![format!("{fb}.pck")]);
    assert_eq!(redis.int(&["DBSIZE"]), 0, "nothing on Redis yet");
    let before = q.dump("in", &fb, &["--all"]);

    // Directory → Redis.
    let out = q.ok(&["move", "in", &fb, "--to", "out"]);
    let on_redis = out
        .trim()
        .strip_prefix(&format!("in/{fb} -> out/"))
        .unwrap_or_else(|| panic!("move printed {out:?}"))
        .to_string();
    assert!(env.files("in").is_empty(), "{:?}", env.files("in"));
    assert!(
        !env.queue("out").exists(),
        "out is on Redis, not in queue_dir"
    );
    assert_eq!(redis.xlen("out", 0), 1);
    assert_eq!(redis.index("out", 0), vec![on_redis.clone()]);
    assert_eq!(q.dump("out", &on_redis, &["--all"]), before);

    // Redis → directory.
    let out = q.ok(&["move", "out", &on_redis, "--to", "in"]);
    let back = out
        .trim()
        .strip_prefix(&format!("out/{on_redis} -> in/"))
        .unwrap_or_else(|| panic!("move printed {out:?}"))
        .to_string();
    assert_eq!(redis.xlen("out", 0), 0);
    assert!(redis.index("out", 0).is_empty());
    assert_eq!(env.files("in"), vec![format!("{back}.pck")]);
    assert_eq!(q.dump("in", &back, &["--all"]), before);
    let file = fs::read(env.queue("in").join(format!("{back}.pck"))).unwrap();
    assert!(
        file.ends_with(BINARY),
        "the file holds the message byte for byte"
    );

    // A forward across backends, then the message out of Redis byte for byte.
    let out = q.run(&["run-once", "in", "--forward", "out"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(env.files("in").is_empty());
    assert_eq!(redis.xlen("out", 0), 1);
    let meta = env.root().join("meta.yaml");
    let out = q.run(&["dequeue", "out", "--meta-out", s(&meta)], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, BINARY);
    let meta = read_lossy(&meta);
    assert!(
        meta.lines().any(|l| l == "foo: \"yes\"") && meta.lines().any(|l| l == "lang: en"),
        "{meta}"
    );
    assert_eq!(redis.xlen("out", 0), 0);

    // The reverse layout: queues on Redis, one runner's queue in a directory.
    let archive = env.root().join("archive");
    let cfg = env.config(&format!(
        "queue_dir: '{}'\nrunners:\n  archive: {{path: '{}'}}\n",
        redis.url(),
        archive.display()
    ));
    let q = Qt::config_only(&env, &cfg);
    let fb = q.enqueue("in", BINARY, &["-m", "foo=yes"]);
    assert_eq!(redis.xlen("in", 0), 1);
    assert!(env.files("in").is_empty(), "in is on Redis now");
    let before = q.dump("in", &fb, &["--all"]);
    let out = q.ok(&["move", "in", &fb, "--to", "archive"]);
    let archived = out
        .trim()
        .strip_prefix(&format!("in/{fb} -> archive/"))
        .unwrap_or_else(|| panic!("move printed {out:?}"))
        .to_string();
    assert_eq!(redis.xlen("in", 0), 0);
    let path = archive.join(format!("{archived}.pck"));
    assert!(
        path.is_file(),
        "{:?}",
        fs::read_dir(&archive).map(|d| d.count())
    );
    assert_eq!(q.dump("archive", &archived, &["--all"]), before);
    assert!(fs::read(&path).unwrap().ends_with(BINARY));
}

// ---------------------------------------------------------------------------------------
// 7. The size limit.

#[test]
fn redis_refuses_a_message_over_64_mib_and_takes_one_of_exactly_64_mib() {
    let env = Env::new();
    let redis = RedisServer::start();
    let q = Qt::redis(&env, &redis);
    let limit = 64usize << 20;
    let mut big = b"Subject: big\n\n".to_vec();
    big.resize(limit + 1, b'x');
    let path = env.root().join("big.eml");
    fs::write(&path, &big).unwrap();

    let out = q.run(&["enqueue", "in", s(&path)], b"");
    assert_error(&out, 65);
    let err = stderr(&out);
    assert!(
        err.contains("larger than 64 MiB") && err.contains("memory"),
        "the error says why: {err}"
    );
    assert_eq!(
        redis.int(&["EXISTS", &stream("in", 0)]),
        0,
        "nothing stored"
    );
    assert!(q.names("in").is_empty());

    // All or nothing in a batch: a small message before the big one is not left behind
    // unprinted. (What was printed is durable; what was not is not in the queue.)
    let small = env.root().join("small.eml");
    fs::write(&small, SEED).unwrap();
    let out = q.run(&["enqueue", "in", s(&small), s(&path)], b"");
    assert_eq!(code(&out), Some(65), "{}", stderr(&out));
    let printed: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(q.names("in"), printed);
    for fb in &printed {
        q.ok(&["delete", "in", fb]);
    }

    // Exactly 64 MiB is accepted and comes back whole.
    big.truncate(limit);
    fs::write(&path, &big).unwrap();
    let fb = q.enqueue("in", b"", &[s(&path)]);
    assert_eq!(redis.xlen("in", 0), 1);
    let back = env.root().join("back.eml");
    let out = q.run(&["dequeue", "in", &fb, "-o", s(&back)], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        fs::read(&back).unwrap() == big,
        "the 64 MiB message changed"
    );
    assert_eq!(redis.xlen("in", 0), 0);
}

// ---------------------------------------------------------------------------------------
// 8. An unreachable server.

#[test]
fn redis_unreachable_is_75_for_every_command_and_creates_nothing_locally() {
    let env = Env::new();
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let q = Qt {
        root: env.root().to_path_buf(),
        location: Some(url.clone()),
        config: None,
    };
    let cases: &[(&[&str], &[u8])] = &[
        (&["enqueue", "in"], SEED),
        (&["list"], b""),
        (&["list", "in"], b""),
        (&["stats"], b""),
        (&["dequeue", "in"], b""),
        (&["run-once", "in", "--discard"], b""),
        (&["recover", "in"], b""),
    ];
    for (args, stdin) in cases {
        let out = q.run(args, stdin);
        assert_error(&out, 75);
        let err = stderr(&out);
        assert!(
            err.contains(&url),
            "{args:?}: the error names the server: {err}"
        );
        assert!(
            err.contains("redis-server is running"),
            "{args:?}: the error says what to do: {err}"
        );
    }
    let left: Vec<_> = fs::read_dir(env.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "created locally: {left:?}");

    // `run` does not give up: it says so and tries again, and stops cleanly on SIGTERM.
    let log = env.root().join("run.log");
    let mut runner = q.spawn_logged(&["run", "in", "--discard"], &log);
    must(
        20,
        "the runner did not report the failure",
        &[&runner],
        || read_lossy(&log).contains("trying again in"),
    );
    assert!(
        runner.child.try_wait().unwrap().is_none(),
        "{}",
        runner.log_text()
    );
    runner.signal("TERM");
    assert_eq!(
        runner.wait_exit(20).code(),
        Some(0),
        "{}",
        runner.log_text()
    );
    let text = runner.log_text();
    assert!(text.contains(&url), "{text}");
}

/// The same when the server goes away after a queue was made: 75, and nothing is lost
/// once it is back.
#[test]
fn redis_down_then_back_loses_nothing() {
    let env = Env::new();
    let mut redis = RedisServer::start();
    let q = Qt::redis(&env, &redis);
    let fb = q.enqueue("in", SEED, &[]);
    redis.kill();
    assert_error(&q.run(&["enqueue", "in"], SEED), 75);
    assert_error(&q.run(&["dequeue", "in"], b""), 75);
    assert_error(&q.run(&["dump", "in", &fb], b""), 75);
    redis.start_again();
    assert_eq!(q.names("in"), vec![fb]);
    assert_eq!(q.run(&["dequeue", "in"], b"").stdout, SEED);
}

// ---------------------------------------------------------------------------------------
// 9. Slices: one stream per instance.

#[test]
fn redis_instances_make_streams_and_slices_drain_only_their_own() {
    const MESSAGES: usize = 64;
    let env = Env::new();
    let redis = RedisServer::start();
    let cfg = env.config("runners:\n  in: {instances: 4, sleep_time: 0.1s}\n");
    let q = Qt::redis(&env, &redis).with_config(&cfg);
    let mut files = Vec::new();
    for n in 0..MESSAGES {
        let p = env.root().join(format!("{n}.eml"));
        fs::write(&p, format!("Subject: s{n}\n\nbody {n}\n")).unwrap();
        files.push(p);
    }
    let mut args = vec!["enqueue", "in"];
    args.extend(files.iter().map(|p| s(p)));
    let all: Vec<String> = q.ok(&args).lines().map(str::to_string).collect();
    assert_eq!(all.len(), MESSAGES);
    assert_eq!(redis.cli(&["GET", "qtool:{in}:streams"]), "4");

    // Each entry is in the stream of its digest's quarter.
    let mut total = 0;
    for i in 0..4 {
        let fbs = redis.index("in", i);
        assert!(!fbs.is_empty(), "stream {i} is empty");
        assert_eq!(redis.xlen("in", i), fbs.len() as i64);
        for fb in &fbs {
            assert_eq!(slice_of(fb, 4), i, "{fb} in stream {i}");
        }
        total += fbs.len();
    }
    assert_eq!(total, MESSAGES);
    assert_eq!(redis.int(&["EXISTS", &stream("in", 4)]), 0);

    // Slice 0 of 4 drains stream 0 only.
    let before: Vec<i64> = (0..4).map(|i| redis.xlen("in", i)).collect();
    let out = q.run(&["run-once", "in:0:4", "--discard"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("in:0:4: {} done", before[0])),
        "{}",
        stderr(&out)
    );
    assert_eq!(redis.xlen("in", 0), 0);
    for i in 1..4 {
        assert_eq!(
            redis.xlen("in", i),
            before[i as usize],
            "stream {i} untouched"
        );
    }
    let left = q.names("in");
    assert!(left.iter().all(|fb| slice_of(fb, 4) != 0), "{left:?}");

    // in:1:4 (stream 1) and in:1:2 (streams 2 and 3) together drain the rest, each
    // only its own, each entry once.
    let log = env.root().join("handled.log");
    let handler = logging_handler(&env, &log);
    let mut runners: Vec<Background> = ["in:1:4", "in:1:2"]
        .iter()
        .map(|spec| {
            q.spawn_logged(
                &["run", spec, "--", s(&handler), spec],
                &env.root().join(format!("{spec}.log")),
            )
        })
        .collect();
    let refs: Vec<&Background> = runners.iter().collect();
    must(30, "the slices did not drain the queue", &refs, || {
        read_lossy(&log).lines().count() >= left.len()
    });
    must(10, "the queue did not drain", &refs, || {
        (0..4).all(|i| redis.xlen("in", i) == 0)
    });
    for r in &runners {
        r.signal("TERM");
    }
    for r in &mut runners {
        assert_eq!(r.wait_exit(20).code(), Some(0), "{}", r.log_text());
    }
    let mut handled = BTreeSet::new();
    for (line, n) in line_counts(&log) {
        assert_eq!(n, 1, "handled twice: {line}");
        let mut parts = line.splitn(3, ' ');
        let (spec, fb) = (parts.next().unwrap(), parts.next().unwrap());
        match spec {
            "in:1:4" => assert_eq!(slice_of(fb, 4), 1, "{line}"),
            "in:1:2" => assert_eq!(slice_of(fb, 2), 1, "{line}"),
            _ => panic!("{line}"),
        }
        handled.insert(fb.to_string());
    }
    assert_eq!(handled, left.into_iter().collect::<BTreeSet<_>>());
    assert!(q.names("in").is_empty());
}

/// The number of streams is fixed when a queue is first used: changing `instances`
/// later strands nothing.
#[test]
fn redis_changing_instances_later_keeps_the_recorded_streams() {
    let env = Env::new();
    let redis = RedisServer::start();
    let q = Qt::redis(&env, &redis);
    let fbs: Vec<String> = (0..8)
        .map(|n| q.enqueue("in", format!("Subject: {n}\n\n{n}\n").as_bytes(), &[]))
        .collect();
    assert_eq!(redis.cli(&["GET", "qtool:{in}:streams"]), "1");
    let cfg = env.config("runners:\n  in: {instances: 4}\n");
    let q4 = Qt::redis(&env, &redis).with_config(&cfg);
    assert_eq!(q4.names("in"), fbs);
    let fb = q4.enqueue("in", SEED, &[]);
    assert_eq!(redis.cli(&["GET", "qtool:{in}:streams"]), "1");
    assert_eq!(redis.xlen("in", 0), 9);
    assert_eq!(redis.int(&["EXISTS", &stream("in", 1)]), 0);
    let out = q4.run(&["run-once", "in", "--discard"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(redis.xlen("in", 0), 0, "{fb} and the rest drained");
}

/// Reading commands look; they do not make queues. On the filesystem `list typo` creates
/// no directory; on Redis it must not register `typo` in `qtool:queues` (where `stats`
/// would show it from then on).
#[test]
fn redis_reading_commands_do_not_create_queues() {
    let env = Env::new();
    let redis = RedisServer::start();
    let q = Qt::redis(&env, &redis);
    q.enqueue("in", SEED, &[]);
    let out = q.run(&["list", "typo"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let out = q.run(&["stats", "typo2"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let out = q.run(&["dump", "typo3", &format!("1000.5+{HEX}")], b"");
    assert_eq!(code(&out), Some(66), "{}", stderr(&out));
    assert_eq!(
        redis.lines(&["SMEMBERS", "qtool:queues"]),
        vec!["in".to_string()]
    );
    assert_eq!(redis.int(&["EXISTS", &stream("typo", 0)]), 0);
    let doc: Value = serde_json::from_str(&q.ok(&["stats", "--format", "json"])).unwrap();
    let names: Vec<&str> = doc
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["queue"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["in"]);
}

/// SPEC §3: slice `i` of `N` owns the digests of its range, whatever the backend. A
/// queue first used without the runner's config (a producer's plain
/// `qtool -d redis://... enqueue in`) has one stream; a runner `in:1:2` then still
/// takes only the upper half of the digests.
#[test]
fn redis_a_slice_takes_only_its_digests_even_on_fewer_streams() {
    let env = Env::new();
    let redis = RedisServer::start();
    let q = Qt::redis(&env, &redis);
    let fbs: Vec<String> = (0..16)
        .map(|n| q.enqueue("in", format!("Subject: {n}\n\n{n}\n").as_bytes(), &[]))
        .collect();
    assert_eq!(redis.cli(&["GET", "qtool:{in}:streams"]), "1");
    let cfg = env.config("runners:\n  in: {instances: 2}\n");
    let q2 = Qt::redis(&env, &redis).with_config(&cfg);
    let out = q2.run(&["run-once", "in:1:2", "--discard"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let lower: Vec<String> = fbs.into_iter().filter(|fb| slice_of(fb, 2) == 0).collect();
    assert_eq!(q.names("in"), lower, "in:1:2 took entries of slice 0");
}

/// Enqueues `n` messages to `queue` in one `enqueue --mbox` (subjects `<prefix><n>`,
/// bodies of `pad` bytes, or the number): its output.
fn fill(q: &Qt, env: &Env, queue: &str, n: usize, prefix: &str, pad: usize) -> Output {
    let mut mbox = Vec::new();
    for i in 0..n {
        let body = if pad > 0 {
            "x".repeat(pad)
        } else {
            i.to_string()
        };
        mbox.extend_from_slice(format!("From x\nSubject: {prefix}{i}\n\n{body}\n\n").as_bytes());
    }
    let mb = env.root().join(format!("{queue}.mbox"));
    fs::write(&mb, &mbox).unwrap();
    q.run(&["enqueue", queue, "--mbox", s(&mb)], b"")
}

// ---------------------------------------------------------------------------------------
// What a review found: stops, dead repairs, racing recoveries, a full Redis.

/// A runner stopped in the middle of a pass gives back what it claimed ahead: after
/// the claim timeout nothing is recovered, and no entry carries `_bak_count`.
#[test]
fn redis_a_stopped_runner_gives_back_what_it_claimed_ahead_uncounted() {
    let env = Env::new();
    let redis = RedisServer::start();
    let cfg = env.config("claim_timeout: 1s\nrunners:\n  in: {sleep_time: 0.1s}\n");
    let q = Qt::redis(&env, &redis).with_config(&cfg);
    let out = fill(&q, &env, "in", 3000, "", 0);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let mut runner = q.spawn_logged(&["run", "in", "--discard"], &env.root().join("r.log"));
    must(30, "the runner did not start draining", &[&runner], || {
        redis.xlen("in", 0) < 2900
    });
    send_signal(runner.child.id(), "TERM");
    let status = wait_or_kill(&mut runner.child, 20, "runner");
    assert_eq!(status.code(), Some(0), "{}", runner.log_text());
    assert_eq!(
        redis.pending("in", 0),
        0,
        "entries left claimed after a clean stop"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let out = q.run(&["recover", "in"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("in: 0 recovered, 0 preserved"),
        "{}",
        stderr(&out)
    );
    let left = q.names("in");
    assert!(
        !left.is_empty(),
        "the runner drained everything before the stop"
    );
    for fb in left.iter().take(50) {
        assert_eq!(bak_count(&q, "in", fb), None, "{fb} was counted as a crash");
    }
}

/// A repair of `bad` that died holding its entry: the entry comes back to `bad`
/// (unchanged) after the claim timeout, and can be deleted.
#[test]
fn redis_a_dead_repair_of_bad_is_recovered() {
    let env = Env::new();
    let redis = RedisServer::start();
    let cfg = env.config("claim_timeout: 1s\n");
    let q = Qt::redis(&env, &redis).with_config(&cfg);
    let fb = q.enqueue("bad", SEED, &[]);
    let mut c = q.cmd();
    c.env("QTOOL_FAULT", "finish");
    let out = run_with(c, &["delete", "bad", &fb], b"");
    assert_eq!(
        out.status.code(),
        None,
        "expected an abort: {}",
        stderr(&out)
    );
    let out = q.run(&["delete", "bad", &fb], b"");
    assert_error(&out, 75);
    std::thread::sleep(Duration::from_millis(1500));
    let out = q.run(&["recover", "bad"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(q.names("bad"), vec![fb.clone()]);
    assert!(!q.dump("bad", &fb, &[]).contains("_bak_count"));
    let out = q.run(&["delete", "bad", &fb], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(q.names("bad").is_empty());
}

/// Two recoveries at once of an entry held by a dead repair: exactly one acts on it,
/// here the recovery that moves it to `bad` (its third): one copy in `bad`, not two.
#[test]
fn redis_racing_recoveries_of_a_held_entry_make_one_copy() {
    for _ in 0..3 {
        let env = Env::new();
        let redis = RedisServer::start();
        let cfg = env.config("claim_timeout: 1s\n");
        let q = Qt::redis(&env, &redis).with_config(&cfg);
        // The queue exists (one stream); then an entry recovered twice already, as
        // qtool writes it.
        q.enqueue("hq", b"Subject: other\n\nother\n", &[]);
        let fb = "1796400000.5+0123456789abcdef0123456789abcdef01234567";
        let id = redis.cli(&[
            "XADD",
            "qtool:{hq.0}",
            "*",
            "fb",
            fb,
            "meta",
            "_bak_count: 2\nversion: 3\n",
            "msg",
            "Subject: twice\n\nbody\n",
        ]);
        redis.cli(&["HSET", "qtool:{hq.0}:index", fb, &format!("{id} 45")]);
        let mut c = q.cmd();
        c.env("QTOOL_FAULT", "finish");
        let out = run_with(c, &["delete", "hq", fb], b"");
        assert_eq!(
            out.status.code(),
            None,
            "expected an abort: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(1500));
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| q.run(&["recover", "hq"], b""));
            let b = scope.spawn(|| q.run(&["recover", "hq"], b""));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(code(&a), Some(0), "{}", stderr(&a));
        assert_eq!(code(&b), Some(0), "{}", stderr(&b));
        let both = format!("{}{}{}{}", stdout(&a), stdout(&b), stderr(&a), stderr(&b));
        assert_eq!(q.names("bad").len(), 1, "{both}");
        assert_eq!(both.matches("recovered 3 times").count(), 1, "{both}");
        assert_eq!(q.names("hq").len(), 1, "{both}");
        let bad = q.names("bad");
        assert!(q
            .dump("bad", &bad[0], &["--message"])
            .contains("Subject: twice"));
    }
}

/// A batch that Redis refuses part-way (maxmemory): exactly the printed filebases are
/// stored, and the command exits 75.
#[test]
fn redis_a_batch_refused_part_way_stores_exactly_what_it_printed() {
    let env = Env::new();
    let redis = RedisServer::start();
    let q = Qt::redis(&env, &redis);
    q.enqueue("oom", SEED, &[]);
    let info = redis.cli(&["INFO", "memory"]);
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.cli(&[
        "CONFIG",
        "SET",
        "maxmemory",
        &(used + 2_000_000).to_string(),
    ]);
    let out = fill(&q, &env, "oom", 3000, "", 1000);
    assert_eq!(code(&out), Some(75), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    let printed: BTreeSet<String> = stdout(&out).lines().map(str::to_string).collect();
    assert!(printed.len() > 1, "nothing fitted: {}", stderr(&out));
    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    let stored: BTreeSet<String> = q.names("oom").into_iter().collect();
    assert_eq!(stored.len(), printed.len() + 1, "{}", stderr(&out));
    assert!(printed.is_subset(&stored));
}

// ---------------------------------------------------------------------------------------
// A Redis Cluster: three masters on loopback.

/// Three `redis-server --cluster-enabled yes` nodes made into one cluster (no replicas),
/// each with its own AOF; killed when dropped.
struct RedisCluster {
    _dir: tempfile::TempDir,
    ports: Vec<u16>,
    children: Vec<Child>,
}

impl RedisCluster {
    fn start() -> RedisCluster {
        let dir = tempfile::tempdir().expect("tempdir for the cluster");
        let mut ports = Vec::new();
        let mut children = Vec::new();
        while ports.len() < 3 {
            let port = free_port();
            let d = dir.path().join(port.to_string());
            fs::create_dir_all(&d).unwrap();
            if let Ok(child) = spawn_redis(
                &d,
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ],
            ) {
                ports.push(port);
                children.push(child);
            }
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new(REDIS_CLI)
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster {
            _dir: dir,
            ports,
            children,
        };
        assert!(
            wait_until(30, || cluster.ports.iter().all(|p| cluster
                .cli(*p, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok"))),
            "the cluster did not come up"
        );
        cluster
    }

    fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new(REDIS_CLI)
            .arg("-p")
            .arg(port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The node (its port) that holds `key`.
    fn node_of(&self, key: &str) -> Option<u16> {
        self.ports
            .iter()
            .copied()
            .find(|p| self.cli(*p, &["EXISTS", key]) == "1")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// On a Redis Cluster (`redis+cluster://`), a queue's slices are streams in different
/// slots, spread over the nodes; enqueue, the slice runners, forward, list, dump,
/// move to bad and delete all work, each entry handled once.
#[test]
fn redis_cluster_spreads_a_queues_slices_over_its_nodes() {
    let env = Env::new();
    let cluster = RedisCluster::start();
    let cfg = env.config(&format!(
        "queue_dir: {}\nrunners:\n  in: {{instances: 4}}\n",
        cluster.url()
    ));
    let q = Qt::config_only(&env, &cfg);
    let out = fill(&q, &env, "in", 200, "m", 0);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let printed: BTreeSet<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(printed.len(), 200);
    let nodes: BTreeSet<u16> = (0..4)
        .map(|i| {
            cluster
                .node_of(&stream("in", i))
                .expect("every stream exists")
        })
        .collect();
    assert!(nodes.len() >= 2, "all four streams on one node: {nodes:?}");
    let listed: BTreeSet<String> = q.names("in").into_iter().collect();
    assert_eq!(listed, printed);

    // The four slices, each once, forward everything to `out`.
    for k in 0..4 {
        let out = q.run(&["run-once", &format!("in:{k}:4"), "--forward", "out"], b"");
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    }
    assert!(q.names("in").is_empty());
    let out_names = q.names("out");
    assert_eq!(out_names.len(), 200);
    let d = q.dump("out", &out_names[0], &["--message"]);
    assert!(d.contains("Subject: m"), "{d}");

    // Each forwarded message is handled exactly once: drain out through a logging
    // handler.
    let log = env.root().join("handled.log");
    let handler = logging_handler(&env, &log);
    let out = q.run(&["run-once", "out", "--", s(&handler), "x"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let counts = line_counts(&log);
    assert_eq!(counts.len(), 200, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");

    // bad on a cluster: an entry there, then deleted by name.
    let fb = q.enqueue("bad", SEED, &[]);
    assert_eq!(q.names("bad"), vec![fb.clone()]);
    let out = q.run(&["delete", "bad", &fb], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(q.names("bad").is_empty());
    let st = q.ok(&["stats"]);
    assert!(st.contains("in") && st.contains("out"), "{st}");
}

/// A signal during a Redis call (SIGHUP from logrotate, say) does not interrupt it:
/// the runner reopens its log and goes on, nothing is left claimed or counted.
#[test]
fn redis_sighup_during_a_slow_redis_call_interrupts_nothing() {
    let env = Env::new();
    let redis = RedisServer::start();
    let cfg = env.config("claim_timeout: 1s\nrunners:\n  in: {sleep_time: 0.1s}\n");
    let q = Qt::redis(&env, &redis).with_config(&cfg);
    let out = fill(&q, &env, "in", 2000, "", 0);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let log = env.root().join("r.log");
    let mut runner = q.spawn_logged(
        &["run", "in", "--discard", "--log-file", s(&log)],
        &env.root().join("stderr.log"),
    );
    must(30, "the runner did not start", &[&runner], || {
        redis.xlen("in", 0) < 2000
    });
    // Redis stops answering for a second or two; the runner is then inside a call.
    let port = redis.url();
    let port = port
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/0")
        .to_string();
    // A script that busy-waits a second blocks the whole server (DEBUG SLEEP is
    // disabled by default in Redis 7).
    let sleeper = Command::new(REDIS_CLI)
        .args([
            "-p",
            &port,
            "EVAL",
            "local s = tonumber(redis.call('TIME')[1]) while tonumber(redis.call('TIME')[1]) < s + 2 do end return 1",
            "0",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-cli DEBUG SLEEP");
    let _sleeper = ChildGuard(sleeper);
    std::thread::sleep(Duration::from_millis(300));
    send_signal(runner.child.id(), "HUP");
    must(30, "the queue did not drain", &[&runner], || {
        redis.xlen("in", 0) == 0
    });
    send_signal(runner.child.id(), "TERM");
    let status = wait_or_kill(&mut runner.child, 20, "runner");
    assert_eq!(status.code(), Some(0), "{}", runner.log_text());
    let text = format!("{}{}", read_lossy(&log), runner.log_text());
    assert!(!text.contains("Interrupted"), "{text}");
    assert!(!text.contains("trying again"), "{text}");
    assert_eq!(redis.pending("in", 0), 0);
    assert!(text.contains("runner stopped: 2000 done"), "{text}");
}

/// Scripts flushed from the server (SCRIPT FLUSH, a failover to a fresh node): a running
/// runner loads them again and carries on; nothing is lost.
#[test]
fn redis_a_runner_survives_its_scripts_being_flushed() {
    let env = Env::new();
    let redis = RedisServer::start();
    let cfg = env.config("claim_timeout: 1s\nrunners:\n  in: {sleep_time: 0.1s}\n");
    let q = Qt::redis(&env, &redis).with_config(&cfg);
    let mut runner = q.spawn_logged(&["run", "in", "--discard"], &env.root().join("r.log"));
    q.enqueue("in", SEED, &[]);
    must(20, "the first entry was not handled", &[&runner], || {
        redis.xlen("in", 0) == 0
    });
    redis.cli(&["SCRIPT", "FLUSH"]);
    // Entries added by hand (no qtool process that would load the scripts again).
    for n in 0..5 {
        let fb = format!("17964{n:05}.5+0123456789abcdef0123456789abcdef0123456{n}");
        redis.cli(&[
            "XADD",
            &stream("in", 0),
            "*",
            "fb",
            &fb,
            "meta",
            "version: 3\n",
            "msg",
            &format!("Subject: {n}\n\n{n}\n"),
        ]);
    }
    must(
        20,
        "the entries after the flush were not handled",
        &[&runner],
        || redis.xlen("in", 0) == 0 && redis.pending("in", 0) == 0,
    );
    send_signal(runner.child.id(), "TERM");
    let status = wait_or_kill(&mut runner.child, 20, "runner");
    assert_eq!(status.code(), Some(0), "{}", runner.log_text());
}

/// README's two-host example: two supervisors (`run --all`, as on two hosts) against
/// one Redis, each with two runners of `in` (program handler) and one of `out`
/// (forward target, discard): every message is handled exactly once, and both stop
/// with 0 on SIGTERM.
#[test]
fn redis_two_supervisors_share_the_queues_and_handle_each_message_once() {
    let env = Env::new();
    let redis = RedisServer::start();
    let log = env.root().join("handled.log");
    let handler = logging_handler(&env, &log);
    let cfg = env.config(&format!(
        "queue_dir: {}\nclaim_timeout: 5s\nrunners:\n  \
         in: {{handler: {{exec: [{}, in]}}, instances: 2, sleep_time: 0.1s}}\n  \
         out: {{handler: discard, sleep_time: 0.1s}}\n  \
         shunt: {{start: false}}\n",
        redis.url(),
        handler.display()
    ));
    let q = Qt::config_only(&env, &cfg);
    let mut hosts: Vec<Background> = (0..2)
        .map(|h| q.spawn_logged(&["run", "--all"], &env.root().join(format!("host{h}.log"))))
        .collect();
    let out = fill(&q, &env, "in", 200, "m", 0);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let refs: Vec<&Background> = hosts.iter().collect();
    must(60, "not every message was handled", &refs, || {
        line_counts(&log).len() == 200
    });
    must(20, "the queue did not drain", &refs, || {
        redis.xlen("in", 0) == 0 && redis.xlen("in", 1) == 0
    });
    for h in &mut hosts {
        send_signal(h.child.id(), "TERM");
    }
    for h in &mut hosts {
        let status = wait_or_kill(&mut h.child, 30, "supervisor");
        assert_eq!(status.code(), Some(0), "{}", h.log_text());
    }
    let counts = line_counts(&log);
    assert_eq!(counts.len(), 200);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert!(q.names("shunt").is_empty() && q.names("bad").is_empty());
    // Both supervisors ran their runners (which one handled a message is up to Redis).
    let started = (0..2)
        .map(|h| read_lossy(&env.root().join(format!("host{h}.log"))))
        .filter(|t| t.contains("started runner in:0:2") && t.contains("started runner in:1:2"))
        .count();
    assert_eq!(started, 2, "both supervisors started their runners");
}
