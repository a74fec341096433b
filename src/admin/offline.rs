//! Administration of a stopped daemon, directly on its data dir: what `quickmeet` does
//! when no daemon answers on the admin socket. Writes go through [`Offline`], which holds
//! the database's lock; a running quickmeetd holds that lock for its whole life, so an
//! offline write can never race the daemon and is refused while one runs. [`inspect`]
//! only reads (a shared lock, no repair, no migration) and never changes the data dir.

use crate::accounts::{validate_password, UserRecord, USERID_USER, USERNAME_USERID};
use crate::admin::CertReport;
use crate::certs::CertInfo;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::{from_cell, to_cell, Store};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use std::path::Path;

/// A stopped daemon's data dir, locked for administration until dropped.
pub struct Offline {
    store: Store,
}

impl Offline {
    /// Takes the data dir's database. Refused with `Conflict("daemon_running")` while
    /// quickmeetd runs, and with `NotFound("database")` when the dir holds no database.
    pub fn open(data_dir: &Path) -> Result<Offline> {
        Ok(Offline { store: Store::open_existing(data_dir)? })
    }

    /// Sets a new password, as `quickmeet user passwd` does online: the same checks, and
    /// the token generation is bumped so every token issued before is refused once the
    /// daemon starts. One write transaction, so the change is all or nothing.
    pub fn set_password(&self, username: &str, password: &str) -> Result<UserRecord> {
        validate_password(password)?;
        let hash = crate::auth::password::hash_now(password)?;
        let tx = self.store.begin_write()?;
        let rec = {
            let names = tx.open_table(USERNAME_USERID)?;
            let id = names.get(username.to_lowercase().as_str())?.map(|v| v.value().to_string());
            let id = id.ok_or(Error::NotFound("user"))?;
            let mut users = tx.open_table(USERID_USER)?;
            let stored: Option<UserRecord> = users.get(id.as_str())?.map(|v| from_cell(v.value())).transpose()?;
            let mut rec = stored.filter(|r| !r.deleted).ok_or(Error::NotFound("user"))?;
            rec.password_hash = hash;
            rec.token_gen += 1;
            users.insert(id.as_str(), to_cell(&rec)?.as_slice())?;
            rec
        };
        tx.commit()?;
        hand_back(self.store.data_dir())?;
        Ok(rec)
    }

    /// Issues a fresh server certificate from the local CA for a daemon with `config`
    /// (listening on its `listen`); the daemon uses it when it starts.
    pub fn renew_cert(&self, config: &Config) -> Result<CertInfo> {
        let dir = self.store.data_dir();
        let info = crate::certs::ensure(dir, &crate::certs::names_for(config, config.listen), true)?;
        hand_back(dir)?;
        Ok(info)
    }
}

/// Gives what root just wrote in the data dir back to the data dir's owner. The packaged
/// daemon runs as its own user, and `sudo quickmeet …` writes files as root (a renewed key,
/// a restored database) that the daemon could otherwise not read. Only entries owned by
/// root change hands; nothing happens unless we are root and the dir belongs to someone
/// else.
pub fn hand_back(data_dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(data_dir)?;
    if !nix::unistd::geteuid().is_root() || owner.uid() == 0 {
        return Ok(());
    }
    fn walk(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            if meta.uid() == 0 {
                std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
            }
            if meta.is_dir() {
                walk(&entry.path(), uid, gid)?;
            }
        }
        Ok(())
    }
    Ok(walk(data_dir, owner.uid(), owner.gid())?)
}

/// The state of a data dir's database, as far as can be told without a daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Database {
    /// No `quickmeet.redb`: the daemon has never started on this data dir.
    Absent,
    /// A process holds it: quickmeetd is running.
    InUse,
    /// Readable; the counts below are filled in.
    Readable,
    /// It exists but cannot be read offline (see `problem`).
    Unreadable,
}

