//! Transactions that hold on to the database handle they run on. A recovery swaps the
//! store's handle for a fresh one, and closing a handle under a running read would fail it;
//! each transaction therefore keeps its handle (an `Arc`) until it ends, and the recovery
//! waits for those to be given back before it closes the file.

use super::deferred::Durable;
use super::recover::Db;
use crate::error::Result;
use redb::{Database, ReadTransaction, WriteTransaction};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A read transaction of the store; use it as a [`ReadTransaction`].
pub struct ReadTx {
    // Declared before the handle: fields drop in order, so the transaction ends first.
    tx: ReadTransaction,
    _db: Arc<Database>,
}

impl ReadTx {
    pub(super) fn new(tx: ReadTransaction, db: Arc<Database>) -> ReadTx {
        ReadTx { tx, _db: db }
    }
}

impl Deref for ReadTx {
    type Target = ReadTransaction;

    fn deref(&self) -> &ReadTransaction {
        &self.tx
    }
}

/// A write transaction of the store; use it as a [`WriteTransaction`], and end it with
/// [`WriteTx::commit`] (dropping it aborts).
pub struct WriteTx {
    tx: WriteTransaction,
    db: Db,
}

impl WriteTx {
    pub(super) fn new(tx: WriteTransaction, db: Db) -> WriteTx {
        WriteTx { tx, db }
    }

    /// Commits durably. A full disk is `StorageFull`; the handle then refuses writes until
    /// the next [`Store::begin_write`] reopens it.
    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }

    /// Commits, leaving the sync to the ticket: the commit is durable only once
    /// [`Durable::wait`] returns `Ok`, and no later write reaches the file before that (see
    /// `deferred.rs`). Readers may see it before. Errors as [`WriteTx::commit`].
    pub fn commit_deferred(self) -> Result<Durable> {
        let WriteTx { tx, db } = self;
        Ok(db.syncs.deferring(|| tx.commit())?)
    }
}

impl Deref for WriteTx {
    type Target = WriteTransaction;

    fn deref(&self) -> &WriteTransaction {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut WriteTransaction {
        &mut self.tx
    }
}
