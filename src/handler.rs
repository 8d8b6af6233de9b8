//! Handlers: what a runner does with each entry (SPEC §4).
//!
//! The exec protocol: the program runs without a shell, in its own process group, with
//! the raw message on stdin and `QTOOL_QUEUE`, `QTOOL_FILEBASE` and `QTOOL_METADATA`
//! (a private file holding the metadata as a plain YAML mapping) in its environment.
//! Exit 0 is done; exit 75 keeps the entry queued with the metadata file as the handler
//! left it; anything else, a signal, or running past the timeout is a failure. Its
//! stdout is discarded; the tail of its stderr explains a failure. When the handler's
//! own process exits, whatever it left behind in its process group is killed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::HandlerSpec;
use crate::error::{Error, Result};
use crate::metadata::{self, Metadata};
use crate::queue::{Entry, Filebase, Switchboard};

/// EX_TEMPFAIL: the exec handler's way of saying "keep it queued".
pub const EXIT_KEEP: i32 = 75;
/// The most of a handler's stderr kept to explain a failure.
const STDERR_TAIL: usize = 4096;

/// A runnable handler.
#[derive(Debug, Clone)]
pub enum Handler {
    Exec {
        argv: Vec<String>,
        timeout: Option<Duration>,
    },
    Forward(Switchboard),
    Discard,
}

/// What became of an entry.
#[derive(Debug)]
pub enum Outcome {
    /// Finished: remove the entry.
    Done,
    /// Keep it queued, with this metadata.
    Keep(Metadata),
    /// Failed: shunt it, with this one-line reason.
    Failed(String),
    /// Could not be handled for a temporary reason (a full disk on the forward target,
    /// a stop that interrupted the handler): put it back as it was.
    Deferred(String),
}

/// What the handler may need besides the entry.
pub struct Context<'a> {
    pub queue: &'a str,
    pub filebase: &'a Filebase,
    /// Set when the runner is asked to stop; a running handler then gets `grace`.
    pub stop: &'a AtomicBool,
    pub grace: Duration,
    /// Called while a handler runs, to tell the queue its holder is alive.
    pub keep_alive: &'a dyn Fn(),
}

impl Handler {
    /// Builds a handler from its specification. `forward` resolves a queue name.
    pub fn from_spec(
        spec: &HandlerSpec,
        timeout: Option<Duration>,
        forward: impl Fn(&crate::queue::QueueName) -> Switchboard,
    ) -> Handler {
        match spec {
            HandlerSpec::Exec(argv) => Handler::Exec {
                argv: argv.clone(),
                timeout,
            },
            HandlerSpec::Forward(q) => Handler::Forward(forward(q)),
            HandlerSpec::Discard => Handler::Discard,
        }
    }

    /// A short description for logs and `qtool runners`.
    pub fn describe(&self) -> String {
        match self {
            Handler::Exec { argv, .. } => format!("exec {}", argv.join(" ")),
            Handler::Forward(sb) => format!("forward {}", sb.name()),
            Handler::Discard => "discard".into(),
        }
    }

    /// Disposes of one entry with `metadata` (as the runner passes it, `lang` included).
    pub fn dispose(&self, entry: &mut Entry, metadata: &Metadata, cx: &Context) -> Result<Outcome> {
        match self {
            Handler::Discard => Ok(Outcome::Done),
            Handler::Forward(target) => match target.enqueue_entry(entry, metadata.clone()) {
                Ok(_) => {
                    crate::fault::point("forward.written");
                    Ok(Outcome::Done)
                }
                Err(e) => Ok(forward_failed(target, &e)),
            },
            Handler::Exec { argv, timeout } => run_exec(argv, *timeout, entry, metadata, cx),
        }
    }
}

/// What a forward that could not be written to `target` comes to: a temporary failure
/// (a full disk, `min_free`) puts the entry back where it was, since the shunt queue is
/// usually on the same disk; anything else shunts it.
pub fn forward_failed(target: &Switchboard, e: &Error) -> Outcome {
    let why = format!("forward to {} failed: {}", target.name(), e.message);
    if e.code == crate::error::exit::TEMPFAIL {
        Outcome::Deferred(why)
    } else {
        Outcome::Failed(why)
    }
}

/// A private file for the metadata, removed when dropped.
struct MetadataFile(PathBuf);

