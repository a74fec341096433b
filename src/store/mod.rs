//! The embedded redb database: opening it, the schema version and migrations, and the
//! secrets that live beside it in the data dir. Each domain owns its own tables (named
//! `key_to_value`) next to its logic; this module only knows the file and the version.
//!
//! Every transaction goes through [`Store::begin_read`] or [`Store::begin_write`], which
//! lend it the current database handle for its lifetime. That is what lets the store swap
//! in a fresh handle after a disk error without restarting the daemon (see `recover.rs`).

/// The lock methods of a [`redb::StorageBackend`] that wraps another: each passes its
/// call to the backend `self.$wrapped()` returns.
macro_rules! delegate_locks {
    ($wrapped:ident) => {
        fn try_lock_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<bool, redb::BackendError> {
            self.$wrapped().try_lock_range(start, end)
        }

        fn try_lock_shared_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<bool, redb::BackendError> {
            self.$wrapped().try_lock_shared_range(start, end)
        }

        fn lock_range(&self, start: std::ops::Bound<u64>, end: std::ops::Bound<u64>) -> Result<(), redb::BackendError> {
            self.$wrapped().lock_range(start, end)
        }

        fn lock_shared_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<(), redb::BackendError> {
            self.$wrapped().lock_shared_range(start, end)
        }

        fn unlock_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<(), redb::BackendError> {
            self.$wrapped().unlock_range(start, end)
        }

        fn query_lock_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<bool, redb::BackendError> {
            self.$wrapped().query_lock_range(start, end)
        }
    };
}

mod deferred;
mod recover;
mod tx;

pub use deferred::Durable;
pub use tx::{ReadTx, WriteTx};

