//! The raw floor for `bench/run`: what the filesystem allows for each queue workload,
//! with the same durability as qtool and none of its work (no flock, no SHA-1, no
//! metadata, names from a counter). Standard library only; the two Linux calls std
//! does not wrap (`sync_file_range`, `syncfs`) are declared against the C library std
//! already links.
//!
//! ```text
//! floor enqueue [--group N] [--syncfs] DIR FILE...    one entry per FILE
//! floor enqueue-mbox [--group N] [--syncfs] DIR MBOX  one entry per mbox message
//! floor drain DIR                     claim (rename to .bak), read, unlink each .pck
//! floor forward [--group N] [--syncfs] SRC DST   drain SRC, writing each entry to DST
//! floor readall DIR                   read every file whole (the `list` floor)
//! floor statall DIR                   stat every file (the `stats` floor)
//! ```
//!
//! Writing an entry: create `F.pck.tmp`, write, sync, rename to `F.pck`, sync the
//! directory. With `--group 1` (the default) that is done message by message, as a C
//! loop would (`fdatasync` the file, rename, `fsync` the directory). With `--group N`,
//! up to N files are written, then made durable together, all renamed, and the
//! directory synced once (group commit): by default their writeback is started together
//! (`sync_file_range`) and each is `fdatasync`ed; with `--syncfs`, one `syncfs` on the
//! filesystem replaces the per-file syncs. `forward --group N` removes the source
//! entries only after their group is durable in DST.

use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

extern "C" {
    fn sync_file_range(fd: i32, offset: i64, nbytes: i64, flags: u32) -> i32;
    fn syncfs(fd: i32) -> i32;
}

const SYNC_FILE_RANGE_WRITE: u32 = 2;

