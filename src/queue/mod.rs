//! The switchboard: one queue, its entries, and the few operations every backend
//! provides. The runner loop, the handlers, the admin repairs and the commands use
//! [`Switchboard`] only and never know where the entries are kept.
//!
//! # The interface
//! An entry has a [`Filebase`] (`<time>+<sha1>`), metadata and a message, and is in one
//! [`State`]: ready, claimed by a process working on it, or preserved for a human. A
//! backend provides:
//! - **write**: [`Switchboard::batch`] (a group commit; [`Switchboard::enqueue`] is a
//!   batch of one). An entry is visible only once it is durable.
//! - **look**: [`Switchboard::scan`], [`Switchboard::locate`], [`Switchboard::read`].
//! - **claim**: [`Switchboard::pass`] (the runner's way: the ready entries of a slice,
//!   each claimed as it comes), [`Switchboard::claim`] (one entry by name, for `dequeue`
//!   and the repairs), [`Switchboard::claim_preserved`].
//! - **release** a [`Claim`]: [`Switchboard::finish`] (done, gone),
//!   [`Switchboard::put_back`] (ready again, as it was), [`Switchboard::preserve`] (to
//!   `bad`, as it was).
//! - **recover** what crashed processes held: [`Switchboard::recover`] gives each such
//!   entry back with `_bak_count` incremented; the recovery that reaches
//!   [`MAX_BAK_COUNT`] preserves it instead (Mailman's rule).
//!
//! A claim is exclusive: while one process holds an entry no other gets it. What ends a
//! claim other than its holder is the holder's death: on the filesystem the kernel
//! drops its lock at once; on Redis its entry stays pending until it has been idle for
//! the claim timeout (a live holder keeps it fresh, see [`Switchboard::keep_alive`]).
//!
//! # The backends
//! - [`dir`]: a directory of files, one per entry (Mailman's layout; the claim protocol
//!   is described there).
//! - [`redis`]: Redis Streams, one consumer group per queue (the mapping is described
//!   there).

pub mod dir;
pub mod entry;
pub mod filebase;
pub mod mailman;
pub mod name;
pub mod redis;

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;

pub use dir::{read_path, sync_dir};
pub use entry::{Entry, Format};
pub use filebase::{Filebase, Slice, Stamp};
pub use name::QueueName;

use crate::error::{Error, Result};
use crate::metadata::{Metadata, Value};
use dir::DirQueue;
use redis::RedisQueue;

/// Mailman's `MAX_BAK_COUNT`: the recovery that brings `_bak_count` to this moves the
/// entry to `bad`.
pub const MAX_BAK_COUNT: i128 = 3;

/// How many entries a batch holds before it commits, and how many bytes.
pub const BATCH_ENTRIES: usize = 512;
pub const BATCH_BYTES: u64 = 64 << 20;

/// The state of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Waiting for a runner (`.pck`).
    Ready,
    /// Claimed by a process, or left by a crashed one (`.bak`).
    Claimed,
    /// Preserved for a human (`.psv`).
    Preserved,
}

impl State {
    /// The file name extension of this state in a queue directory.
    pub fn ext(self) -> &'static str {
        match self {
            State::Ready => ".pck",
            State::Claimed => ".bak",
            State::Preserved => ".psv",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Claimed => "claimed",
            State::Preserved => "preserved",
        }
    }
}

/// What a scan found: entries in FIFO order, and names that are not entries.
#[derive(Debug, Default)]
pub struct Scan {
    pub entries: Vec<(Filebase, State)>,
    /// The size of each entry in bytes, when the backend knows it without another
    /// look (Redis); empty otherwise.
    pub sizes: Vec<u64>,
    pub strays: Vec<OsString>,
}

/// One queue, on one backend.
#[derive(Debug, Clone)]
pub struct Switchboard {
    name: QueueName,
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Dir(DirQueue),
    Redis(RedisQueue),
}

/// An entry this process has claimed. Dropping it without `finish`, `put_back` or
/// `preserve` leaves it claimed, for recovery, as a crash would.
#[derive(Debug)]
pub struct Claim {
    pub filebase: Filebase,
    held: Held,
}

#[derive(Debug)]
enum Held {
    File(dir::FileClaim),
    Redis(Box<redis::RedisClaim>),
}

