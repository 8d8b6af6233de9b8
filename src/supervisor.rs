//! `qtool run --all`: one process per slice for every runner with `start: true`, as
//! Mailman's master supervises its runners.
//!
//! - Only one supervisor runs per `queue_dir`: it holds an exclusive lock on
//!   `<queue_dir>/.qtool-supervisor.lock`, which also records its pid so a second one can
//!   say who holds it.
//! - A runner that exits unexpectedly is restarted after a short backoff that doubles
//!   with each restart; after `max_restarts` restarts the supervisor gives up on it and
//!   says so, while the others go on. A runner that exits with [`EXIT_RESTART`] (it got
//!   SIGUSR1) is restarted at once and that does not count.
//! - TERM and INT are forwarded and the supervisor waits for every runner to finish its
//!   current message; HUP and USR1 are forwarded.
//! - Children get `PR_SET_PDEATHSIG`: if the supervisor dies, even by SIGKILL, each
//!   runner receives SIGTERM and stops after its current message. No orphans.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fs2::FileExt;

use crate::config::Config;
use crate::error::{exit, Error, IoContext, Result};
use crate::queue::Slice;

/// The exit status of a runner that stopped to be restarted (SIGUSR1).
pub const EXIT_RESTART: i32 = exit::TEMPFAIL;
/// The name of the lock file in `queue_dir`.
pub const LOCK_FILE: &str = ".qtool-supervisor.lock";

/// The lock that makes a supervisor the only one for its `queue_dir`.
#[derive(Debug)]
pub struct SupervisorLock {
    _file: File,
    pub path: PathBuf,
}

impl SupervisorLock {
    /// Takes the lock, or fails with 75 naming the pid of the supervisor that holds it.
    pub fn acquire(queue_dir: &Path) -> Result<SupervisorLock> {
        std::fs::create_dir_all(queue_dir).at("cannot create queue directory", queue_dir)?;
        let path = queue_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o660)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .at("cannot open lock file", &path)?;
        if FileExt::try_lock_exclusive(&file).is_err() {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(Error::new(
                exit::TEMPFAIL,
                format!(
                    "another supervisor (pid {}) is running for {}",
                    pid.trim(),
                    queue_dir.display()
                ),
                "stop it first (kill -TERM that pid), or use another queue_dir",
            ));
        }
        file.set_len(0).at("cannot write lock file", &path)?;
        file.rewind().at("cannot write lock file", &path)?;
        writeln!(file, "{}", std::process::id()).at("cannot write lock file", &path)?;
        Ok(SupervisorLock { _file: file, path })
    }
}

/// One runner process the supervisor keeps alive.
#[derive(Debug)]
pub struct Slot {
    pub runner: String,
    pub slice: Slice,
    pub max_restarts: u32,
    pub restarts: u32,
    child: Option<Child>,
    start_at: Option<Instant>,
    pub gave_up: bool,
}