/// What `quickmeet status` shows when no daemon answers: facts read from the data dir.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirReport {
    /// Always false: the daemon did not answer.
    pub running: bool,
    pub data_dir: String,
    pub exists: bool,
    pub data_dir_bytes: u64,
    pub database: Database,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Accounts not deleted.
    pub users: Option<u64>,
    pub groups: Option<u64>,
    pub messages: Option<u64>,
    pub files: Option<u64>,
    pub cert: Option<CertReport>,
}

/// Reads what can be known about a data dir without a daemon and without changing it.
pub fn inspect(data_dir: &Path) -> DirReport {
    let mut r = DirReport {
        running: false,
        data_dir: data_dir.display().to_string(),
        exists: data_dir.is_dir(),
        data_dir_bytes: dir_size(data_dir),
        database: Database::Absent,
        problem: None,
        users: None,
        groups: None,
        messages: None,
        files: None,
        cert: crate::certs::current(data_dir).ok().map(CertReport::from),
    };
    let path = data_dir.join("quickmeet.redb");
    if !path.is_file() {
        return r;
    }
    match redb::ReadOnlyDatabase::open(&path) {
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => r.database = Database::InUse,
        Err(redb::DatabaseError::RepairAborted) => {
            r.database = Database::Unreadable;
            r.problem = Some("it was not closed cleanly; quickmeetd repairs it when it starts".into());
        }
        Err(e) => {
            r.database = Database::Unreadable;
            r.problem = Some(e.to_string());
        }
        Ok(db) => match counts(&db) {
            Ok([users, groups, messages, files]) => {
                r.database = Database::Readable;
                (r.users, r.groups, r.messages, r.files) = (Some(users), Some(groups), Some(messages), Some(files));
            }
            Err(e) => {
                r.database = Database::Unreadable;
                r.problem = Some(e.to_string());
            }
        },
    }
    r
}

/// Live users, groups, messages and files in one read transaction.
fn counts(db: &redb::ReadOnlyDatabase) -> Result<[u64; 4]> {
    let tx = db.begin_read()?;
    let mut users = 0;
    for row in tx.open_table(USERID_USER)?.iter()? {
        let rec: UserRecord = from_cell(row?.1.value())?;
        users += u64::from(!rec.deleted);
    }
    fn rows<K: redb::Key + 'static, V: redb::Value + 'static>(
        tx: &redb::ReadTransaction,
        t: TableDefinition<K, V>,
    ) -> Result<u64> {
        Ok(tx.open_table(t)?.len()?)
    }
    Ok([
        users,
        rows(&tx, crate::groups::GROUPID_GROUP)?,
        rows(&tx, crate::chat::data::SEQ_MESSAGE)?,
        rows(&tx, crate::files::data::FILEID_FILE)?,
    ])
}