impl Claim {
    /// Opens the claimed entry for reading.
    pub fn read(&self) -> Result<Entry> {
        match &self.held {
            Held::File(c) => c.read(),
            Held::Redis(c) => c.read(),
        }
    }

    /// Where the claimed entry is, for messages: a path, or a Redis stream entry.
    pub fn location(&self) -> String {
        match &self.held {
            Held::File(c) => c.path().display().to_string(),
            Held::Redis(c) => c.location(),
        }
    }
}

/// The outcome of trying to claim an entry.
#[derive(Debug)]
pub enum Claimed {
    Got(Claim),
    /// Another process has it, or had it and is done: skip silently.
    Lost,
    /// Not an entry at all (a symlink, FIFO or directory where an entry file should
    /// be): moved to `bad` as it was.
    NotRegular,
}

/// What a recovery did.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Entries of crashed processes made ready again.
    pub recovered: Vec<Filebase>,
    /// Entries moved to `bad` (recovered too often, or unreadable), with the reason.
    pub preserved: Vec<(Filebase, String)>,
    /// Entries held by a live process, left alone.
    pub busy: usize,
    /// Temporary files of crashed writers, removed (their entries were never visible).
    pub removed_tmp: usize,
    /// Entries that could not be recovered now (a full disk, say), and why; they stay
    /// as they were, for the next recovery.
    pub failed: Vec<(Filebase, String)>,
}

impl Switchboard {
    /// A queue in the directory `dir`.
    pub fn new(name: QueueName, dir: std::path::PathBuf, format: Format) -> Self {
        Switchboard {
            backend: Backend::Dir(DirQueue::new(dir, format)),
            name,
        }
    }

    /// A queue on a Redis server.
    pub fn on_redis(queue: RedisQueue) -> Self {
        Switchboard {
            name: queue.name().clone(),
            backend: Backend::Redis(queue),
        }
    }

    /// Refuse enqueues (75) while the queue's filesystem has less than `bytes` free,
    /// like Postfix's `queue_minfree` (directories only).
    pub fn with_min_free(mut self, bytes: Option<u64>) -> Self {
        if let Backend::Dir(d) = &mut self.backend {
            d.set_min_free(bytes);
        }
        self
    }

    pub fn name(&self) -> &QueueName {
        &self.name
    }