impl Slot {
    /// `NAME` or `NAME:SLICE:RANGE`, as `qtool run` takes it.
    pub fn spec(&self) -> String {
        if self.slice.is_all() {
            self.runner.clone()
        } else {
            format!("{}:{}", self.runner, self.slice)
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// Something the supervisor did, for its log.
#[derive(Debug)]
pub enum Event<'a> {
    Started(&'a Slot, u32),
    Exited(&'a Slot, String),
    Restarting(&'a Slot, Duration),
    GaveUp(&'a Slot),
    StartFailed(&'a Slot, String),
    Signal(&'a str),
}

/// Signals the supervisor acts on, as flags set by handlers.
#[derive(Debug, Default, Clone)]
pub struct Signals {
    pub stop: Arc<AtomicBool>,
    pub hup: Arc<AtomicBool>,
    pub usr1: Arc<AtomicBool>,
    /// The signal number that asked for the stop (TERM or INT), to forward it.
    pub stop_signal: Arc<AtomicUsize>,
}

pub struct Supervisor {
    pub slots: Vec<Slot>,
    /// Builds the command that runs one runner (`qtool run SPEC ...`).
    command: Box<dyn Fn(&Slot) -> Command>,
}

impl Supervisor {
    /// One slot per slice of every runner with `start: true`.
    pub fn new(config: &Config, command: Box<dyn Fn(&Slot) -> Command>) -> Result<Supervisor> {
        let mut slots = Vec::new();
        for (name, rc) in &config.runners {
            if !rc.start {
                continue;
            }
            for i in 0..rc.instances {
                slots.push(Slot {
                    runner: name.clone(),
                    slice: Slice::new(i, rc.instances)?,
                    max_restarts: rc.max_restarts,
                    restarts: 0,
                    child: None,
                    start_at: Some(Instant::now()),
                    gave_up: false,
                });
            }
        }
        if slots.is_empty() {
            return Err(Error::config(
                "no runner to start: the config defines no runner with `start: true`",
                "define runners in the config (see `man qtool`), or use `qtool run RUNNER`",
            ));
        }
        Ok(Supervisor { slots, command })
    }

    fn start(&mut self, i: usize, log: &mut dyn FnMut(Event)) {
        let mut cmd = (self.command)(&self.slots[i]);
        let parent = std::process::id() as i32;
        // SAFETY: only async-signal-safe calls (prctl, getppid, kill) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if libc::getppid() != parent {
                    libc::kill(libc::getpid(), libc::SIGTERM);
                }
                Ok(())
            });
        }
        let slot = &mut self.slots[i];
        slot.start_at = None;
        match cmd.spawn() {
            Ok(child) => {
                let pid = child.id();
                slot.child = Some(child);
                log(Event::Started(slot, pid));
            }
            Err(e) => {
                log(Event::StartFailed(slot, e.to_string()));
                self.schedule_restart(i, false, log);
            }
        }
    }

    fn schedule_restart(&mut self, i: usize, free: bool, log: &mut dyn FnMut(Event)) {
        let slot = &mut self.slots[i];
        if free {
            slot.start_at = Some(Instant::now());
            return;
        }
        if slot.restarts >= slot.max_restarts {
            slot.gave_up = true;
            log(Event::GaveUp(slot));
            return;
        }
        slot.restarts += 1;
        let backoff =
            Duration::from_millis(250 << (slot.restarts - 1).min(6)).min(Duration::from_secs(10));
        slot.start_at = Some(Instant::now() + backoff);
        log(Event::Restarting(slot, backoff));
    }

    fn signal_all(&self, sig: i32) {
        for slot in &self.slots {
            if let Some(pid) = slot.pid() {
                // SAFETY: kill(2) on our own child.
                unsafe {
                    libc::kill(pid as i32, sig);
                }
            }
        }
    }

    /// Runs until stopped. Returns 0 after a stop, 69 (EX_UNAVAILABLE) when every runner
    /// was given up on.
    pub fn run(&mut self, signals: &Signals, log: &mut dyn FnMut(Event)) -> i32 {
        let mut stopping = false;
        loop {
            if !stopping && signals.stop.load(Ordering::Relaxed) {
                stopping = true;
                let sig = signals.stop_signal.load(Ordering::Relaxed) as i32;
                let sig = if sig == 0 { libc::SIGTERM } else { sig };
                log(Event::Signal(if sig == libc::SIGINT {
                    "INT"
                } else {
                    "TERM"
                }));
                self.signal_all(sig);
            }
            if signals.hup.swap(false, Ordering::Relaxed) {
                log(Event::Signal("HUP"));
                self.signal_all(libc::SIGHUP);
            }
            if signals.usr1.swap(false, Ordering::Relaxed) {
                log(Event::Signal("USR1"));
                self.signal_all(libc::SIGUSR1);
            }
            for i in 0..self.slots.len() {
                let exited = match self.slots[i].child.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(status))) => Some(status),
                    _ => None,
                };
                if let Some(status) = exited {
                    self.slots[i].child = None;
                    let how = match (status.code(), status.signal()) {
                        (Some(c), _) => format!("exit status {c}"),
                        (_, Some(s)) => format!("signal {s}"),
                        _ => "unknown status".into(),
                    };
                    log(Event::Exited(&self.slots[i], how));
                    if !stopping {
                        let free = status.code() == Some(EXIT_RESTART);
                        self.schedule_restart(i, free, log);
                    }
                }
                let due = self.slots[i].start_at.is_some_and(|t| Instant::now() >= t);
                if !stopping && due && !self.slots[i].gave_up && self.slots[i].child.is_none() {
                    self.start(i, log);
                }
            }
            let running = self.slots.iter().any(|s| s.child.is_some());
            if stopping && !running {
                return exit::OK;
            }
            let waiting = self.slots.iter().any(|s| !s.gave_up);
            if !running && !waiting {
                return 69;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
