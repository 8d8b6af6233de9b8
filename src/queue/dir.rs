//! The filesystem backend: one queue directory, its entry files, and the claim protocol.
//!
//! # Files
//! `<filebase>.pck` is ready, `<filebase>.bak` is claimed by a process working on it,
//! `<filebase>.psv` is preserved (in `bad`), `*.pck.tmp` is being written and is never
//! read as an entry. Anything else in the directory is not an entry: it is reported by
//! scans and never touched.
//!
//! # Claiming, step by step (what a crash at each step leaves)
//! 1. Open `F.pck` (never through a symlink; a FIFO, directory or link is moved to
//!    `bad` as it is). *Crash: nothing changed.*
//! 2. Take an exclusive, non-blocking `flock` on the open file. If another process
//!    holds it, the entry is theirs: skip it. *Crash: the kernel drops the lock.*
//! 3. Check that `F.pck` is still the file that was locked (same inode); otherwise the
//!    race was lost: skip.
//! 4. Rename `F.pck` → `F.bak`. The lock moves with the inode, so the `.bak` is held.
//!    A rename that finds no `F.pck` means another process won: skip.
//!    *Crash: an orphaned `F.bak` whose lock died with the process.*
//! 5. Work on it; then `finish` (unlink `F.bak`), `put_back` (rename to `F.pck`) or
//!    `preserve` (rename to `bad/F.psv`), all while still holding the lock.
//!    *Crash before: an orphaned `F.bak`.*
//!
//! Recovery (`recover`, and every runner at start) takes a `.bak` only if it can lock
//! it, so a `.bak` whose holder is alive is never touched; an orphan's lock is gone. The
//! rule every step relies on: *whoever holds the lock on the inode that a path names
//! owns that path*; nobody renames or removes an entry path without it.
//!
//! Recovering an orphan rewrites it with `_bak_count` incremented: the new file is
//! written as `F.pck.tmp` and locked, synced, renamed over `F.bak` (atomically
//! replacing the orphan), then renamed to `F.pck` and unlocked. A crash leaves either the
//! old orphan, or the new, counted `.bak` (recovered again later, counted once more):
//! never both, never neither. At `MAX_BAK_COUNT` the rewritten file goes to `bad` as
//! `F.psv` instead.
//!
//! # Writing
//! A new entry is written as a temporary `.pck.tmp` file (mode 0660 before umask),
//! synced, renamed to `F.pck`, and the directory is synced: an entry is visible as
//! `.pck` only once its bytes are on disk. A [`super::Batch`] (here a [`DirBatch`]) writes many temporary files,
//! syncs them at once, then renames them all and syncs the directory once (group commit).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fs2::FileExt;

use super::entry::{open_entry_file, write_entry, OpenError, WriteError};
use super::{
    BatchError, Claim, Claimed, Entry, Filebase, Format, Held, Recovery, Scan, Slice, Stamp, State,
    MAX_BAK_COUNT,
};
use crate::error::{Error, IoContext, Result};
use crate::metadata::{Metadata, Value};

