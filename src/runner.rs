//! The runner loop (SPEC §3), as Mailman's `Runner`: recover orphans, then passes over
//! the queue (or one slice of it), each entry claimed, given `lang`, disposed of by the
//! handler, and finished, kept, shunted or preserved. Between passes that did nothing it
//! sleeps; a stop takes effect between entries, never in the middle of one.
//!
//! Everything the runner does is reported as an [`Event`]; the caller decides how to
//! show it (the library knows nothing of terminals or log files).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::handler::{Context, Handler, Outcome};
use crate::metadata::Value;
use crate::queue::{Batch, Claim, Claimed, Filebase, Recovery, Slice, Switchboard};

/// Something a runner did, for the log and the summary.
#[derive(Debug)]
pub enum Event<'a> {
    Recovered(&'a Filebase),
    /// Moved to `bad`, and why.
    Preserved(&'a Filebase, &'a str),
    /// A `.bak` held by a live process, left alone.
    Busy(usize),
    /// An orphan that could not be recovered now (left as it was), and why.
    RecoveryFailed(&'a Filebase, &'a str),
    /// Temporary files of crashed writers removed.
    RemovedTemp(usize),
    /// A pass begins over this many ready entries.
    Pass(usize),
    /// A file that is not an entry, skipped.
    Stray(&'a str),
    Done(&'a Filebase),
    Kept(&'a Filebase, &'a Filebase),
    /// Shunted: the old filebase, the new one in `shunt`, the reason.
    Shunted(&'a Filebase, &'a Filebase, &'a str),
    /// Put back as it was, and why.
    Deferred(&'a Filebase, &'a str),
    /// Shunting failed too: preserved in `bad`.
    ShuntFailed(&'a Filebase, &'a str),
    /// A temporary failure (the queue unreachable): trying again after this pause.
    Retrying(&'a str, Duration),
}

/// Counts of one pass (or of a whole run).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub recovered: usize,
    pub done: usize,
    pub kept: usize,
    pub shunted: usize,
    pub deferred: usize,
    pub preserved: usize,
    pub skipped: usize,
}

impl Counts {
    /// Entries this pass disposed of for good (not kept or put back).
    pub fn progressed(&self) -> usize {
        self.done + self.shunted + self.preserved
    }

    pub fn add(&mut self, other: &Counts) {
        self.recovered += other.recovered;
        self.done += other.done;
        self.kept += other.kept;
        self.shunted += other.shunted;
        self.deferred += other.deferred;
        self.preserved += other.preserved;
        self.skipped += other.skipped;
    }
}

/// How many forwarded (or discarded) entries are committed together (each holds two
/// open files until then, so this stays well under the usual limit of 1024
/// descriptors).
const FORWARD_BATCH: usize = 128;

/// Entries a built-in handler has disposed of but not yet finished: for `forward`,
/// their copies written but not yet committed. Finishing them together is one round
/// trip (and one AOF sync) on Redis.
struct Disposed<'a> {
    /// The copies, for `forward`; `None` for `discard`.
    batch: Option<Batch<'a>>,
    held: Vec<Claim>,
}

/// One runner: a queue (or slice), its handler, and where failures go.
pub struct Runner {
    pub queue: Switchboard,
    pub shunt: Switchboard,
    pub bad: Switchboard,
    pub slice: Slice,
    pub handler: Handler,
    pub config: Arc<Config>,
    pub sleep_time: Duration,
    /// Set (by a signal handler, say) to stop between entries.
    pub stop: Arc<AtomicBool>,
    /// How long a running handler may go on after a stop before it is killed and its
    /// entry put back.
    pub grace: Duration,
    /// When this runner last recovered (set by [`Runner::recover`]), and whether that
    /// recovery left entries held by other processes.
    pub recovered_at: std::cell::Cell<Option<(Instant, bool)>>,
}

impl Runner {
    /// Recovers the orphaned `.bak` files of this runner's slice.
    pub fn recover(&self, log: &mut dyn FnMut(Event)) -> Result<Counts> {
        self.recovered_at.set(Some((Instant::now(), false)));
        if matches!(self.handler, Handler::Exec { .. }) {
            crate::handler::remove_stale_metadata_files();
        }
        let Recovery {
            recovered,
            preserved,
            busy,
            removed_tmp,
            failed,
        } = self.queue.recover(self.slice, &self.bad)?;
        for (fb, why) in &failed {
            log(Event::RecoveryFailed(fb, why));
        }
        if removed_tmp > 0 {
            log(Event::RemovedTemp(removed_tmp));
        }
        for fb in &recovered {
            log(Event::Recovered(fb));
        }
        for (fb, why) in &preserved {
            log(Event::Preserved(fb, why));
        }
        if busy > 0 {
            log(Event::Busy(busy));
            self.recovered_at.set(Some((Instant::now(), true)));
        }
        Ok(Counts {
            recovered: recovered.len(),
            preserved: preserved.len(),
            ..Counts::default()
        })
    }

    /// One pass (Mailman's `_one_iteration`): every ready entry of the slice, in FIFO
    /// order, until the pass ends or a stop is requested.
    pub fn one_pass(&self, log: &mut dyn FnMut(Event)) -> Result<Counts> {
        let mut counts = Counts::default();
        // A backend that claims ahead (Redis) claims one at a time for a program that
        // may take long, so an entry never waits claimed behind a slow one.
        let prefetch = match &self.handler {
            Handler::Exec { .. } => 1,
            _ => 64,
        };
        let mut pass = self.queue.pass(self.slice, prefetch)?;
        for stray in &pass.strays {
            log(Event::Stray(&stray.to_string_lossy()));
        }
        log(Event::Pass(pass.len()));
        let mut disposed = match &self.handler {
            Handler::Forward(target) => Some(Disposed {
                batch: Some(target.batch()),
                held: Vec::new(),
            }),
            Handler::Discard => Some(Disposed {
                batch: None,
                held: Vec::new(),
            }),
            _ => None,
        };
        while !self.stop.load(Ordering::Relaxed) {
            let Some((fb, claimed)) = pass.next_claim(&self.bad)? else {
                break;
            };
            self.process_one(&fb, claimed, &mut disposed, &mut counts, log)?;
            // On Redis a dead runner's entries wait for recovery: a long pass does not
            // put it off.
            if self.queue.recovery_interval().is_some() && self.recovery_due() {
                counts.add(&self.recover(log)?);
            }
        }
        if let Some(f) = &mut disposed {
            self.finish_disposed(f, &mut counts, log)?;
        }
        pass.give_back()?;
        Ok(counts)
    }

    /// Finishes the entries disposed of so far, together: for `forward`, first commits
    /// their copies (one group commit on the target queue). A crash before the commit leaves the
    /// sources claimed (recovered later) and the copies as temporary files (removed);
    /// after it, the at-least-once moment of any forward.
    fn finish_disposed(
        &self,
        f: &mut Disposed,
        counts: &mut Counts,
        log: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let mut held = std::mem::take(&mut f.held);
        let (committed, error) = match f.batch.as_mut().map(|b| b.commit()) {
            None => (held.len(), None),
            Some(Ok(done)) => (done.len(), None),
            Some(Err(e)) => (e.committed.len(), Some(e.error)),
        };
        if !held.is_empty() && f.batch.is_some() {
            crate::fault::point("forward.written");
        }
        let failed = held.split_off(committed.min(held.len()));
        let done: Vec<Filebase> = held.iter().map(|c| c.filebase.clone()).collect();
        // Those not forwarded go back first: a failure to finish the others must not
        // leave them claimed.
        for claim in failed {
            let fb = claim.filebase.clone();
            self.queue.put_back(claim)?;
            counts.deferred += 1;
            let why = error.as_ref().map_or(String::new(), |e| e.message.clone());
            let target = f.batch.as_ref().map(|b| b.switchboard().name().to_string());
            log(Event::Deferred(
                &fb,
                &format!("forward to {} failed: {why}", target.unwrap_or_default()),
            ));
        }
        self.queue.finish_all(held)?;
        for fb in &done {
            counts.done += 1;
            log(Event::Done(fb));
        }
        Ok(())
    }

    fn process_one(
        &self,
        fb: &Filebase,
        claimed: Claimed,
        disposed: &mut Option<Disposed>,
        counts: &mut Counts,
        log: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let claim = match claimed {
            Claimed::Got(c) => c,
            Claimed::Lost => {
                counts.skipped += 1;
                return Ok(());
            }
            Claimed::NotRegular => {
                counts.preserved += 1;
                log(Event::Preserved(fb, "not a regular file"));
                return Ok(());
            }
        };
        let mut entry = match claim.read() {
            Ok(e) => e,
            Err(e) => {
                self.queue.preserve(claim, &self.bad)?;
                counts.preserved += 1;
                log(Event::Preserved(
                    fb,
                    &format!("unparseable entry: {}", e.message),
                ));
                return Ok(());
            }
        };
        let mut meta = entry.dequeued_metadata();
        let listid = meta.get_str("listid").map(str::to_string);
        let outcome = match self.config.language_for(listid.as_deref()) {
            Some(lang) => {
                meta.set("lang", Value::Str(lang));
                if let Some(f @ Disposed { batch: None, .. }) = disposed {
                    // Discarded: finished together with the next ones.
                    crate::fault::point("handler.done");
                    f.held.push(claim);
                    if f.held.len() >= FORWARD_BATCH {
                        self.finish_disposed(f, counts, log)?;
                    }
                    return Ok(());
                }
                if let Some(Disposed {
                    batch: Some(batch),
                    held,
                }) = disposed
                {
                    // Forwards are written now and committed together.
                    let added = entry
                        .message()
                        .map_err(|e| {
                            Error::io("cannot read", std::path::Path::new(&claim.location()), e)
                        })
                        .and_then(|mut msg| batch.add(&mut msg, meta.clone()));
                    match added {
                        Ok(()) => {
                            held.push(claim);
                            if held.len() >= FORWARD_BATCH || batch.is_full() {
                                let f = disposed.as_mut().expect("disposed");
                                self.finish_disposed(f, counts, log)?;
                            }
                            return Ok(());
                        }
                        Err(e) => crate::handler::forward_failed(batch.switchboard(), &e),
                    }
                } else {
                    let keep_alive = || self.queue.keep_alive(&claim);
                    let cx = Context {
                        queue: self.queue.name().as_str(),
                        filebase: fb,
                        stop: &self.stop,
                        grace: self.grace,
                        keep_alive: &keep_alive,
                    };
                    // A handler that could not even be set up (no room for its metadata
                    // file, say) leaves the entry as it was, to be tried again.
                    self.handler
                        .dispose(&mut entry, &meta, &cx)
                        .unwrap_or_else(|e| {
                            Outcome::Deferred(format!("cannot run handler: {}", e.message))
                        })
                }
            }
            None => Outcome::Failed(format!(
                "no list {} in the config",
                listid.as_deref().unwrap_or("?")
            )),
        };
        crate::fault::point("handler.done");
        match outcome {
            Outcome::Done => {
                self.queue.finish(claim)?;
                counts.done += 1;
                log(Event::Done(fb));
            }
            Outcome::Keep(kept_meta) => match self.queue.enqueue_entry(&mut entry, kept_meta) {
                Ok(new_fb) => {
                    self.queue.finish(claim)?;
                    counts.kept += 1;
                    log(Event::Kept(fb, &new_fb));
                }
                Err(e) => {
                    // Keeping it under a new name failed (a full disk, say): keep it under
                    // its old name instead, as it was before the handler ran.
                    self.queue.put_back(claim)?;
                    counts.deferred += 1;
                    log(Event::Deferred(
                        fb,
                        &format!("cannot re-enqueue kept entry: {}", e.message),
                    ));
                }
            },
            Outcome::Deferred(why) => {
                self.queue.put_back(claim)?;
                counts.deferred += 1;
                log(Event::Deferred(fb, &why));
            }
            Outcome::Failed(why) => {
                meta.set("whichq", Value::Str(self.queue.name().to_string()));
                meta.set("shunt_reason", Value::Str(why.clone()));
                match self.shunt.enqueue_entry(&mut entry, meta) {
                    Ok(new_fb) => {
                        crate::fault::point("shunt.written");
                        self.queue.finish(claim)?;
                        counts.shunted += 1;
                        log(Event::Shunted(fb, &new_fb, &why));
                    }
                    Err(e) => {
                        self.queue.preserve(claim, &self.bad)?;
                        counts.preserved += 1;
                        log(Event::ShuntFailed(fb, &e.message));
                    }
                }
            }
        }
        Ok(())
    }

    /// Passes until stopped (Mailman's `run`): after a pass that disposed of nothing it
    /// sleeps `sleep_time`, waking early for a stop.
    ///
    /// A temporary failure (75: Redis unreachable, say) does not end the run: it is
    /// reported, and the runner tries again after a pause that doubles up to a minute.
    /// On Redis, where a dead runner's entries wait for the claim timeout, recovery
    /// runs again every half claim timeout.
    pub fn run(&self, log: &mut dyn FnMut(Event)) -> Result<Counts> {
        let mut total = Counts::default();
        let mut backoff = Duration::ZERO;
        while !self.stop.load(Ordering::Relaxed) {
            let step = (|| {
                let mut counts = Counts::default();
                if self.recovery_due() {
                    self.queue.create()?;
                    counts.add(&self.recover(log)?);
                }
                counts.add(&self.one_pass(log)?);
                Ok::<_, Error>(counts)
            })();
            match step {
                Ok(counts) => {
                    backoff = Duration::ZERO;
                    total.add(&counts);
                    if counts.progressed() == 0 {
                        self.snooze(self.sleep_time);
                    }
                }
                Err(e) if e.code == crate::error::exit::TEMPFAIL => {
                    backoff = (backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
                    log(Event::Retrying(&e.message, backoff));
                    self.snooze(backoff);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// True when this runner has not recovered yet; on Redis, when it has not for half
    /// a claim timeout; in a directory, when its last recovery found claimed entries
    /// held by other processes (one of them may die, or be a dead runner's handler
    /// still holding the lock for a moment), at most once per `sleep_time`.
    fn recovery_due(&self) -> bool {
        match (self.recovered_at.get(), self.queue.recovery_interval()) {
            (None, _) => true,
            (Some((at, _)), Some(every)) => at.elapsed() >= every,
            (Some((at, busy)), None) => {
                busy && at.elapsed() >= self.sleep_time.max(Duration::from_millis(100))
            }
        }
    }

    fn snooze(&self, time: Duration) {
        let until = Instant::now() + time;
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }
}
