//! One entry file: reading its metadata and message, and writing a new one.
//!
//! The native layout is a line `---`, the metadata as a YAML mapping, a line `...`, then
//! the raw message bytes exactly as they were enqueued. The metadata can be read without
//! the message, and the message is streamed: neither reading nor writing ever holds a
//! whole message in memory. Mailman 3's pickle files are recognised by content and
//! decoded whole (Mailman itself holds them whole).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use sha1::{Digest, Sha1};

use crate::error::{Error, IoContext, Result};
use crate::metadata::{self, Metadata, Value, MAX_METADATA_BYTES};
use crate::queue::mailman;

/// The on-disk format of entries a switchboard writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `---`, YAML metadata, `...`, raw message.
    #[default]
    Native,
    /// GNU Mailman 3's two pickles, message as text (`_parsemsg: True`).
    Mailman,
}

/// Where an entry's message is.
#[derive(Debug)]
enum Body {
    /// In the entry file from `offset` to its end.
    File { file: File, offset: u64, len: u64 },
    /// Decoded from a Mailman pickle, or fetched from Redis.
    Memory(std::sync::Arc<Vec<u8>>),
}

/// An opened entry: its metadata, and its message ready to stream.
#[derive(Debug)]
pub struct Entry {
    pub metadata: Metadata,
    pub format: Format,
    /// True for a Mailman file whose message was pickled as text (`_parsemsg: True`).
    pub message_was_text: bool,
    /// For a Mailman text message, Python's `len()` of it (what Mailman's dequeue
    /// stores as `original_size`).
    original_size: Option<usize>,
    body: Body,
}

/// Opens an entry file for reading without following a symlink and without blocking on
/// a FIFO. Anything but a regular file is refused with `NotRegular`.
pub fn open_entry_file(path: &Path, write: bool) -> Result<File, OpenError> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENXIO) => OpenError::NotRegular,
            Some(libc::EISDIR) => OpenError::NotRegular,
            _ => OpenError::Io(e),
        })?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.file_type().is_file() {
        return Err(OpenError::NotRegular);
    }
    Ok(file)
}

/// Why an entry file could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// A symlink, FIFO, directory or device: never read through.
    NotRegular,
    Io(io::Error),
}

impl Entry {
    /// Reads the metadata of the entry in `file` (positioned anywhere) and prepares its
    /// message. `what` names the entry in errors.
    pub fn read(mut file: File, what: &str) -> Result<Entry> {
        let path = Path::new(what);
        file.seek(SeekFrom::Start(0)).at("cannot read", path)?;
        let total = file.metadata().at("cannot read", path)?.size();
        let mut head = [0u8; 4];
        let n = read_full(&mut file, &mut head).at("cannot read", path)?;
        if n == 0 {
            return Err(Error::data(format!("{what}: empty entry file"), ""));
        }
        if &head[..n] == b"---\n" {
            return Self::read_native(file, total, what);
        }
        if mailman::looks_like_pickle(&head[..n]) {
            file.seek(SeekFrom::Start(0)).at("cannot read", path)?;
            let mut bytes = Vec::with_capacity(total as usize);
            file.read_to_end(&mut bytes).at("cannot read", path)?;
            let decoded = mailman::decode(&bytes)
                .map_err(|e| Error::data(format!("{what}: {}", e.message), e.hint))?;
            return Ok(Entry {
                metadata: decoded.metadata,
                format: Format::Mailman,
                message_was_text: decoded.message_was_text,
                original_size: decoded.original_size,
                body: Body::Memory(std::sync::Arc::new(decoded.message)),
            });
        }
        Err(Error::data(
            format!("{what}: not a queue entry (neither qtool's format nor a Mailman pickle)"),
            "",
        ))
    }

    fn read_native(file: File, total: u64, what: &str) -> Result<Entry> {
        let path = Path::new(what);
        let mut reader = BufReader::with_capacity(16 * 1024, file);
        let mut yaml = Vec::new();
        let mut offset = 4u64;
        loop {
            let before = yaml.len();
            let n = (&mut reader)
                .take((MAX_METADATA_BYTES + 1 - before.min(MAX_METADATA_BYTES)) as u64)
                .read_until(b'\n', &mut yaml)
                .at("cannot read", path)?;
            if n == 0 || !yaml.ends_with(b"\n") {
                if yaml.len() > MAX_METADATA_BYTES {
                    return Err(Error::data(
                        format!("{what}: metadata larger than {MAX_METADATA_BYTES} bytes"),
                        "",
                    ));
                }
                return Err(Error::data(
                    format!("{what}: truncated entry (no `...` line ends the metadata)"),
                    "",
                ));
            }
            offset += n as u64;
            if &yaml[before..] == b"...\n" {
                yaml.truncate(before);
                break;
            }
        }
        let metadata = metadata::from_yaml(&yaml, what)?;
        let file = reader.into_inner();
        Ok(Entry {
            metadata,
            format: Format::Native,
            message_was_text: false,
            original_size: None,
            body: Body::File {
                file,
                offset,
                len: total.saturating_sub(offset),
            },
        })
    }

