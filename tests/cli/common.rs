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
        assert_eq!(out.status.code(), Some(0), "enqueue failed: {}", stderr(&out));
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