use crate::error::{Error, Result};
use recover::{Handle, Opener};
use redb::{ReadableDatabase, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Schema version this build writes. Opening a newer database is refused.
pub const SCHEMA_VERSION: u64 = 6;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta_u64");

/// A handle on the open database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    handle: Arc<Handle>,
    data_dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `quickmeet.redb` in `data_dir` and brings its schema up to
    /// date. Only one process may have the database open.
    pub fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("quickmeet.redb");
        let opener = Opener::file(data_dir, true);
        Store::with_opener(data_dir, opener, |e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::Unavailable(format!(
                "{} is already in use by another process (is quickmeetd running?)",
                path.display()
            )),
            other => Error::from(other),
        })
    }

    /// Opens the database of an existing data dir without creating anything, to administer
    /// a stopped daemon. A running daemon holds the database's lock for its whole life, so
    /// this is refused (`Conflict("daemon_running")`) while one runs; a data dir without a
    /// database is `NotFound("database")`.
    pub fn open_existing(data_dir: &Path) -> Result<Store> {
        let path = data_dir.join("quickmeet.redb");
        if !path.is_file() {
            return Err(Error::NotFound("database"));
        }
        let opener = Opener::file(data_dir, false);
        Store::with_opener(data_dir, opener, |e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::Conflict(
                "daemon_running",
                format!("quickmeetd is running (it holds {}); use the online command", path.display()),
            ),
            other => Error::from(other),
        })
    }

    fn with_opener(
        data_dir: &Path,
        opener: Opener,
        refused: impl FnOnce(redb::DatabaseError) -> Error,
    ) -> Result<Store> {
        let handle = Handle::open(opener).map_err(refused)?;
        let store = Store { handle: Arc::new(handle), data_dir: data_dir.to_path_buf() };
        store.migrate()?;
        Ok(store)
    }

    /// Begins a read transaction on the current database handle. Reads keep working while
    /// the disk is full; only if a reopen after a disk error failed is this refused (503).
    pub fn begin_read(&self) -> Result<ReadTx> {
        let db = self.handle.usable()?;
        let tx = db.database.begin_read()?;
        Ok(ReadTx::new(tx, db.database))
    }

    /// Begins a write transaction (waiting for the one in progress, if any). If the handle
    /// refuses writes after a disk error, this first reopens the database (at most one
    /// attempt a second): while the disk is still full it answers `StorageFull`.
    pub fn begin_write(&self) -> Result<WriteTx> {
        let (current, seen) = self.handle.current();
        if let Some(db) = current {
            match db.database.begin_write() {
                Ok(tx) => return Ok(WriteTx::new(tx, db)),
                // `db` is dropped here, before the recovery waits for every borrowed handle.
                Err(e) if recover::refuses_writes(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.handle.recover(seen)?;
        let db = self.handle.usable()?;
        let tx = db.database.begin_write()?;
        Ok(WriteTx::new(tx, db))
    }

    /// The data dir this store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stored schema version (0 for a brand-new file).
    pub fn schema_version(&self) -> Result<u64> {
        let tx = self.begin_read()?;
        match tx.open_table(META) {
            Ok(t) => Ok(t.get("schema_version")?.map(|v| v.value()).unwrap_or(0)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs every migration step from the stored version up to [`SCHEMA_VERSION`], each in
    /// its own durable transaction, so a crash mid-way resumes at the right step.
    fn migrate(&self) -> Result<()> {
        let mut version = self.schema_version()?;
        if version > SCHEMA_VERSION {
            return Err(Error::Unavailable(format!(
                "database schema {version} is newer than this quickmeetd ({SCHEMA_VERSION}); upgrade quickmeetd"
            )));
        }
        while version < SCHEMA_VERSION {
            let tx = self.begin_write()?;
            match version {
                // 0 -> 1: create every table so read transactions never meet a missing one.
                0 => crate::create_tables(&tx)?,
                // 1 -> 2: the chat writer's `recent_seq_conv_sender` and `merging_seq_conv_sender`
                // (step 4 -> 5 drops them again); everything a version-1 database holds is
                // merged already.
                1 => crate::create_tables(&tx)?,
                // 2 -> 3: `clientid_sender_seq`, the idempotency index keyed clientId first;
                // `sender_clientid_seq` stays as it was, read for the messages it indexes.
                2 => crate::create_tables(&tx)?,
                // 3 -> 4: `name_secret` with the key of message ids that carry their seq;
                // `messageid_seq` stays, read for the messages it indexes.
                3 => crate::create_tables(&tx)?,
                // 4 -> 5: `chat_mark`; the entries of `recent_seq_conv_sender` and
                // `merging_seq_conv_sender` go into the indexes and both tables are dropped.
                4 => {
                    crate::create_tables(&tx)?;
                    crate::chat::data::fold_legacy(&tx)?;
                }
                // 5 -> 6: `conv_seq_sender`, keyed by conversation key, becomes
                // `convno_seq_sender`, keyed by conversation number (`conv_number`).
                5 => {
                    crate::create_tables(&tx)?;
                    crate::chat::data::renumber(&tx)?;
                }
                _ => unreachable!("no migration from {version}"),
            }
            version += 1;
            tx.open_table(META)?.insert("schema_version", version)?;
            tx.commit()?;
            tracing::info!(version, "database schema migrated");
        }
        Ok(())
    }
}

/// Reads a secret file from the data dir, creating it with `len` random bytes (mode 0600)
/// on first use. Secrets live beside the database, never in the config file.
pub fn load_or_create_secret(data_dir: &Path, name: &str, len: usize) -> Result<Vec<u8>> {
    use rand::RngCore;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == len => return Ok(bytes),
        Ok(_) => return Err(Error::Internal(format!("{} has the wrong length", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    let tmp = data_dir.join(format!("{name}.tmp"));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(bytes)
}

/// Encodes a value as JSON for a table cell.
pub(crate) fn to_cell<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(v)?)
}

/// Decodes a JSON table cell.
pub(crate) fn from_cell<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_is_at_the_current_schema_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_version_1_database_ends_at_the_current_tables() {
        use redb::TableHandle;
        let names = |s: &Store| {
            let tx = s.begin_read().unwrap();
            let mut n: Vec<String> = tx.list_tables().unwrap().map(|t| t.name().to_string()).collect();
            n.sort();
            n
        };
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let fresh = names(&s);
        let tx = s.begin_write().unwrap();
        assert!(tx.delete_table(crate::chat::data::CHAT_MARK).unwrap());
        tx.open_table(META).unwrap().insert("schema_version", 1).unwrap();
        tx.commit().unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        // Steps 1 -> 2 made schema 4's tables of unmerged entries; 4 -> 5 dropped them.
        assert_eq!(names(&s), fresh);
        assert!(fresh.contains(&"chat_mark".to_string()) && !fresh.iter().any(|n| n.contains("recent")));
    }

    #[test]
    fn a_version_3_database_gains_a_message_id_key_that_then_stays() {
        let key = |s: &Store| {
            let tx = s.begin_read().unwrap();
            let t = tx.open_table(crate::chat::data::NAME_SECRET).unwrap();
            t.get("message_ids").unwrap().map(|v| v.value())
        };
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let tx = s.begin_write().unwrap();
        assert!(tx.delete_table(crate::chat::data::NAME_SECRET).unwrap());
        tx.open_table(META).unwrap().insert("schema_version", 3).unwrap();
        tx.commit().unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        let first = key(&s).expect("a key");
        drop(s);
        assert_eq!(key(&Store::open(dir.path()).unwrap()), Some(first));
    }

    #[test]
    fn a_second_open_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Store::open(dir.path()).unwrap();
        let e = Store::open(dir.path()).err().unwrap();
        assert!(e.to_string().contains("already in use"), "{e}");
    }

    #[test]
    fn opening_an_existing_store_creates_nothing_and_is_refused_while_it_is_held() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Store::open_existing(dir.path()).err().unwrap().code(), "not_found");
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
        let held = Store::open(dir.path()).unwrap();
        let e = Store::open_existing(dir.path()).err().unwrap();
        assert_eq!(e.code(), "daemon_running");
        assert!(e.to_string().contains("use the online command"), "{e}");
        drop(held);
        assert_eq!(Store::open_existing(dir.path()).unwrap().schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn secrets_are_created_once_with_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_secret(dir.path(), "k", 32).unwrap();
        let b = load_or_create_secret(dir.path(), "k", 32).unwrap();
        assert_eq!(a, b);
        let mode = std::fs::metadata(dir.path().join("k")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