impl MetadataFile {
    /// Creates the file under an unpredictable name in the temporary directory. A name
    /// that exists already (left by a runner killed before it could remove its file,
    /// or planted by someone else) is skipped, never opened.
    fn create(metadata: &Metadata) -> Result<MetadataFile> {
        use std::hash::{BuildHasher, Hasher};
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let mut attempt = 0;
        let (path, mut f) = loop {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
            let path = std::env::temp_dir().join(format!(
                "qtool-{}-{:016x}.yaml",
                std::process::id(),
                h.finish()
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
            {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
                Err(e) => return Err(Error::io("cannot create handler metadata file", &path, e)),
            }
        };
        let guard = MetadataFile(path);
        f.write_all(metadata::to_yaml(metadata).as_bytes())
            .map_err(|e| Error::io("cannot write handler metadata file", &guard.0, e))?;
        Ok(guard)
    }

    fn read_back(&self) -> Result<Metadata> {
        let f = File::open(&self.0).map_err(|e| Error::io("cannot read", &self.0, e))?;
        let mut text = Vec::new();
        f.take(metadata::MAX_METADATA_BYTES as u64 + 1)
            .read_to_end(&mut text)
            .map_err(|e| Error::io("cannot read", &self.0, e))?;
        metadata::from_yaml(&text, "metadata left by the handler")
    }
}

/// Removes metadata files left in the temporary directory by runners that were killed
/// before they could (`qtool-<pid>-<hex>.yaml` whose process is gone, owned by this
/// user). Returns how many.
pub fn remove_stale_metadata_files() -> usize {
    use std::os::unix::fs::MetadataExt;
    let dir = std::env::temp_dir();
    let Ok(rd) = fs::read_dir(&dir) else {
        return 0;
    };
    // SAFETY: geteuid(2) cannot fail.
    let me = unsafe { libc::geteuid() };
    let mut removed = 0;
    for item in rd.flatten() {
        let name = item.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| {
                n.strip_prefix("qtool-")?
                    .strip_suffix(".yaml")?
                    .split_once('-')
            })
            .and_then(|(pid, _)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: kill(2) with signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        let mine = item.metadata().is_ok_and(|m| m.uid() == me && m.is_file());
        if gone && mine && fs::remove_file(item.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl Drop for MetadataFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// How a handler run ended, before its exit status is read.
enum Ending {
    Exited(std::process::ExitStatus),
    TimedOut(Duration),
    Stopped,
    WaitFailed(String),
}

fn run_exec(
    argv: &[String],
    timeout: Option<Duration>,
    entry: &mut Entry,
    metadata: &Metadata,
    cx: &Context,
) -> Result<Outcome> {
    let meta_file = MetadataFile::create(metadata)?;
    // The message itself is the handler's stdin (not a pipe fed by the runner): if the
    // runner dies, a handler still running reads the whole message, never a truncated
    // one; and the open file keeps the entry's claim lock held until it is done.
    let stdin = match entry.message_file() {
        Ok(f) => f,
        Err(e) => {
            return Ok(Outcome::Failed(format!(
                "cannot give the message to the handler: {e}"
            )))
        }
    };
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env("QTOOL_QUEUE", cx.queue)
        .env("QTOOL_FILEBASE", cx.filebase.as_str())
        .env("QTOOL_METADATA", &meta_file.0)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl(2) only, between fork and exec. The handler is killed if the runner
    // dies (even by SIGKILL): its entry will be recovered and handled again anyway.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Ok(Outcome::Failed(format!(
                "handler {} could not start: {e}",
                argv[0]
            )))
        }
    };
    let pgid = child.id() as i32;
    let kill_group = || {
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    };

    let mut stderr = child.stderr.take().expect("stderr was piped");
    let stderr_reader = std::thread::spawn(move || {
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > 2 * STDERR_TAIL {
                        tail.drain(..tail.len() - STDERR_TAIL);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        tail
    });

    let started = Instant::now();
    let mut stop_seen: Option<Instant> = None;
    let ending = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ending::Exited(status),
            Ok(None) => {}
            Err(e) => break Ending::WaitFailed(e.to_string()),
        }
        if let Some(limit) = timeout.filter(|l| started.elapsed() > *l) {
            kill_group();
            let _ = child.wait();
            break Ending::TimedOut(limit);
        }
        if cx.stop.load(Ordering::Relaxed) {
            let since = *stop_seen.get_or_insert_with(Instant::now);
            if since.elapsed() > cx.grace {
                kill_group();
                let _ = child.wait();
                break Ending::Stopped;
            }
        }
        (cx.keep_alive)();
        std::thread::sleep(poll_interval(started.elapsed()));
    };
    // Whatever the handler left running in its group goes with it.
    kill_group();
    let tail = stderr_reader.join().unwrap_or_default();
    let last_line = last_line(&tail);
    let status = match ending {
        Ending::Exited(s) => s,
        Ending::TimedOut(limit) => {
            return Ok(Outcome::Failed(format!(
                "handler timed out after {}",
                human_duration(limit)
            )))
        }
        Ending::Stopped => {
            return Ok(Outcome::Deferred(format!(
                "handler killed after a {} grace period on stop",
                human_duration(cx.grace)
            )))
        }
        Ending::WaitFailed(e) => {
            return Ok(Outcome::Failed(format!("cannot wait for handler: {e}")))
        }
    };
    let with_tail = |what: String| {
        if last_line.is_empty() {
            what
        } else {
            format!("{what}: {last_line}")
        }
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(Outcome::Done),
        (Some(EXIT_KEEP), _) => match meta_file.read_back() {
            Ok(m) => Ok(Outcome::Keep(m)),
            Err(e) => Ok(Outcome::Failed(format!(
                "handler exited {EXIT_KEEP} but left unreadable metadata: {}",
                e.message
            ))),
        },
        (Some(code), _) => Ok(Outcome::Failed(with_tail(format!("handler exited {code}")))),
        (None, Some(sig)) => Ok(Outcome::Failed(with_tail(format!(
            "handler killed by signal {sig}"
        )))),
        _ => Ok(Outcome::Failed(with_tail(
            "handler ended abnormally".into(),
        ))),
    }
}

/// How long to wait before looking at the handler again: short at first, so quick
/// handlers cost little, then longer, so slow ones cost no CPU.
fn poll_interval(elapsed: Duration) -> Duration {
    match elapsed.as_millis() {
        0..5 => Duration::from_micros(200),
        5..100 => Duration::from_millis(2),
        _ => Duration::from_millis(20),
    }
}

/// The last non-empty line of a handler's stderr, made printable and kept short.
fn last_line(tail: &[u8]) -> String {
    let text = String::from_utf8_lossy(tail);
    let line = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let clean: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    clean
}

/// `90s` → `1m30s`, as an admin writes durations.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if secs > 0 || out.is_empty() {
        out.push_str(&format!("{secs}s"));
    }
    out
}