/// One queue directory.
#[derive(Debug, Clone)]
pub struct DirQueue {
    dir: PathBuf,
    format: Format,
    /// Refuse new entries when the filesystem has less free space than this.
    min_free: Option<u64>,
    /// Set once the directory is known to exist, so a batch checks it once.
    created: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// An entry file this process has claimed (`.bak`, locked). Dropping it without
/// `finish`, `put_back` or `preserve` leaves the `.bak` for recovery, as a crash would.
#[derive(Debug)]
pub struct FileClaim {
    pub filebase: Filebase,
    file: File,
    path: PathBuf,
    /// `Claimed` for a `.bak` taken from the ready state; `Preserved` for a `.psv`
    /// locked where it lies (repairs of `bad`).
    state: State,
}

impl From<FileClaim> for Claim {
    fn from(c: FileClaim) -> Claim {
        Claim {
            filebase: c.filebase.clone(),
            held: Held::File(c),
        }
    }
}

impl FileClaim {
    /// Opens the claimed entry for reading.
    pub fn read(&self) -> Result<Entry> {
        let file = self.file.try_clone().at("cannot read", &self.path)?;
        Entry::read(file, &self.path.to_string_lossy())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DirQueue {
    pub fn new(dir: PathBuf, format: Format) -> Self {
        DirQueue {
            dir,
            format,
            min_free: None,
            created: Default::default(),
        }
    }

    /// Refuse enqueues (75) while the queue's filesystem has less than `bytes` free,
    /// like Postfix's `queue_minfree`.
    pub fn set_min_free(&mut self, bytes: Option<u64>) {
        self.min_free = bytes;
    }

    fn check_free_space(&self) -> Result<()> {
        let Some(min) = self.min_free else {
            return Ok(());
        };
        let free = fs2::available_space(&self.dir).at("cannot check free space of", &self.dir)?;
        if free < min {
            return Err(Error::new(
                crate::error::exit::TEMPFAIL,
                format!(
                    "refusing to enqueue to {}: {} bytes free, below min_free {}",
                    self.dir.display(),
                    free,
                    min
                ),
                "the disk is full (min_free): free some space and try again",
            ));
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, filebase: &Filebase, state: State) -> PathBuf {
        self.dir.join(format!("{}{}", filebase, state.ext()))
    }

    /// Where to preserve an entry named `filebase` in this (`bad`) queue: `<fb>.psv`, or,
    /// if an entry of that name is already preserved (a filebase shared across queues),
    /// a fresh name made from it and the current time, so neither replaces the other.
    fn preserve_path(&self, filebase: &Filebase) -> PathBuf {
        let mut path = self.path_of(filebase, State::Preserved);
        while fs::symlink_metadata(&path).is_ok() {
            let mut hasher = sha1::Sha1::default();
            sha1::Digest::update(&mut hasher, filebase.as_str().as_bytes());
            let fresh = Filebase::from_parts(hasher, "--nolist--", &Stamp::now());
            path = self.path_of(&fresh, State::Preserved);
        }
        path
    }

    /// Creates the queue directory (mode 0770 before umask) if it is missing.
    pub fn create_dir(&self) -> Result<()> {
        if self.created.load(Ordering::Relaxed) || self.dir.is_dir() {
            self.created.store(true, Ordering::Relaxed);
            return Ok(());
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o770)
            .create(&self.dir)
            .map_err(|e| {
                let mut err = Error::io("cannot create queue directory", &self.dir, e);
                if err.code == crate::error::exit::NOINPUT || err.code == crate::error::exit::IOERR
                {
                    err.code = crate::error::exit::CANTCREAT;
                    err.hint = "check that the parent directory exists and is writable".into();
                }
                err
            })?;
        self.created.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// A group commit of many entries.
    pub fn batch(&self) -> DirBatch {
        DirBatch {
            pending: Vec::new(),
            bytes: 0,
        }
    }

    /// Creates and locks a new temporary file. The lock is held while the file is
    /// written, so recovery can tell a crashed writer's leftover (unlocked) from a file
    /// being written. Between the create and the lock a recovery may see the file
    /// unlocked and remove it; the writer notices (its path no longer names its file)
    /// and starts again under a new name.
    fn create_temp(&self, stamp: &Stamp) -> Result<(PathBuf, File)> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let mut attempts = 0;
        loop {
            let tmp = self.dir.join(format!(
                "{}+{}.{}.pck.tmp",
                stamp.text,
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            let opened = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o660)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp);
            let file = match opened {
                // The directory went away since it was made (an admin's rm -r):
                // make it again, once.
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts == 0 => {
                    self.created.store(false, Ordering::Relaxed);
                    self.create_dir()?;
                    attempts += 1;
                    continue;
                }
                other => other.at("cannot create entry", &tmp)?,
            };
            let locked = FileExt::try_lock_exclusive(&file).is_ok();
            if locked && same_file(&file, &tmp) {
                return Ok((tmp, file));
            }
            attempts += 1;
            if attempts >= 10 {
                return Err(Error::new(
                    crate::error::exit::TEMPFAIL,
                    format!(
                        "cannot create entry in {}: temporary files keep disappearing",
                        self.dir.display()
                    ),
                    "another program is removing files from the queue directory",
                ));
            }
        }
    }

    /// Writes `metadata` and `message` as a temporary file in `dir` and returns it
    /// open, with its filebase computed from the bytes that passed.
    fn write_temp(
        &self,
        metadata: &Metadata,
        message: &mut dyn Read,
        stamp: &Stamp,
    ) -> Result<Pending> {
        self.create_dir()?;
        let (tmp, mut file) = self.create_temp(stamp)?;
        let mut metadata = metadata.clone();
        if self.format == Format::Mailman {
            metadata.set("_parsemsg", Value::Bool(true));
        }
        let written = write_entry(&mut file, self.format, &metadata, message);
        let (hasher, len) = match written {
            Ok(w) => w,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(match e {
                    WriteError::Input(e) => Error::io("cannot read message for", &tmp, e),
                    WriteError::Output(e) => Error::io("cannot write entry", &tmp, e),
                    WriteError::Encode(e) => e,
                });
            }
        };
        let filebase = Filebase::from_parts(hasher.clone(), metadata.listid(), stamp);
        Ok(Pending {
            tmp,
            file,
            filebase,
            len,
            hasher,
            listid: metadata.listid().to_string(),
        })
    }

    /// Lists the entries, sorted FIFO, optionally only those of one state and slice.
    pub fn scan(&self, state: Option<State>, slice: Slice) -> Result<Scan> {
        let mut scan = Scan::default();
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(scan),
            Err(e) => return Err(Error::io("cannot list queue", &self.dir, e)),
        };
        for item in rd {
            let item = item.at("cannot list queue", &self.dir)?;
            let name = item.file_name();
            let Some(text) = name.to_str() else {
                scan.strays.push(name);
                continue;
            };
            if text.ends_with(".pck.tmp") {
                continue;
            }
            let parsed = [State::Ready, State::Claimed, State::Preserved]
                .into_iter()
                .find_map(|s| {
                    let base = text.strip_suffix(s.ext())?;
                    Some((base.parse::<Filebase>().ok()?, s))
                });
            match parsed {
                Some((fb, s)) => {
                    if state.is_none_or(|want| want == s) && fb.in_slice(&slice) {
                        scan.entries.push((fb, s));
                    }
                }
                None => scan.strays.push(name),
            }
        }
        scan.entries.sort_by(|a, b| a.0.fifo_cmp(&b.0));
        Ok(scan)
    }

    /// Finds the state an entry is in now.
    pub fn locate(&self, filebase: &Filebase) -> Option<State> {
        [State::Ready, State::Claimed, State::Preserved]
            .into_iter()
            .find(|s| fs::symlink_metadata(self.path_of(filebase, *s)).is_ok())
    }

    /// Reads an entry without claiming it (for `dump`); `None` when there is none.
    pub fn read(&self, filebase: &Filebase) -> Result<Option<Entry>> {
        match self.locate(filebase) {
            Some(state) => read_path(&self.path_of(filebase, state)).map(Some),
            None => Ok(None),
        }
    }

    /// Where a non-regular file or an entry preserved from this queue goes: `bad`'s
    /// directory, or this one when `bad` is not on the filesystem.
    fn preserve_dir<'a>(&'a self, bad: Option<&'a DirQueue>) -> Result<&'a DirQueue> {
        let bad = bad.unwrap_or(self);
        bad.create_dir()?;
        Ok(bad)
    }

    /// Claims a ready entry (steps 1–4 of the protocol above). A non-regular file is
    /// moved to `bad` as it is.
    pub fn claim(&self, filebase: &Filebase, bad: Option<&DirQueue>) -> Result<Claimed> {
        let pck = self.path_of(filebase, State::Ready);
        let file = match open_entry_file(&pck, false) {
            Ok(f) => f,
            Err(OpenError::NotRegular) => {
                let bad = self.preserve_dir(bad)?;
                return match move_file(&pck, &bad.preserve_path(filebase)) {
                    Ok(()) => Ok(Claimed::NotRegular),
                    Err(e) if e.code == crate::error::exit::NOINPUT => Ok(Claimed::Lost),
                    Err(e) => Err(e),
                };
            }
            Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Claimed::Lost)
            }
            Err(OpenError::Io(e)) => return Err(Error::io("cannot open entry", &pck, e)),
        };
        if FileExt::try_lock_exclusive(&file).is_err() {
            return Ok(Claimed::Lost);
        }
        if !same_file(&file, &pck) {
            return Ok(Claimed::Lost);
        }
        crate::fault::point("claim.locked");
        let bak = self.path_of(filebase, State::Claimed);
        match fs::rename(&pck, &bak) {
            Ok(()) => {
                crate::fault::point("claim.renamed");
                Ok(Claimed::Got(
                    FileClaim {
                        filebase: filebase.clone(),
                        file,
                        path: bak,
                        state: State::Claimed,
                    }
                    .into(),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Claimed::Lost),
            Err(e) => Err(Error::io("cannot claim entry", &pck, e)),
        }
    }

    /// Done with a claimed entry: remove it.
    pub fn finish(&self, claim: FileClaim) -> Result<()> {
        fs::remove_file(&claim.path).at("cannot remove finished entry", &claim.path)?;
        drop(claim.file);
        Ok(())
    }

    /// Locks a preserved entry (`.psv`) where it lies, for a repair by hand (`delete`,
    /// `move`). Nothing else takes `.psv` files, the lock only keeps two repairs apart.
    pub fn claim_preserved(&self, filebase: &Filebase) -> Result<Claimed> {
        let psv = self.path_of(filebase, State::Preserved);
        let file = match open_entry_file(&psv, false) {
            Ok(f) => f,
            Err(OpenError::NotRegular) => {
                return Err(Error::data(
                    format!("{} is not a regular file", psv.display()),
                    "remove it by hand after a look",
                ))
            }
            Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Claimed::Lost)
            }
            Err(OpenError::Io(e)) => return Err(Error::io("cannot open entry", &psv, e)),
        };
        if FileExt::try_lock_exclusive(&file).is_err() || !same_file(&file, &psv) {
            return Ok(Claimed::Lost);
        }
        Ok(Claimed::Got(
            FileClaim {
                filebase: filebase.clone(),
                file,
                path: psv,
                state: State::Preserved,
            }
            .into(),
        ))
    }