fn main() -> ExitCode {
    match run(env::args().skip(1).collect()) {
        Ok(n) => {
            eprintln!("floor: {n} entries");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("floor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "usage: floor enqueue|enqueue-mbox|drain|forward|readall|statall [--group N] [--syncfs] ARGS...",
    )
}

fn run(mut args: Vec<String>) -> io::Result<usize> {
    if args.is_empty() {
        return Err(usage());
    }
    let cmd = args.remove(0);
    let mut group = 1usize;
    let mut use_syncfs = false;
    loop {
        match args.first().map(String::as_str) {
            Some("--group") => {
                group = args
                    .get(1)
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(usage)?;
                args.drain(..2);
            }
            Some("--syncfs") => {
                use_syncfs = true;
                args.remove(0);
            }
            _ => break,
        }
    }
    let sync = if use_syncfs { Sync::Syncfs } else { Sync::Each };
    match (cmd.as_str(), args.as_slice()) {
        ("enqueue", [dir, files @ ..]) => {
            let mut w = Writer::new(Path::new(dir), group, sync)?;
            for f in files {
                w.add(&fs::read(f)?, None)?;
            }
            w.commit()?;
            Ok(files.len())
        }
        ("enqueue-mbox", [dir, mbox]) => {
            let data = fs::read(mbox)?;
            let mut w = Writer::new(Path::new(dir), group, sync)?;
            let mut n = 0;
            for msg in split_mbox(&data) {
                w.add(msg, None)?;
                n += 1;
            }
            w.commit()?;
            Ok(n)
        }
        ("drain", [dir]) => drain(Path::new(dir), None),
        ("forward", [src, dst]) => {
            let mut w = Writer::new(Path::new(dst), group, sync)?;
            drain(Path::new(src), Some(&mut w))
        }
        ("readall", [dir]) => {
            let mut buf = Vec::new();
            let mut n = 0;
            for path in listing(Path::new(dir), None)? {
                buf.clear();
                File::open(&path)?.read_to_end(&mut buf)?;
                n += 1;
            }
            Ok(n)
        }
        ("statall", [dir]) => {
            let mut bytes = 0u64;
            let paths = listing(Path::new(dir), None)?;
            for path in &paths {
                bytes += fs::symlink_metadata(path)?.len();
            }
            io::stdout().write_all(format!("{bytes}\n").as_bytes())?;
            Ok(paths.len())
        }
        _ => Err(usage()),
    }
}

/// The names in `dir` (ending in `ext`, if given), sorted.
fn listing(dir: &Path, ext: Option<&str>) -> io::Result<Vec<PathBuf>> {
    let mut names = Vec::new();
    for item in fs::read_dir(dir)? {
        let name = item?.file_name();
        let keep = match (ext, name.to_str()) {
            (None, _) => true,
            (Some(e), Some(n)) => n.ends_with(e),
            (Some(_), None) => false,
        };
        if keep {
            names.push(name);
        }
    }
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Claims, reads and removes every `.pck` in `dir`; with a writer, each message is
/// written there first, and a source is removed only once its copy is durable.
fn drain(dir: &Path, mut forward: Option<&mut Writer>) -> io::Result<usize> {
    let mut buf = Vec::new();
    let mut n = 0;
    for pck in listing(dir, Some(".pck"))? {
        let mut file = File::open(&pck)?;
        let bak = pck.with_extension("bak");
        fs::rename(&pck, &bak)?;
        buf.clear();
        file.read_to_end(&mut buf)?;
        match forward.as_deref_mut() {
            Some(w) => w.add(&buf, Some(bak))?,
            None => fs::remove_file(&bak)?,
        }
        n += 1;
    }
    if let Some(w) = forward {
        w.commit()?;
    }
    Ok(n)
}

/// Splits an mbox on its `From ` lines, dropping them and the blank line before each.
fn split_mbox(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        if data[pos..].starts_with(b"From ") {
            starts.push(pos);
        }
        match data[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => pos += i + 1,
            None => break,
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (i, &s) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(data.len());
        let body_start = s + data[s..end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(end - s, |i| i + 1);
        let mut body = &data[body_start..end];
        if body.ends_with(b"\n\n") {
            body = &body[..body.len() - 1];
        }
        out.push(body);
    }
    out
}

/// How a group of written files is made durable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// Start writeback of all, then `fdatasync` each.
    Each,
    /// One `syncfs` on their filesystem.
    Syncfs,
}

/// Writes entries into one directory, `group` at a time.
struct Writer {
    dir: PathBuf,
    group: usize,
    sync: Sync,
    seq: u64,
    pending: Vec<(File, PathBuf, PathBuf, Option<PathBuf>)>,
}

impl Writer {
    fn new(dir: &Path, group: usize, sync: Sync) -> io::Result<Writer> {
        fs::create_dir_all(dir)?;
        Ok(Writer {
            dir: dir.to_path_buf(),
            group,
            sync,
            seq: 0,
            pending: Vec::new(),
        })
    }

    /// Writes one entry; `done` is a file to remove once the entry is durable.
    fn add(&mut self, bytes: &[u8], done: Option<PathBuf>) -> io::Result<()> {
        self.seq += 1;
        let name = format!("{}.{:08}", std::process::id(), self.seq);
        let tmp = self.dir.join(format!("{name}.pck.tmp"));
        let dest = self.dir.join(format!("{name}.pck"));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o660)
            .open(&tmp)?;
        f.write_all(bytes)?;
        self.pending.push((f, tmp, dest, done));
        if self.pending.len() >= self.group {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.pending.len() > 1 && self.sync == Sync::Syncfs {
            // SAFETY: a plain syscall on an open descriptor.
            if unsafe { syncfs(self.pending[0].0.as_raw_fd()) } != 0 {
                return Err(io::Error::last_os_error());
            }
        } else {
            if self.pending.len() > 1 {
                for (f, ..) in &self.pending {
                    // SAFETY: a plain syscall on an open descriptor; failure only loses
                    // a hint.
                    unsafe {
                        sync_file_range(f.as_raw_fd(), 0, 0, SYNC_FILE_RANGE_WRITE);
                    }
                }
            }
            for (f, ..) in &self.pending {
                f.sync_data()?;
            }
        }
        for (_, tmp, dest, _) in &self.pending {
            fs::rename(tmp, dest)?;
        }
        File::open(&self.dir)?.sync_all()?;
        for (.., done) in self.pending.drain(..) {
            if let Some(path) = done {
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}