    /// Where the queue is, for messages: its directory, or its Redis server and name.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Dir(d) => d.dir().display().to_string(),
            Backend::Redis(r) => r.location(),
        }
    }

    /// Where entry `fb` in `state` is, for messages.
    pub fn entry_location(&self, fb: &Filebase, state: State) -> String {
        match &self.backend {
            Backend::Dir(d) => d.path_of(fb, state).display().to_string(),
            Backend::Redis(r) => format!("{} entry {fb}", r.location()),
        }
    }

    pub(crate) fn as_dir(&self) -> Option<&DirQueue> {
        match &self.backend {
            Backend::Dir(d) => Some(d),
            Backend::Redis(_) => None,
        }
    }

    pub(crate) fn as_redis(&self) -> Option<&RedisQueue> {
        match &self.backend {
            Backend::Redis(r) => Some(r),
            Backend::Dir(_) => None,
        }
    }

    /// Makes the queue exist (its directory; its streams and consumer group).
    pub fn create(&self) -> Result<()> {
        match &self.backend {
            Backend::Dir(d) => d.create_dir(),
            Backend::Redis(r) => r.ensure().map(|_| ()),
        }
    }

    /// Enqueues one message durably (SPEC §2 rules applied to `metadata`).
    pub fn enqueue(&self, message: &mut dyn Read, metadata: Metadata) -> Result<Filebase> {
        let mut batch = self.batch();
        batch.add(message, metadata)?;
        let mut done = batch.commit().map_err(|e| e.error)?;
        Ok(done.pop().expect("a batch of one commits one entry"))
    }

    /// Re-enqueues the message of `entry` to this queue with `metadata` (keep, forward,
    /// shunt, unshunt, move), streaming the message.
    pub fn enqueue_entry(&self, entry: &mut Entry, metadata: Metadata) -> Result<Filebase> {
        let mut msg = entry
            .message()
            .map_err(|e| Error::io("cannot read message of", Path::new(""), e))?;
        self.enqueue(&mut msg, metadata)
    }

    /// A group commit of many entries.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            sb: self,
            inner: match &self.backend {
                Backend::Dir(d) => BatchInner::Dir(d.batch()),
                Backend::Redis(r) => BatchInner::Redis(r.batch()),
            },
        }
    }

    /// Lists the entries, sorted FIFO, optionally only those of one state and slice.
    pub fn scan(&self, state: Option<State>, slice: Slice) -> Result<Scan> {
        match &self.backend {
            Backend::Dir(d) => d.scan(state, slice),
            Backend::Redis(r) => r.scan(state, slice),
        }
    }

    /// Ready entries of `slice`, in FIFO order.
    pub fn ready(&self, slice: Slice) -> Result<Scan> {
        self.scan(Some(State::Ready), slice)
    }

    /// Finds the state an entry is in now.
    pub fn locate(&self, filebase: &Filebase) -> Result<Option<State>> {
        match &self.backend {
            Backend::Dir(d) => Ok(d.locate(filebase)),
            Backend::Redis(r) => r.locate(filebase),
        }
    }

    /// Reads an entry without claiming it (for `dump`).
    pub fn read(&self, filebase: &Filebase) -> Result<Entry> {
        let found = match &self.backend {
            Backend::Dir(d) => d.read(filebase)?,
            Backend::Redis(r) => r.read(filebase)?,
        };
        found.ok_or_else(|| {
            Error::new(
                crate::error::exit::NOINPUT,
                format!("no entry {} in queue {}", filebase, self.name),
                format!("`qtool list {}` shows its entries", self.name),
            )
        })
    }

    /// Claims one ready entry by name. Something that is not an entry where the entry
    /// should be is moved to `bad` as it is.
    pub fn claim(&self, filebase: &Filebase, bad: &Switchboard) -> Result<Claimed> {
        match &self.backend {
            Backend::Dir(d) => d.claim(filebase, bad.as_dir()),
            Backend::Redis(r) => r.claim(filebase),
        }
    }

    /// Claims the oldest ready entry of `slice` this process can get.
    pub fn claim_oldest(&self, slice: Slice, bad: &Switchboard) -> Result<Option<Claim>> {
        for (fb, _) in self.ready(slice)?.entries {
            if let Claimed::Got(c) = self.claim(&fb, bad)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Holds a preserved entry where it lies, for a repair by hand (`delete`, `move`):
    /// nothing else takes preserved entries, the claim only keeps two repairs apart.
    pub fn claim_preserved(&self, filebase: &Filebase) -> Result<Claimed> {
        match &self.backend {
            Backend::Dir(d) => d.claim_preserved(filebase),
            Backend::Redis(r) => r.claim(filebase),
        }
    }

    /// A pass over the ready entries of `slice` (FIFO), each claimed as the runner
    /// comes to it. `prefetch` bounds how many a backend may claim ahead (Redis claims
    /// in groups; an entry claimed ahead waits its turn, so keep it small when each
    /// entry takes long).
    pub fn pass(&self, slice: Slice, prefetch: usize) -> Result<Pass<'_>> {
        match &self.backend {
            Backend::Dir(d) => {
                let scan = d.scan(Some(State::Ready), slice)?;
                Ok(Pass {
                    sb: self,
                    len: scan.entries.len(),
                    strays: scan.strays,
                    inner: PassInner::Dir(
                        scan.entries
                            .into_iter()
                            .map(|(fb, _)| fb)
                            .collect::<Vec<_>>()
                            .into_iter(),
                    ),
                })
            }
            Backend::Redis(r) => {
                let pass = r.pass(slice, prefetch)?;
                Ok(Pass {
                    sb: self,
                    len: pass.count(),
                    strays: Vec::new(),
                    inner: PassInner::Redis(Box::new(pass)),
                })
            }
        }
    }

    /// How often a long-running runner should recover: never on the filesystem
    /// (a dead holder's lock is gone at once, and runners recover when they start);
    /// every half claim timeout on Redis.
    pub fn recovery_interval(&self) -> Option<std::time::Duration> {
        match &self.backend {
            Backend::Dir(_) => None,
            Backend::Redis(r) => Some(r.claim_timeout() / 2),
        }
    }

    /// Tells the backend that the holder of `claim` is alive and still working on it
    /// (Redis: resets its idle time, so it is not taken as abandoned). Cheap to call
    /// often; a no-op on the filesystem, where a lock says it.
    pub fn keep_alive(&self, claim: &Claim) {
        if let (Backend::Redis(r), Held::Redis(c)) = (&self.backend, &claim.held) {
            r.keep_alive(c);
        }
    }

    /// Done with a claimed entry: remove it.
    pub fn finish(&self, claim: Claim) -> Result<()> {
        crate::fault::point("finish");
        match (&self.backend, claim.held) {
            (Backend::Dir(d), Held::File(c)) => d.finish(c),
            (Backend::Redis(r), Held::Redis(c)) => r.finish(*c),
            _ => Err(mismatch()),
        }
    }

    /// Finishes many claimed entries at once (one round trip on Redis).
    pub fn finish_all(&self, claims: Vec<Claim>) -> Result<()> {
        match &self.backend {
            Backend::Redis(r) => {
                let mut held = Vec::with_capacity(claims.len());
                for c in claims {
                    crate::fault::point("finish");
                    match c.held {
                        Held::Redis(c) => held.push(*c),
                        Held::File(_) => return Err(mismatch()),
                    }
                }
                r.finish_all(held)
            }
            Backend::Dir(_) => claims.into_iter().try_for_each(|c| self.finish(c)),
        }
    }

    /// Gives a claimed entry back, ready again as it was (a preserved entry stays
    /// where it is).
    pub fn put_back(&self, claim: Claim) -> Result<()> {
        match (&self.backend, claim.held) {
            (Backend::Dir(d), Held::File(c)) => d.put_back(c),
            (Backend::Redis(r), Held::Redis(c)) => r.put_back(*c),
            _ => Err(mismatch()),
        }
    }

    /// Moves a claimed entry to `bad`, unchanged. Between directories it is renamed;
    /// between backends it is copied, then removed here. A file that cannot go to a
    /// `bad` on another backend is preserved where it lies (`<filebase>.psv`).
    pub fn preserve(&self, claim: Claim, bad: &Switchboard) -> Result<()> {
        match (&self.backend, claim.held) {
            (Backend::Dir(d), Held::File(c)) => d.preserve(c, bad.as_dir()),
            (Backend::Redis(r), Held::Redis(c)) => r.to_bad(*c, None, bad),
            _ => Err(mismatch()),
        }
    }

    /// Stores an entry in this (`bad`) queue as preserved, from its metadata as YAML
    /// and its message, kept byte for byte.
    pub(crate) fn store_preserved(&self, fb: &Filebase, meta: &[u8], msg: &[u8]) -> Result<()> {
        match &self.backend {
            Backend::Dir(d) => d.store_preserved(fb, meta, msg),
            Backend::Redis(r) => r.store_preserved(fb, meta, msg),
        }
    }

    /// Recovers what crashed processes held in `slice` (Mailman's
    /// `recover_backup_files`), counting each recovery in `_bak_count`; the one that
    /// reaches `MAX_BAK_COUNT` moves the entry to `bad`. Entries held by a live process
    /// are left alone.
    pub fn recover(&self, slice: Slice, bad: &Switchboard) -> Result<Recovery> {
        match &self.backend {
            Backend::Dir(d) => d.recover(slice, bad.as_dir()),
            Backend::Redis(r) => r.recover(slice, bad),
        }
    }
}