    /// Gives a claimed entry back: `.bak` → `.pck`, as it was (a `.psv` stays as it is).
    pub fn put_back(&self, claim: FileClaim) -> Result<()> {
        if claim.state == State::Preserved {
            return Ok(());
        }
        let pck = self.path_of(&claim.filebase, State::Ready);
        fs::rename(&claim.path, &pck).at("cannot put back entry", &claim.path)?;
        sync_dir(&self.dir)
    }

    /// Moves a claimed entry to `bad` as `.psv`, unchanged (or, when `bad` is not on
    /// the filesystem, renames it to `.psv` where it lies).
    pub fn preserve(&self, claim: FileClaim, bad: Option<&DirQueue>) -> Result<()> {
        let bad = self.preserve_dir(bad)?;
        let dest = bad.preserve_path(&claim.filebase);
        move_file(&claim.path, &dest)?;
        sync_dir(&bad.dir)
    }

    /// Writes a preserved entry from its metadata (YAML, kept byte for byte) and its
    /// message, durably, as `<filebase>.psv` (or a fresh name if that is taken).
    pub fn store_preserved(&self, fb: &Filebase, meta: &[u8], msg: &[u8]) -> Result<()> {
        self.create_dir()?;
        let (tmp, file) = self.create_temp(&Stamp::now())?;
        let written = (|| {
            let mut w = io::BufWriter::new(&file);
            w.write_all(b"---\n")?;
            w.write_all(meta)?;
            if !meta.is_empty() && !meta.ends_with(b"\n") {
                w.write_all(b"\n")?;
            }
            w.write_all(b"...\n")?;
            w.write_all(msg)?;
            w.flush()?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("cannot write entry", &tmp, e));
        }
        let dest = self.preserve_path(fb);
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("cannot preserve entry", &dest, e));
        }
        sync_dir(&self.dir)
    }

    /// Recovers orphaned `.bak` files of `slice` (Mailman's `recover_backup_files`),
    /// counting each recovery in `_bak_count`; the one that reaches `MAX_BAK_COUNT`
    /// moves the entry to `bad`. `.bak` files held by a live process are left alone.
    pub fn recover(&self, slice: Slice, bad: Option<&DirQueue>) -> Result<Recovery> {
        let mut report = Recovery {
            removed_tmp: self.remove_dead_temps()?,
            ..Recovery::default()
        };
        for (fb, _) in self.scan(Some(State::Claimed), slice)?.entries {
            let bak = self.path_of(&fb, State::Claimed);
            let file = match open_entry_file(&bak, false) {
                Ok(f) => f,
                Err(OpenError::NotRegular) => {
                    let bad = self.preserve_dir(bad)?;
                    move_file(&bak, &bad.preserve_path(&fb))?;
                    report
                        .preserved
                        .push((fb, "not a regular file".to_string()));
                    continue;
                }
                Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(OpenError::Io(e)) => return Err(Error::io("cannot open", &bak, e)),
            };
            if FileExt::try_lock_exclusive(&file).is_err() {
                report.busy += 1;
                continue;
            }
            if !same_file(&file, &bak) {
                continue;
            }
            let claim = FileClaim {
                filebase: fb.clone(),
                file,
                path: bak,
                state: State::Claimed,
            };
            if let Err(e) = self.recover_one(claim, bad, &mut report) {
                report.failed.push((fb, e.message));
            }
        }
        Ok(report)
    }

    /// Recovers one locked orphan (see [`Switchboard::recover`]).
    fn recover_one(
        &self,
        claim: FileClaim,
        bad: Option<&DirQueue>,
        report: &mut Recovery,
    ) -> Result<()> {
        let fb = claim.filebase.clone();
        {
            let mut entry = match claim.read() {
                Ok(e) => e,
                Err(e) => {
                    self.preserve(claim, bad)?;
                    report.preserved.push((fb, e.message));
                    return Ok(());
                }
            };
            let count = super::bumped_bak_count(&entry.metadata, 1);
            let mut meta = entry.metadata.clone();
            meta.set("_bak_count", Value::Int(count));
            let stamp = Stamp {
                secs: fb.time(),
                text: fb
                    .as_str()
                    .split('+')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            };
            if count >= MAX_BAK_COUNT {
                let bad = self.preserve_dir(bad)?;
                let mut msg = entry.message().at("cannot read", &claim.path)?;
                let pending = bad.write_temp(&meta, &mut msg, &stamp)?;
                drop(msg);
                pending.file.sync_all().at("cannot sync", &pending.tmp)?;
                let dest = bad.preserve_path(&fb);
                fs::rename(&pending.tmp, &dest).at("cannot preserve", &pending.tmp)?;
                sync_dir(&bad.dir)?;
                fs::remove_file(&claim.path).at("cannot remove", &claim.path)?;
                sync_dir(&self.dir)?;
                report.preserved.push((
                    fb,
                    format!("recovered {MAX_BAK_COUNT} times (_bak_count: {count})"),
                ));
            } else {
                let mut msg = entry.message().at("cannot read", &claim.path)?;
                let pending = self.write_temp(&meta, &mut msg, &stamp)?;
                drop(msg);
                // Lock the new file before it takes the entry's name: from the moment it
                // is `F.bak`, it must be held.
                FileExt::try_lock_exclusive(&pending.file).at("cannot lock", &pending.tmp)?;
                pending.file.sync_all().at("cannot sync", &pending.tmp)?;
                crate::fault::point("recover.written");
                fs::rename(&pending.tmp, &claim.path).at("cannot recover", &pending.tmp)?;
                crate::fault::point("recover.replaced");
                let pck = self.path_of(&fb, State::Ready);
                fs::rename(&claim.path, &pck).at("cannot recover", &claim.path)?;
                sync_dir(&self.dir)?;
                drop(pending.file);
                report.recovered.push(fb);
            }
        }
        Ok(())
    }

    /// Renames a written temporary file to its entry name, never over an existing
    /// entry: two processes can stamp the same time, and identical messages of the same
    /// list then get the same filebase. When the name is taken, the entry is named again
    /// with a later time.
    fn commit_one(&self, p: &mut Pending) -> Result<()> {
        for _ in 0..100 {
            let dest = self.path_of(&p.filebase, State::Ready);
            match rename_noreplace(&p.tmp, &dest) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    p.filebase = Filebase::from_parts(p.hasher.clone(), &p.listid, &Stamp::now());
                }
                Err(e) => return Err(Error::io("cannot commit entry", &p.tmp, e)),
            }
        }
        Err(Error::new(
            crate::error::exit::TEMPFAIL,
            format!(
                "cannot commit entry {}: every name tried is taken",
                p.tmp.display()
            ),
            "try again",
        ))
    }

    /// Removes `.pck.tmp` files nobody holds: leftovers of writers that crashed before
    /// their entry became visible.
    fn remove_dead_temps(&self) -> Result<usize> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("cannot list queue", &self.dir, e)),
        };
        let mut removed = 0;
        for item in rd {
            let item = item.at("cannot list queue", &self.dir)?;
            if !item.file_name().to_string_lossy().ends_with(".pck.tmp") {
                continue;
            }
            let path = item.path();
            let Ok(file) = open_entry_file(&path, false) else {
                continue;
            };
            if FileExt::try_lock_exclusive(&file).is_ok()
                && same_file(&file, &path)
                && fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Reads the entry at `path`, whatever its name (for `dump PATH`).
pub fn read_path(path: &Path) -> Result<Entry> {
    match open_entry_file(path, false) {
        Ok(f) => Entry::read(f, &path.to_string_lossy()),
        Err(OpenError::NotRegular) => Err(Error::data(
            format!("{}: not a regular file", path.display()),
            "qtool never reads an entry through a symlink, FIFO or directory",
        )),
        Err(OpenError::Io(e)) => Err(Error::io("cannot open", path, e)),
    }
}

/// A temporary entry file written and not yet committed.
#[derive(Debug)]
struct Pending {
    tmp: PathBuf,
    file: File,
    filebase: Filebase,
    len: u64,
    /// SHA-1 of the message alone, to name the entry again should its name be taken.
    hasher: sha1::Sha1,
    listid: String,
}

/// A group commit on a directory: many entries written as temporary files, synced at
/// once, then renamed into place. Dropping it removes what it has not committed.
#[derive(Debug)]
pub struct DirBatch {
    pending: Vec<Pending>,
    bytes: u64,
}

impl DirBatch {
    /// Writes one message as a temporary file (metadata already prepared).
    pub fn add(
        &mut self,
        q: &DirQueue,
        message: &mut dyn Read,
        metadata: Metadata,
        stamp: Stamp,
    ) -> Result<()> {
        q.create_dir()?;
        q.check_free_space()?;
        let pending = q.write_temp(&metadata, message, &stamp)?;
        if pending.len == 0 {
            let _ = fs::remove_file(&pending.tmp);
            return Err(super::empty_message());
        }
        self.bytes += pending.len;
        self.pending.push(pending);
        Ok(())
    }

    pub fn count(&self) -> usize {
        self.pending.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Makes every written entry durable and visible: sync the files (one `syncfs` for
    /// many), rename each into place, sync the directory once. Returns the filebases in
    /// the order they were added.
    pub fn commit(&mut self, q: &DirQueue) -> Result<Vec<Filebase>, BatchError> {
        let pending = std::mem::take(&mut self.pending);
        self.bytes = 0;
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let fail = |pending: &[Pending], committed, error| {
            for p in pending {
                let _ = fs::remove_file(&p.tmp);
            }
            BatchError { committed, error }
        };
        crate::fault::point("enqueue.written");
        if let Err(e) = sync_files(&pending) {
            return Err(fail(&pending, Vec::new(), e));
        }
        crate::fault::point("enqueue.synced");
        let mut committed = Vec::with_capacity(pending.len());
        let mut pending = pending;
        for i in 0..pending.len() {
            if let Err(error) = q.commit_one(&mut pending[i]) {
                let _ = sync_dir(&q.dir);
                return Err(fail(&pending[i..], committed, error));
            }
            committed.push(pending[i].filebase.clone());
        }
        crate::fault::point("enqueue.renamed");
        if let Err(e) = sync_dir(&q.dir) {
            // The renames may not be durable, so nothing may be reported as committed:
            // take the entries back out (those a runner already claimed are its now).
            for fb in &committed {
                let _ = fs::remove_file(q.path_of(fb, State::Ready));
            }
            return Err(BatchError {
                committed: Vec::new(),
                error: e,
            });
        }
        Ok(committed)
    }
}

impl Drop for DirBatch {
    fn drop(&mut self) {
        for p in &self.pending {
            let _ = fs::remove_file(&p.tmp);
        }
    }
}

/// Syncs the data of written entry files. One file: `fdatasync`. Many (a group
/// commit): one `syncfs` on the queue's filesystem, which writes them all back and
/// commits the journal once, instead of one journal commit per file; if `syncfs` is
/// not available, each file is synced. `QTOOL_SYNC=each` forces per-file syncs (for
/// benchmarks).
fn sync_files(pending: &[Pending]) -> Result<()> {
    let each = std::env::var_os("QTOOL_SYNC").is_some_and(|v| v == "each");
    if pending.len() > 1 && !each {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&pending[0].file);
        // SAFETY: syncfs(2) on an open file descriptor.
        if unsafe { libc::syncfs(fd) } == 0 {
            return Ok(());
        }
    }
    for p in pending {
        p.file.sync_data().at("cannot sync entry", &p.tmp)?;
    }
    Ok(())
}

/// Renames `from` to `to` unless `to` exists (`AlreadyExists` then). Uses
/// `renameat2(RENAME_NOREPLACE)`; where the filesystem lacks it, `link` then `unlink`,
/// which is as safe (a crash between them leaves an unlocked temp file that recovery
/// removes, beside the complete entry).
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let (cf, ct) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths relative to the working directory.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cf.as_ptr(),
            libc::AT_FDCWD,
            ct.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        _ => Err(err),
    }
}

