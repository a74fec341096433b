//! Reopening the database after a disk error, without restarting the daemon.
//!
//! When a commit fails on an I/O error (a full disk, typically), redb latches the error:
//! that handle refuses every later write with "Previous I/O error", even once space is free
//! again, until it is closed. So the store keeps its handle in a slot it can swap. The first
//! write that meets a poisoned handle reopens the file, which redb repairs on open, as soon
//! as the disk has room again, and at most once a second so that a disk that is still full
//! is not hammered. The reopened file holds exactly the durable commits: nothing that was
//! acknowledged is lost, nothing whose commit failed appears.

use super::deferred::Syncs;
use crate::error::{Error, Result, POISONED};
use redb::backends::FileBackend;
use redb::{Database, DatabaseError, StorageError, TransactionError};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// How long a recovery waits for transactions still running on the old handle.
const DRAIN: Duration = Duration::from_secs(2);
/// At most one reopen attempt per this interval.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Free space needed before the old handle is closed: room for redb's repair on open and a
/// few commits, so that the reopen does not fail half-way on a disk that is still full.
const MIN_FREE: u64 = 4 * 1024 * 1024;

type OpenFn = dyn Fn() -> Result<(Database, Arc<Syncs>), DatabaseError> + Send + Sync;

/// How a store opens its database, kept so that a recovery reopens it the same way.
pub(super) struct Opener {
    pub(super) open: Box<OpenFn>,
    /// Whether the disk has room enough to reopen.
    pub(super) room: Box<dyn Fn() -> bool + Send + Sync>,
}

impl Opener {
    /// `quickmeet.redb` in `data_dir`, created if `create` and missing, behind a
    /// [`Syncs`] backend.
    pub fn file(data_dir: &Path, create: bool) -> Opener {
        let path = data_dir.join("quickmeet.redb");
        let dir = data_dir.to_path_buf();
        let open = move || {
            let file = std::fs::OpenOptions::new().read(true).write(true).create(create).truncate(false).open(&path)?;
            let syncs = Syncs::new(Box::new(FileBackend::new(file)?));
            Ok((Database::builder().create_with_backend(syncs.backend())?, syncs))
        };
        Opener { open: Box::new(open), room: Box::new(move || has_room(&dir)) }
    }
}

/// Which handle a caller got, to tell whether the one it found broken was replaced since.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Generation(u64);

/// An open database and the syncs of its file.
#[derive(Clone)]
pub(super) struct Db {
    pub database: Arc<Database>,
    pub syncs: Arc<Syncs>,
}

struct Slot {
    /// None only after closing a broken handle, when reopening the file failed.
    db: Option<Db>,
    generation: Generation,
}

/// The store's swappable database handle.
pub(super) struct Handle {
    opener: Opener,
    slot: RwLock<Slot>,
    /// Held by the one caller reopening; when the last attempt failed, and how.
    last_failure: Mutex<Option<(Instant, Failure)>>,
}

#[derive(Clone, Copy)]
enum Failure {
    DiskFull,
    Other,
}

impl Failure {
    fn of(e: &Error) -> Failure {
        match e {
            Error::StorageFull => Failure::DiskFull,
            _ => Failure::Other,
        }
    }

    fn error(self) -> Error {
        match self {
            Failure::DiskFull => Error::StorageFull,
            Failure::Other => Error::Unavailable(POISONED.into()),
        }
    }
}

/// Whether `begin_write` failed because the handle latched an earlier I/O error.
pub(super) fn refuses_writes(e: &TransactionError) -> bool {
    matches!(e, TransactionError::Storage(StorageError::PreviousIo))
}

impl Handle {
    pub fn open(opener: Opener) -> Result<Handle, DatabaseError> {
        let (database, syncs) = (opener.open)()?;
        let slot = Slot { db: Some(Db { database: Arc::new(database), syncs }), generation: Generation(0) };
        Ok(Handle { opener, slot: RwLock::new(slot), last_failure: Mutex::new(None) })
    }

    /// The current handle (none if a reopen failed) and which one it is.
    pub fn current(&self) -> (Option<Db>, Generation) {
        let slot = self.slot.read().unwrap_or_else(PoisonError::into_inner);
        (slot.db.clone(), slot.generation)
    }

    /// The current handle. Without one (a reopen failed), the reopen is tried again first,
    /// whatever the caller wants to do: nothing works without a handle.
    pub fn usable(&self) -> Result<Db> {
        let (db, seen) = self.current();
        if let Some(db) = db {
            return Ok(db);
        }
        // Its error is for writers; a reader without a handle is told the store is reopening.
        let _ = self.recover(seen);
        self.current().0.ok_or_else(|| Error::Unavailable(POISONED.into()))
    }

    /// Replaces the handle `seen`, found refusing writes, with a freshly opened one. If
    /// another caller replaced it meanwhile there is nothing to do; within a second of a
    /// failed attempt this fails again at once, with that attempt's error.
    pub fn recover(&self, seen: Generation) -> Result<()> {
        let mut last = self.last_failure.lock().unwrap_or_else(PoisonError::into_inner);
        if self.current().1 != seen {
            return Ok(());
        }
        if let Some((at, failure)) = *last {
            if at.elapsed() < RETRY_EVERY {
                return Err(failure.error());
            }
        }
        match self.reopen() {
            Ok(()) => {
                *last = None;
                tracing::info!("database reopened after a disk error; writes work again");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "database not reopened yet; the next write retries in a second");
                *last = Some((Instant::now(), Failure::of(&e)));
                Err(e)
            }
        }
    }

    fn reopen(&self) -> Result<()> {
        if !(self.opener.room)() {
            return Err(Error::StorageFull);
        }
        // Holding the slot makes new transactions wait (at most DRAIN) for the fresh handle.
        let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = slot.db.take() {
            match drain(old.database) {
                // Closing reports the latched error again; the open below repairs the file.
                Ok(db) => {
                    if let Err(e) = db.close() {
                        tracing::debug!(error = %e, "closed the database handle that refused writes");
                    }
                }
                Err(database) => {
                    slot.db = Some(Db { database, syncs: old.syncs });
                    tracing::warn!("transactions still hold the old database handle; not reopening yet");
                    return Err(Error::Unavailable(POISONED.into()));
                }
            }
        }
        let (database, syncs) = (self.opener.open)().map_err(|e| {
            tracing::error!(error = %e, "reopening the database failed");
            match Error::from(e) {
                Error::StorageFull => Error::StorageFull,
                _ => Error::Unavailable(POISONED.into()),
            }
        })?;
        slot.db = Some(Db { database: Arc::new(database), syncs });
        slot.generation = Generation(slot.generation.0 + 1);
        Ok(())
    }
}

/// The database once no transaction holds it any more, or after DRAIN the shared handle
/// back: closing it under a running read would fail that read.
fn drain(mut db: Arc<Database>) -> Result<Database, Arc<Database>> {
    let deadline = Instant::now() + DRAIN;
    loop {
        match Arc::try_unwrap(db) {
            Ok(db) => return Ok(db),
            Err(shared) if Instant::now() < deadline => {
                db = shared;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(shared) => return Err(shared),
        }
    }
}

/// Whether the file system holding `dir` has [`MIN_FREE`] bytes available.
fn has_room(dir: &Path) -> bool {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => u128::from(s.blocks_available()) * u128::from(s.fragment_size()) >= u128::from(MIN_FREE),
        Err(e) => {
            // Cannot tell: let the reopen find out.
            tracing::warn!(error = %e, dir = %dir.display(), "cannot read the free space of the data dir");
            true
        }
    }
}

#[cfg(test)]
mod tests;
