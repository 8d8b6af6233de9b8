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

impl Listing {
    fn new(sb: &Switchboard, fb: &crate::queue::Filebase, state: State, now: f64) -> Listing {
        Listing {
            queue: sb.name().to_string(),
            filebase: fb.to_string(),
            state,
            age: (now - fb.time()).max(0.0),
            size: 0,
            listid: None,
            from: None,
            subject: None,
            reason: None,
            whichq: None,
        }
    }

    /// Takes the listed keys' values from an entry's metadata.
    fn fill(&mut self, fields: impl IntoIterator<Item = (&'static str, crate::Value)>, now: f64) {
        for (key, value) in fields {
            match (key, value) {
                ("listid", crate::Value::Str(v)) => self.listid = Some(v),
                ("shunt_reason", crate::Value::Str(v)) => self.reason = Some(v),
                ("whichq", crate::Value::Str(v)) => self.whichq = Some(v),
                ("received_time", crate::Value::Float(t)) => self.age = (now - t).max(0.0),
                ("received_time", crate::Value::Int(t)) => self.age = (now - t as f64).max(0.0),
                _ => {}
            }
        }
    }
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

/// Lists a queue's entries in FIFO order, reading only the head of each, on every
/// core. An entry that cannot be read is still listed, with the reason.
pub fn list(sb: &Switchboard, now: f64) -> Result<(Vec<Listing>, Vec<String>)> {
    let Some(dir) = sb.as_dir() else {
        return list_redis(sb, now);
    };
    let scan = sb.scan(None, Slice::ALL)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = scan.entries.len().div_ceil(threads).max(256);
    let rows: Vec<Option<Listing>> = std::thread::scope(|scope| {
        let workers: Vec<_> = scan
            .entries
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut buf = Vec::with_capacity(HEAD_BYTES + 4096);
                    part.iter()
                        .map(|(fb, state)| list_one(sb, dir, fb, *state, now, &mut buf))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let strays = scan
        .strays
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    Ok((rows.into_iter().flatten().collect(), strays))
}

/// One row of `list`; `None` when the entry went away meanwhile.
fn list_one(
    sb: &Switchboard,
    dir: &crate::queue::dir::DirQueue,
    fb: &crate::queue::Filebase,
    state: State,
    now: f64,
    buf: &mut Vec<u8>,
) -> Option<Listing> {
    let path = dir.path_of(fb, state);
    let mut row = Listing::new(sb, fb, state, now);
    // The fast path: qtool's own layout, whose metadata has one `key: value` line per
    // key, read from the first 32 KiB of the file.
    match read_native_head(&path, buf) {
        Ok(Some((size, fields, body))) => {
            row.size = size;
            row.fill(fields, now);
            (row.from, row.subject) = headers(&buf[body..]);
            return Some(row);
        }
        Ok(None) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(_) => {}
    }
    // Anything else (a Mailman pickle, unusual YAML, an unreadable file): read it the
    // ordinary way.
    row.size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
    match crate::queue::read_path(&path) {
        Ok(mut entry) => {
            let fields = LIST_KEYS
                .iter()
                .filter_map(|k| Some((*k, entry.metadata.get(k)?.clone())));
            row.fill(fields, now);
            if let Ok(head) = entry.message_head(HEAD_BYTES) {
                (row.from, row.subject) = headers(&head);
            }
        }
        Err(e) if e.code == crate::error::exit::NOINPUT => return None,
        Err(e) => row.reason = Some(format!("unreadable: {}", e.message)),
    }
    Some(row)
}

/// `list` of a queue on Redis: each entry's metadata and the head of its message, a
/// page of entries per round trip.
fn list_redis(sb: &Switchboard, now: f64) -> Result<(Vec<Listing>, Vec<String>)> {
    let redis = sb.as_redis().expect("a queue on Redis");
    let (heads, strays) = redis.heads(HEAD_BYTES)?;
    let rows = heads
        .into_iter()
        .map(|h| {
            let mut row = Listing::new(sb, &h.filebase, h.state, now);
            row.size = h.size;
            match crate::metadata::from_yaml(&h.meta, &row.filebase) {
                Ok(meta) => {
                    let fields = LIST_KEYS
                        .iter()
                        .filter_map(|k| Some((*k, meta.get(k)?.clone())));
                    row.fill(fields, now);
                }
                Err(e) => row.reason = Some(format!("unreadable: {}", e.message)),
            }
            (row.from, row.subject) = headers(&h.head);
            row
        })
        .collect();
    Ok((rows, strays))
}

/// What [`read_native_head`] found: the file size, the listed keys' values, and where
/// the message starts in the buffer.
type NativeHead = (u64, Vec<(&'static str, crate::Value)>, usize);

/// The keys `list` shows.
const LIST_KEYS: [&str; 4] = ["listid", "shunt_reason", "whichq", "received_time"];

/// Reads the head of a native entry into `buf`: its size, the values of [`LIST_KEYS`],
/// and where the message starts in `buf`. `Ok(None)` when the file is not a native
/// entry whose metadata fits the head, or a value is not on one line (the caller then
/// reads the entry whole).
fn read_native_head(
    path: &std::path::Path,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<NativeHead>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let stat = file.metadata()?;
    if !stat.file_type().is_file() {
        return Ok(None);
    }
    let size = stat.len();
    buf.clear();
    file.take(HEAD_BYTES as u64).read_to_end(buf)?;
    let Some(meta) = buf.strip_prefix(b"---\n") else {
        return Ok(None);
    };
    let Some(end) = meta.windows(5).position(|w| w == b"\n...\n") else {
        return Ok(None);
    };
    let mut fields = Vec::new();
    for line in meta[..end + 1].split(|b| *b == b'\n') {
        let Some(key) = LIST_KEYS.iter().find(|k| {
            line.strip_prefix(k.as_bytes())
                .is_some_and(|rest| rest.starts_with(b": "))
        }) else {
            continue;
        };
        let text = std::str::from_utf8(&line[key.len() + 2..]).unwrap_or("");
        if text.is_empty() || text.starts_with(['|', '>', '&', '*', '!']) {
            return Ok(None);
        }
        // Numbers and plain words as qtool writes them need no YAML parser.
        let quick = match text.parse::<f64>() {
            Ok(t) if t.is_finite() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
                Some(crate::Value::Float(t))
            }
            _ if crate::metadata::is_plain_yaml_str(text) => Some(crate::Value::Str(text.into())),
            _ => None,
        };
        let value = match quick {
            Some(v) => v,
            None => match crate::metadata::value_from_yaml_text(text, "metadata") {
                Ok(v) => v,
                Err(_) => return Ok(None),
            },
        };
        fields.push((*key, value));
    }
    Ok(Some((size, fields, 4 + end + 5)))
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
    for (i, (fb, state)) in scan.entries.iter().enumerate() {
        match state {
            State::Ready => st.ready += 1,
            State::Claimed => st.claimed += 1,
            State::Preserved => st.preserved += 1,
        }
        st.bytes += match (scan.sizes.get(i), sb.as_dir()) {
            (Some(size), _) => *size,
            (None, Some(dir)) => fs::symlink_metadata(dir.path_of(fb, *state))
                .map(|m| m.len())
                .unwrap_or(0),
            (None, None) => 0,
        };
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