/// Syncs a directory so renames in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("cannot sync directory", dir)
}

/// True when `path` (not followed) names the same inode as `file`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Renames `src` to `dst`; across filesystems, copies, syncs and removes instead.
fn move_file(src: &Path, dst: &Path) -> Result<()> {
    match fs::rename(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let tmp = dst.with_extension("psv.tmp");
            fs::copy(src, &tmp).at("cannot copy", src)?;
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .at("cannot sync", &tmp)?;
            fs::rename(&tmp, dst).at("cannot move", &tmp)?;
            fs::remove_file(src).at("cannot remove", src)
        }
        Err(e) => Err(Error::io("cannot move", src, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two processes can stamp the same time; with identical messages of the same list
    /// the filebases are then equal. The second commit must not replace the first entry.
    #[test]
    fn a_commit_never_replaces_an_entry_of_the_same_name() {
        let dir = tempfile::tempdir().unwrap();
        let sb = DirQueue::new(dir.path().join("in"), Format::Native);
        let mut batch = sb.batch();
        batch
            .add(
                &sb,
                &mut &b"Subject: same\n\nbody\n"[..],
                Metadata::new(),
                Stamp::now(),
            )
            .unwrap();
        // Another process got there first with the very same name.
        let taken = batch.pending[0].filebase.clone();
        let theirs = sb.path_of(&taken, State::Ready);
        fs::write(&theirs, b"theirs").unwrap();
        let committed = batch.commit(&sb).unwrap();
        assert_eq!(committed.len(), 1);
        assert_ne!(committed[0], taken);
        assert_eq!(fs::read(&theirs).unwrap(), b"theirs");
        let ours = read_path(&sb.path_of(&committed[0], State::Ready)).unwrap();
        assert_eq!(ours.message_len(), 20);
    }

    /// Two entries with one filebase (in different queues) preserved in `bad`: both
    /// are kept.
    #[test]
    fn preserving_never_replaces_a_preserved_entry() {
        let dir = tempfile::tempdir().unwrap();
        let bad = DirQueue::new(dir.path().join("bad"), Format::Native);
        let fb: Filebase = "1000.5+0123456789abcdef0123456789abcdef01234567"
            .parse()
            .unwrap();
        for (i, q) in ["a", "b"].iter().enumerate() {
            let sb = DirQueue::new(dir.path().join(q), Format::Native);
            sb.create_dir().unwrap();
            fs::write(sb.path_of(&fb, State::Ready), format!("entry {i}")).unwrap();
            let Claimed::Got(Claim {
                held: Held::File(claim),
                ..
            }) = sb.claim(&fb, Some(&bad)).unwrap()
            else {
                panic!("not claimed");
            };
            sb.preserve(claim, Some(&bad)).unwrap();
        }
        let mut kept: Vec<Vec<u8>> = fs::read_dir(bad.dir())
            .unwrap()
            .map(|e| fs::read(e.unwrap().path()).unwrap())
            .collect();
        kept.sort();
        assert_eq!(kept, vec![b"entry 0".to_vec(), b"entry 1".to_vec()]);
    }
}