fn mismatch() -> Error {
    Error::new(
        crate::error::exit::SOFTWARE,
        "a claim was released on a queue of another backend",
        "this is a bug in qtool; please report it",
    )
}

/// `_bak_count` after one more recovery (`times` recoveries at once, for Redis entries
/// delivered several times since they were last counted).
pub(crate) fn bumped_bak_count(metadata: &Metadata, times: i128) -> i128 {
    match metadata.get("_bak_count") {
        Some(Value::Int(n)) => n + times,
        _ => times,
    }
}

/// The refusal of an empty message.
pub(crate) fn empty_message() -> Error {
    Error::data(
        "empty message refused",
        "give a message with at least a header or a body",
    )
}

/// A pass of a runner over a queue's ready entries.
pub struct Pass<'a> {
    sb: &'a Switchboard,
    len: usize,
    /// Names in the queue that are not entries (directories only).
    pub strays: Vec<OsString>,
    inner: PassInner,
}

enum PassInner {
    Dir(std::vec::IntoIter<Filebase>),
    Redis(Box<redis::RedisPass>),
}

impl Pass<'_> {
    /// How many entries were ready when the pass began.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ends a pass early: entries a backend claimed ahead are given back as they were
    /// (not counted as recovered, as they would be if simply dropped).
    pub fn give_back(mut self) -> Result<()> {
        match &mut self.inner {
            PassInner::Dir(_) => Ok(()),
            PassInner::Redis(pass) => {
                let r = self
                    .sb
                    .as_redis()
                    .expect("a Redis pass is over a Redis queue");
                pass.give_back(r)
            }
        }
    }

    /// The next entry of the pass and the outcome of claiming it; `None` at the end.
    pub fn next_claim(&mut self, bad: &Switchboard) -> Result<Option<(Filebase, Claimed)>> {
        match &mut self.inner {
            PassInner::Dir(fbs) => match fbs.next() {
                Some(fb) => {
                    let claimed = self.sb.claim(&fb, bad)?;
                    Ok(Some((fb, claimed)))
                }
                None => Ok(None),
            },
            PassInner::Redis(pass) => {
                let r = self
                    .sb
                    .as_redis()
                    .expect("a Redis pass is over a Redis queue");
                pass.next_claim(r, bad)
            }
        }
    }
}