/// Bytes of every regular file under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::Core;

    /// A stopped daemon's data dir with alice, bob (deleted) and a certificate.
    async fn stopped() -> (tempfile::TempDir, UserRecord) {
        let dir = tempfile::tempdir().unwrap();
        let core = Core::open(Config { data_dir: dir.path().to_path_buf(), ..Config::default() }).unwrap();
        crate::certs::ensure(dir.path(), &["127.0.0.1".into()], false).unwrap();
        let alice = core.accounts.signup("alice", "password1", None).await.unwrap().1;
        let bob = core.accounts.signup("bob", "password2", None).await.unwrap().1;
        core.accounts.delete(&bob.id).await.unwrap();
        core.chat.close().await;
        drop(core);
        (dir, alice)
    }

    fn core(dir: &Path) -> Core {
        Core::open(Config { data_dir: dir.to_path_buf(), ..Config::default() }).unwrap()
    }

    #[tokio::test]
    async fn a_password_set_offline_logs_in_and_old_tokens_die() {
        let (dir, alice) = stopped().await;
        let token = {
            let c = core(dir.path());
            let t = c.accounts.login("alice", "password1").await.unwrap().0;
            c.chat.close().await;
            t
        };
        let rec = Offline::open(dir.path()).unwrap().set_password("ALICE", "brand new pw").unwrap();
        assert_eq!((rec.id.clone(), rec.token_gen), (alice.id, alice.token_gen + 1));
        let c = core(dir.path());
        assert!(c.accounts.authenticate(&token).is_err(), "tokens issued before are refused");
        assert!(c.accounts.login("alice", "password1").await.is_err());
        c.accounts.login("alice", "brand new pw").await.unwrap();
    }

    #[tokio::test]
    async fn offline_writes_are_refused_while_the_database_is_held_and_check_their_input() {
        let (dir, _) = stopped().await;
        let held = core(dir.path());
        let e = Offline::open(dir.path()).err().unwrap();
        assert_eq!(e.code(), "daemon_running", "{e}");
        held.chat.close().await;
        drop(held);
        let off = Offline::open(dir.path()).unwrap();
        assert_eq!(off.set_password("nobody", "brand new pw").unwrap_err().code(), "not_found");
        assert_eq!(off.set_password("bob", "brand new pw").unwrap_err().code(), "not_found", "deleted");
        assert_eq!(off.set_password("alice", "short").unwrap_err().code(), "invalid_password");
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(Offline::open(empty.path()).err().unwrap().code(), "not_found");
    }

    #[tokio::test]
    async fn a_certificate_renewed_offline_is_new_and_the_one_the_daemon_then_serves() {
        let (dir, _) = stopped().await;
        let before = crate::certs::current(dir.path()).unwrap();
        let off = Offline::open(dir.path()).unwrap();
        let config =
            Config { listen: "10.9.8.7:8443".parse().unwrap(), mdns_name: "Ward-3".into(), ..Config::default() };
        let after = off.renew_cert(&config).unwrap();
        assert_ne!(before.fingerprint, after.fingerprint);
        assert_eq!(before.ca_fingerprint, after.ca_fingerprint, "devices keep trusting the CA");
        for name in ["10.9.8.7", "ward-3.local"] {
            assert!(after.names.contains(&name.to_string()), "{name} not in {:?}", after.names);
        }
        assert_eq!(crate::certs::current(dir.path()).unwrap(), after);
        // What the daemon checks at start: the renewed certificate covers it all, so it is
        // kept rather than issued again.
        let names = crate::certs::names_for(&config, config.listen);
        assert_eq!(crate::certs::ensure(dir.path(), &names, false).unwrap(), after);
        // Without mDNS the name is not asked for.
        let quiet = Config { mdns_enabled: false, ..config.clone() };
        assert!(!crate::certs::names_for(&quiet, quiet.listen).contains(&"ward-3.local".to_string()));
    }

    #[tokio::test]
    async fn inspect_reads_a_stopped_data_dir_and_notices_a_running_daemon() {
        let (dir, _) = stopped().await;
        let r = inspect(dir.path());
        assert_eq!((r.running, r.exists, r.database), (false, true, Database::Readable));
        assert_eq!((r.users, r.groups, r.messages, r.files), (Some(1), Some(0), Some(0), Some(0)));
        assert!(r.cert.is_some() && r.data_dir_bytes > 0);
        let held = core(dir.path());
        assert_eq!(inspect(dir.path()).database, Database::InUse);
        held.chat.close().await;
        let missing = dir.path().join("nope");
        let r = inspect(&missing);
        assert_eq!((r.exists, r.database, r.users), (false, Database::Absent, None));
        assert!(!missing.exists(), "inspecting creates nothing");
    }

    #[test]
    fn hand_back_gives_root_written_files_to_the_data_dirs_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        std::fs::write(dir.path().join("tls/server.key"), b"x").unwrap();
        let uid = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap().uid();
        let mine = uid("tls/server.key");
        hand_back(dir.path()).unwrap();
        assert_eq!(uid("tls/server.key"), mine, "a data dir of our own is left alone");
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
            hand_back(dir.path()).unwrap();
            assert_eq!((uid("tls"), uid("tls/server.key")), (65534, 65534));
        }
    }
}
