//! `qtool enqueue QUEUE [FILE]... [--mbox FILE] [--maildir DIR]`: one message per FILE
//! (or standard input), every message of an mbox or a Maildir. Entries are committed in
//! groups (one sync for many); each filebase is printed once its entry is durable.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use qtool::error::{Error, IoContext, Result};
use qtool::metadata::{self, Metadata, Value};
use qtool::queue::Batch;
use walkdir::WalkDir;

use super::{is_stdin, load_config, switchboard};
use crate::cli::{EnqueueArgs, Global};

pub fn run(g: &Global, a: EnqueueArgs) -> Result<i32> {
    let config = load_config(g)?;
    let sb = switchboard(&config, &a.queue)?;
    let meta = build_metadata(&a)?;
    let mut batch = sb.batch();
    // Filebases are printed once per commit, not once per line.
    let mut out = io::BufWriter::new(io::stdout().lock());
    let result = enqueue_all(&a, &meta, &mut batch, &mut out);
    // Whatever happened, what was written before the failure is committed and printed.
    let committed = commit(&mut batch, &mut out);
    result.and(committed).map(|_| 0)
}

fn enqueue_all(
    a: &EnqueueArgs,
    meta: &Metadata,
    batch: &mut Batch,
    out: &mut dyn Write,
) -> Result<()> {
    let bar = crate::output::progress(None, "messages enqueued");
    let mut add = |reader: &mut dyn Read| -> Result<()> {
        batch.add(reader, meta.clone())?;
        bar.inc(1);
        if batch.is_full() {
            commit(batch, out)?;
        }
        Ok(())
    };
    if a.files.is_empty() && a.mbox.is_empty() && a.maildir.is_empty() {
        return add(&mut io::stdin().lock());
    }
    for path in &a.files {
        if is_stdin(path) {
            add(&mut io::stdin().lock())?;
        } else {
            add(&mut open(path)?)?;
        }
    }
    for path in &a.mbox {
        let reader = BufReader::with_capacity(256 * 1024, open(path)?);
        for message in mail_parser::mailbox::mbox::MessageIterator::new(reader) {
            let message = message.at("cannot read mbox", path)?;
            let mut bytes = message.unwrap_contents();
            // The blank line that separates mbox messages is not part of the message.
            if bytes.ends_with(b"\n\n") {
                bytes.pop();
            }
            add(&mut bytes.as_slice()).map_err(|e| Error {
                message: format!("{}: {}", path.display(), e.message),
                ..e
            })?;
        }
    }
    for dir in &a.maildir {
        for path in maildir_messages(dir)? {
            add(&mut open(&path)?)?;
        }
    }
    bar.finish_and_clear();
    Ok(())
}

fn commit(batch: &mut Batch, out: &mut dyn Write) -> Result<()> {
    let (done, error) = match batch.commit() {
        Ok(done) => (done, None),
        Err(e) => (e.committed, Some(e.error)),
    };
    for fb in done {
        let _ = writeln!(out, "{fb}");
    }
    let _ = out.flush();
    error.map_or(Ok(()), Err)
}

fn open(path: &Path) -> Result<File> {
    let f = File::open(path).at("cannot open message", path)?;
    if f.metadata().at("cannot read", path)?.is_dir() {
        return Err(Error::new(
            qtool::error::exit::NOINPUT,
            format!("{} is a directory", path.display()),
            "use --maildir DIR for a Maildir",
        ));
    }
    Ok(f)
}

/// The messages of a Maildir, `cur/` and `new/`, in name order (Maildir names begin
/// with the delivery time).
fn maildir_messages(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.join("cur").is_dir() && !dir.join("new").is_dir() {
        return Err(Error::new(
            qtool::error::exit::NOINPUT,
            format!("{} is not a Maildir (no cur/ or new/)", dir.display()),
            "give the Maildir's top directory",
        ));
    }
    let mut paths = Vec::new();
    for sub in ["cur", "new"] {
        let d = dir.join(sub);
        if !d.is_dir() {
            continue;
        }
        for item in WalkDir::new(&d).min_depth(1).max_depth(1) {
            let item = item.map_err(|e| {
                Error::new(
                    qtool::error::exit::IOERR,
                    format!("cannot list {}: {e}", d.display()),
                    "",
                )
            })?;
            if item.file_type().is_file() && !item.file_name().to_string_lossy().starts_with('.') {
                paths.push(item.into_path());
            }
        }
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(paths)
}

/// `--meta-file`, then `-m KEY=VALUE` pairs (later wins), then `--plaintext`.
fn build_metadata(a: &EnqueueArgs) -> Result<Metadata> {
    let mut meta = Metadata::new();
    if let Some(path) = &a.meta_file {
        let mut text = Vec::new();
        File::open(path)
            .at("cannot open metadata file", path)?
            .take(metadata::MAX_METADATA_BYTES as u64 + 1)
            .read_to_end(&mut text)
            .at("cannot read metadata file", path)?;
        meta = metadata::from_yaml(&text, &path.display().to_string())?;
    }
    for pair in &a.meta {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            Error::usage(
                format!("-m {pair:?}: expected KEY=VALUE"),
                "for example -m listid=test.example.com",
            )
        })?;
        if key.is_empty() {
            return Err(Error::usage(
                format!("-m {pair:?}: empty key"),
                "for example -m foo=yes",
            ));
        }
        meta.set(
            key,
            metadata::value_from_yaml_text(value, &format!("-m {key}"))?,
        );
    }
    if a.plaintext {
        meta.set("_plaintext", Value::Bool(true));
    }
    Ok(meta)
}
