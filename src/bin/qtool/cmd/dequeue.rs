//! `qtool dequeue QUEUE [FILEBASE]`: claim the oldest (or the named) entry, write its
//! message and metadata out, and only then remove it. If writing fails, the entry is
//! put back as it was.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use qtool::error::{exit, Error, IoContext, Result};
use qtool::metadata;
use qtool::queue::{Claim, Claimed, Filebase, Slice, State, Switchboard};

use super::{bad, load_config, switchboard};
use crate::cli::{DequeueArgs, Global};

pub fn run(g: &Global, a: DequeueArgs) -> Result<i32> {
    let config = load_config(g)?;
    let sb = switchboard(&config, &a.queue)?;
    let bad = bad(&config);
    let claim = match &a.filebase {
        None => match sb.claim_oldest(Slice::ALL, &bad)? {
            Some(c) => c,
            None => {
                if !g.quiet {
                    errln!("qtool: queue {} is empty", sb.name());
                }
                return Ok(exit::NOTHING);
            }
        },
        Some(text) => {
            let fb: Filebase = super::parse_filebase(text)?;
            match sb.claim(&fb, &bad)? {
                Claimed::Got(c) => c,
                Claimed::NotRegular => {
                    return Err(Error::data(
                        format!(
                            "entry {fb} is not a regular file; it was moved to {}",
                            bad.location()
                        ),
                        "",
                    ))
                }
                Claimed::Lost => return Err(not_ready(&sb, &fb)),
            }
        }
    };
    match write_out(&sb, &claim, &a) {
        Ok(()) => {
            sb.finish(claim)?;
            Ok(0)
        }
        Err(e) => {
            sb.put_back(claim)?;
            Err(e.with_hint("the entry is still queued"))
        }
    }
}

fn not_ready(sb: &Switchboard, fb: &Filebase) -> Error {
    match sb.locate(fb) {
        Err(e) => e,
        Ok(Some(State::Claimed)) => Error::new(
            exit::TEMPFAIL,
            format!(
                "entry {fb} in queue {} is claimed by another process",
                sb.name()
            ),
            "try again later, or `qtool recover` if its process died",
        ),
        _ => Error::new(
            exit::NOINPUT,
            format!("no ready entry {fb} in queue {}", sb.name()),
            format!("`qtool list {}` shows its entries", sb.name()),
        ),
    }
}

fn write_out(sb: &Switchboard, claim: &Claim, a: &DequeueArgs) -> Result<()> {
    let mut entry = claim.read()?;
    if let Some(path) = &a.meta_out {
        let text = metadata::to_yaml(&entry.dequeued_metadata());
        write_file(path, &mut text.as_bytes())?;
    }
    let message = entry
        .message()
        .at("cannot read", std::path::Path::new(&claim.location()))?;
    // A slow reader (a pipe) must not make the claim look abandoned (Redis).
    let mut message = KeepingAlive {
        inner: message,
        alive: || sb.keep_alive(claim),
    };
    match &a.output {
        Some(path) if path.as_os_str() != "-" => write_file(path, &mut message),
        _ => {
            let stdout = Path::new("<stdout>");
            let mut out = io::stdout().lock();
            io::copy(&mut message, &mut out).at("cannot write message to", stdout)?;
            out.flush().at("cannot write message to", stdout)
        }
    }
}

/// A reader that tells the queue its holder is alive at every read.
struct KeepingAlive<R, F> {
    inner: R,
    alive: F,
}

impl<R: io::Read, F: Fn()> io::Read for KeepingAlive<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (self.alive)();
        self.inner.read(buf)
    }
}

/// Writes a file completely and durably before the entry is removed.
fn write_file(path: &Path, content: &mut dyn io::Read) -> Result<()> {
    let mut f = File::create(path).at("cannot create", path)?;
    io::copy(content, &mut f).at("cannot write", path)?;
    f.sync_all().at("cannot write", path)
}
