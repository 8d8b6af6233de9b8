//! What `list` and `stats` show: entries with their state, age, size and the headers an
//! admin recognises, read from the head of each file only; and per-queue counts from
//! file names alone.

use std::fs;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::queue::{QueueName, Slice, State, Switchboard};

/// How much of a message is read for its headers.
const HEAD_BYTES: usize = 32 * 1024;

/// One entry as `list` shows it.
#[derive(Debug, Clone)]
pub struct Listing {
    pub queue: String,
    pub filebase: String,
    pub state: State,
    /// Seconds since the entry first arrived (`received_time`, kept across keeps,
    /// forwards and shunts), else since it entered this queue (its filebase time).
    pub age: f64,
    /// The entry file's size in bytes.
    pub size: u64,
    pub listid: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    /// Why it is in `shunt` (`shunt_reason`), or why it could not be read.
    pub reason: Option<String>,
    pub whichq: Option<String>,
}

/// The queues under `queue_dir`: every directory whose name is a valid queue name.
pub fn queue_names(queue_dir: &Path) -> Result<Vec<QueueName>> {
    let mut names = Vec::new();
    let rd = match fs::read_dir(queue_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(crate::Error::io("cannot list", queue_dir, e)),
    };
    for item in rd {
        let item = item.at("cannot list", queue_dir)?;
        if !item.file_type().at("cannot list", queue_dir)?.is_dir() {
            continue;
        }
        if let Some(name) = item.file_name().to_str().and_then(|n| n.parse().ok()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Lists a queue's entries in FIFO order, reading only the head of each. An entry that
/// cannot be read is still listed, with the reason.
pub fn list(sb: &Switchboard, now: f64) -> Result<(Vec<Listing>, Vec<String>)> {
    let scan = sb.scan(None, Slice::ALL)?;
    let mut out = Vec::with_capacity(scan.entries.len());
    for (fb, state) in scan.entries {
        let path = sb.path_of(&fb, state);
        let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut row = Listing {
            queue: sb.name().to_string(),
            filebase: fb.to_string(),
            state,
            age: (now - fb.time()).max(0.0),
            size,
            listid: None,
            from: None,
            subject: None,
            reason: None,
            whichq: None,
        };
        match crate::queue::read_path(&path) {
            Ok(mut entry) => {
                row.listid = entry.metadata.get_str("listid").map(str::to_string);
                let first_arrival = match entry.metadata.get("received_time") {
                    Some(crate::Value::Float(t)) => Some(*t),
                    Some(crate::Value::Int(t)) => Some(*t as f64),
                    _ => None,
                };
                if let Some(t) = first_arrival {
                    row.age = (now - t).max(0.0);
                }
                row.reason = entry.metadata.get_str("shunt_reason").map(str::to_string);
                row.whichq = entry.metadata.get_str("whichq").map(str::to_string);
                if let Ok(head) = entry.message_head(HEAD_BYTES) {
                    let (from, subject) = headers(&head);
                    row.from = from;
                    row.subject = subject;
                }
            }
            Err(e) if e.code == crate::error::exit::NOINPUT => continue, // gone meanwhile
            Err(e) => row.reason = Some(format!("unreadable: {}", e.message)),
        }
        out.push(row);
    }
    let strays = scan
        .strays
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    Ok((out, strays))
}

/// The decoded From and Subject of a message head.
pub fn headers(head: &[u8]) -> (Option<String>, Option<String>) {
    let Some(msg) = mail_parser::MessageParser::default()
        .with_minimal_headers()
        .parse_headers(head)
    else {
        return (None, None);
    };
    let from = msg
        .from()
        .and_then(|a| a.first())
        .map(|addr| match (addr.name(), addr.address()) {
            (Some(n), Some(a)) => format!("{n} <{a}>"),
            (None, Some(a)) => a.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        });
    let subject = msg.subject().map(str::to_string);
    (from, subject)
}

/// Age buckets of `stats`, as Postfix's qshape: upper bounds in minutes.
pub const AGE_BUCKETS: [(&str, f64); 7] = [
    ("0-5m", 5.0),
    ("5-10m", 10.0),
    ("10-20m", 20.0),
    ("20-40m", 40.0),
    ("40-80m", 80.0),
    ("80-160m", 160.0),
    ("older", f64::INFINITY),
];

/// Per-queue counts for `stats`, from file names (and sizes) alone.
#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    pub queue: String,
    pub ready: usize,
    pub claimed: usize,
    pub preserved: usize,
    pub bytes: u64,
    /// Seconds since the oldest entry was enqueued.
    pub oldest: Option<f64>,
    /// Entries per age bucket (see [`AGE_BUCKETS`]).
    pub ages: [usize; 7],
    pub strays: usize,
}

pub fn stats(sb: &Switchboard, now: f64) -> Result<QueueStats> {
    let scan = sb.scan(None, Slice::ALL)?;
    let mut st = QueueStats {
        queue: sb.name().to_string(),
        strays: scan.strays.len(),
        ..QueueStats::default()
    };
    for (fb, state) in &scan.entries {
        match state {
            State::Ready => st.ready += 1,
            State::Claimed => st.claimed += 1,
            State::Preserved => st.preserved += 1,
        }
        st.bytes += fs::symlink_metadata(sb.path_of(fb, *state))
            .map(|m| m.len())
            .unwrap_or(0);
        let age = (now - fb.time()).max(0.0);
        st.oldest = Some(st.oldest.map_or(age, |o: f64| o.max(age)));
        let minutes = age / 60.0;
        let bucket = AGE_BUCKETS
            .iter()
            .position(|(_, upper)| minutes < *upper)
            .unwrap_or(AGE_BUCKETS.len() - 1);
        st.ages[bucket] += 1;
    }
    Ok(st)
}
