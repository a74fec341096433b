//! Commits whose fsync runs after the commit returns, so that the message writer can build
//! its next batch while the disk syncs the last one (see `chat/writer.rs`).
//!
//! redb writes a commit's pages and its header, then syncs the file, all inside `commit`.
//! The database file sits behind [`Deferring`], a storage backend that can take that sync
//! as a request instead: [`WriteTx::commit_deferred`](super::WriteTx::commit_deferred)
//! returns once the pages are written, with a [`Durable`] ticket whose `wait` makes them
//! durable. The order on disk stays what redb's crash safety relies on: **no write of a
//! later transaction reaches the file before the sync requested ahead of it is done**. Each
//! write (and each change of length) first finishes every requested sync, doing it itself
//! if nobody else is. A plain commit syncs everything requested so far before it returns,
//! so it stays durable when it returns, as before. What changes is only that a reader
//! may see a deferred commit a few milliseconds before it is durable; the message writer
//! acknowledges nothing before then.
//!
//! A sync that fails fails every later write and sync of this file, so redb latches the
//! error and the store reopens the file (see `recover.rs`), which holds exactly the durable
//! commits again.

use redb::StorageBackend;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// The syncs of one open database file, shared by its backend and the tickets of its
/// deferred commits.
pub struct Syncs {
    inner: Box<dyn StorageBackend>,
    state: Mutex<State>,
    synced: Condvar,
    /// Set while a deferred commit runs: its sync is requested, not done.
    deferring: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Syncs requested so far, and how many of them are done (a sync does all requested
    /// before it started).
    requested: u64,
    done: u64,
    /// A thread is syncing.
    syncing: bool,
    /// The error of a failed sync; every later write and sync fails with it.
    failed: Option<(io::ErrorKind, String)>,
}

impl std::fmt::Debug for Syncs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncs").finish_non_exhaustive()
    }
}

impl Syncs {
    /// Wraps a backend; give redb [`Syncs::backend`].
    pub fn new(inner: Box<dyn StorageBackend>) -> Arc<Syncs> {
        Arc::new(Syncs {
            inner,
            state: Mutex::new(State::default()),
            synced: Condvar::new(),
            deferring: AtomicBool::new(false),
        })
    }

    /// The backend to open the database with.
    pub fn backend(self: &Arc<Syncs>) -> Deferring {
        Deferring(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `commit` with its sync requested rather than done; the ticket makes it durable.
    pub(super) fn deferring<T, E>(self: &Arc<Syncs>, commit: impl FnOnce() -> Result<T, E>) -> Result<Durable, E> {
        self.deferring.store(true, Ordering::Release);
        let outcome = commit();
        self.deferring.store(false, Ordering::Release);
        outcome?;
        Ok(Durable { syncs: self.clone(), upto: self.lock().requested })
    }

    /// Returns once the first `upto` requested syncs are done, doing the sync on this
    /// thread unless another thread is at it.
    fn sync_upto(&self, upto: u64) -> io::Result<()> {
        let mut st = self.lock();
        loop {
            if st.done >= upto {
                return Ok(());
            }
            if let Some((kind, msg)) = &st.failed {
                return Err(io::Error::new(*kind, msg.clone()));
            }
            if st.syncing {
                st = self.synced.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.syncing = true;
            let target = st.requested;
            drop(st);
            let outcome = self.inner.sync_data();
            st = self.lock();
            st.syncing = false;
            match outcome {
                Ok(()) => st.done = st.done.max(target),
                Err(e) => {
                    tracing::error!(error = %e, "syncing the database file failed");
                    st.failed = Some((e.kind(), e.to_string()));
                }
            }
            self.synced.notify_all();
        }
    }

    /// Finishes every sync requested so far: nothing may be written after a commit before
    /// that commit is durable.
    fn settle(&self) -> io::Result<()> {
        let requested = self.lock().requested;
        self.sync_upto(requested)
    }
}

/// A deferred commit, durable once [`Durable::wait`] returns `Ok`.
pub struct Durable {
    syncs: Arc<Syncs>,
    upto: u64,
}

impl Durable {
    /// Syncs the commit (or waits for the sync under way that covers it).
    pub fn wait(&self) -> io::Result<()> {
        self.syncs.sync_upto(self.upto)
    }
}

/// The storage backend redb runs on: the wrapped backend, with syncs that a deferred commit
/// only requests, and writes that wait for the requested syncs.
#[derive(Debug)]
pub struct Deferring(Arc<Syncs>);

impl Deferring {
    fn wrapped(&self) -> &dyn StorageBackend {
        &*self.0.inner
    }
}

impl StorageBackend for Deferring {
    fn len(&self) -> io::Result<u64> {
        self.0.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.settle()?;
        self.0.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        let requested = {
            let mut st = self.0.lock();
            if let Some((kind, msg)) = &st.failed {
                return Err(io::Error::new(*kind, msg.clone()));
            }
            st.requested += 1;
            st.requested
        };
        if self.0.deferring.load(Ordering::Acquire) {
            return Ok(());
        }
        self.0.sync_upto(requested)
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.settle()?;
        self.0.inner.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        let settled = self.0.settle();
        self.0.inner.close()?;
        settled
    }

    delegate_locks!(wrapped);
}

#[cfg(test)]
mod tests;