    /// A native entry held in memory (Redis): its metadata as YAML, and its message.
    pub fn from_memory(yaml: &[u8], message: std::sync::Arc<Vec<u8>>, what: &str) -> Result<Entry> {
        Ok(Entry {
            metadata: metadata::from_yaml(yaml, what)?,
            format: Format::Native,
            message_was_text: false,
            original_size: None,
            body: Body::Memory(message),
        })
    }

    /// The message length in bytes.
    pub fn message_len(&self) -> u64 {
        match &self.body {
            Body::File { len, .. } => *len,
            Body::Memory(m) => m.len() as u64,
        }
    }

    /// The metadata as Mailman's `Switchboard.dequeue` hands it to a runner: for a
    /// `_parsemsg: True` entry, `original_size` (the message length) is added.
    pub fn dequeued_metadata(&self) -> Metadata {
        let mut meta = self.metadata.clone();
        if meta.is_true("_parsemsg") {
            // Mailman's len() of a str counts characters; a native entry's message is
            // bytes, and its length is what it is.
            let size = self
                .original_size
                .map_or(self.message_len() as i128, |n| n as i128);
            meta.set("original_size", Value::Int(size));
        }
        meta
    }

    /// A reader over the message bytes.
    pub fn message(&mut self) -> io::Result<Box<dyn Read + Send + '_>> {
        match &self.body {
            Body::File { file, offset, len } => {
                let mut file: &File = file;
                file.seek(SeekFrom::Start(*offset))?;
                Ok(Box::new(BufReader::with_capacity(
                    64 * 1024,
                    file.take(*len),
                )))
            }
            Body::Memory(m) => Ok(Box::new(io::Cursor::new(m.as_slice()))),
        }
    }

    /// A file whose content from its current offset to its end is the message, to
    /// hand to a handler as its stdin: the entry file itself (sharing this entry's
    /// open file, so its claim lock too) positioned at the message, or for a decoded
    /// Mailman file an anonymous in-memory file.
    pub fn message_file(&mut self) -> io::Result<File> {
        match &self.body {
            Body::File { file, offset, .. } => {
                let mut f = file.try_clone()?;
                f.seek(SeekFrom::Start(*offset))?;
                Ok(f)
            }
            Body::Memory(m) => {
                // SAFETY: memfd_create(2) with a static name; the fd is owned below.
                let fd =
                    unsafe { libc::memfd_create(c"qtool-message".as_ptr(), libc::MFD_CLOEXEC) };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: a fresh descriptor nobody else owns.
                let mut f = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                f.write_all(m.as_slice())?;
                f.seek(SeekFrom::Start(0))?;
                Ok(f)
            }
        }
    }

    /// The first `limit` bytes of the message (for header display).
    pub fn message_head(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.message()?.take(limit as u64).read_to_end(&mut out)?;
        Ok(out)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes a complete entry to `out` (a fresh temporary file): metadata, then the
/// message streamed from `message` and hashed as it passes. Returns the hasher (fed
/// with the message bytes) and the message length. The file is not synced here: the
/// caller decides when (one by one, or many at once for a group commit).
pub fn write_entry(
    out: &mut File,
    format: Format,
    metadata: &Metadata,
    message: &mut dyn Read,
) -> Result<(Sha1, u64), WriteError> {
    let mut hasher = Sha1::new();
    match format {
        Format::Native => {
            let mut w = io::BufWriter::with_capacity(64 * 1024, &mut *out);
            w.write_all(b"---\n").map_err(WriteError::Output)?;
            let yaml = metadata::to_yaml(metadata);
            if yaml.len() > MAX_METADATA_BYTES {
                return Err(WriteError::Encode(Error::data(
                    format!(
                        "metadata of {} bytes is over the {MAX_METADATA_BYTES}-byte limit",
                        yaml.len()
                    ),
                    "keep large data in the message, not the metadata",
                )));
            }
            w.write_all(yaml.as_bytes()).map_err(WriteError::Output)?;
            w.write_all(b"...\n").map_err(WriteError::Output)?;
            // Most messages are a few KiB: start with a small buffer and grow to 64 KiB
            // once a read fills it. (A zeroed 64 KiB buffer is 16 pages to fault in,
            // a measurable share of a process that enqueues one message.)
            let mut buf = vec![0u8; 8 * 1024];
            let mut len = 0u64;
            loop {
                let n = match message.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(WriteError::Input(e)),
                };
                hasher.update(&buf[..n]);
                w.write_all(&buf[..n]).map_err(WriteError::Output)?;
                len += n as u64;
                if n == buf.len() && buf.len() < 64 * 1024 {
                    buf.resize(64 * 1024, 0);
                }
            }
            w.flush().map_err(WriteError::Output)?;
            Ok((hasher, len))
        }
        Format::Mailman => {
            let mut bytes = Vec::new();
            message.read_to_end(&mut bytes).map_err(WriteError::Input)?;
            hasher.update(&bytes);
            let encoded = mailman::encode(&bytes, metadata).map_err(WriteError::Encode)?;
            out.write_all(&encoded).map_err(WriteError::Output)?;
            Ok((hasher, bytes.len() as u64))
        }
    }
}

/// Why writing an entry failed: reading the message, writing the file, or encoding.
#[derive(Debug)]
pub enum WriteError {
    Input(io::Error),
    Output(io::Error),
    Encode(Error),
}