/// A group commit: many entries written, made durable at once, then visible.
/// Dropping a batch discards what it has not committed.
pub struct Batch<'a> {
    sb: &'a Switchboard,
    inner: BatchInner,
}

enum BatchInner {
    Dir(dir::DirBatch),
    Redis(redis::RedisBatch),
}

/// A commit that failed part-way: what was committed (durable), and why it stopped.
#[derive(Debug)]
pub struct BatchError {
    pub committed: Vec<Filebase>,
    pub error: Error,
}

impl Batch<'_> {
    /// Adds one message (SPEC §2 rules applied to its metadata). An empty message is
    /// refused (65).
    pub fn add(&mut self, message: &mut dyn Read, mut metadata: Metadata) -> Result<()> {
        // Mailman resets `_parsemsg` when it re-pickles a parsed message; qtool never
        // re-serialises a message, so an entry that was plain text stays plain text.
        let plaintext = metadata.is_true("_plaintext") || metadata.is_true("_parsemsg");
        let stamp = Stamp::now();
        metadata.prepare_for_enqueue(plaintext, stamp.secs);
        match (&mut self.inner, &self.sb.backend) {
            (BatchInner::Dir(b), Backend::Dir(d)) => b.add(d, message, metadata, stamp),
            (BatchInner::Redis(b), Backend::Redis(r)) => b.add(r, message, metadata, stamp),
            _ => Err(mismatch()),
        }
    }

    pub fn len(&self) -> usize {
        match &self.inner {
            BatchInner::Dir(b) => b.count(),
            BatchInner::Redis(b) => b.count(),
        }
    }

    /// The queue this batch writes to.
    pub fn switchboard(&self) -> &Switchboard {
        self.sb
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the batch has reached its bounds and should be committed.
    pub fn is_full(&self) -> bool {
        let bytes = match &self.inner {
            BatchInner::Dir(b) => b.bytes(),
            BatchInner::Redis(b) => b.bytes(),
        };
        self.len() >= BATCH_ENTRIES || bytes >= BATCH_BYTES
    }

    /// Makes every added entry durable and visible. Returns the filebases in the order
    /// they were added.
    pub fn commit(&mut self) -> Result<Vec<Filebase>, BatchError> {
        match (&mut self.inner, &self.sb.backend) {
            (BatchInner::Dir(b), Backend::Dir(d)) => b.commit(d),
            (BatchInner::Redis(b), Backend::Redis(r)) => b.commit(r),
            _ => Err(BatchError {
                committed: Vec::new(),
                error: mismatch(),
            }),
        }
    }
}
