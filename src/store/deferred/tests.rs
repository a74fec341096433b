//! The deferring backend against a file that logs what reaches it, with syncs that take a
//! while and can be made to fail.

use super::*;
use crate::error::{Error, Result};
use crate::store::recover::Opener;
use crate::store::{Store, WriteTx};
use redb::backends::FileBackend;
use redb::{Database, TableDefinition};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

const T: TableDefinition<u64, &str> = TableDefinition::new("test_deferred");
/// How long each sync of the logged file takes.
const SYNC_TAKES: Duration = Duration::from_millis(40);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Write,
    SyncStart,
    SyncEnd,
}

/// A file that logs its writes and syncs, whose syncs are slow, and fail while `fail` is set.
#[derive(Debug)]
struct Logged {
    file: FileBackend,
    log: Arc<Mutex<Vec<Event>>>,
    fail: Arc<AtomicBool>,
}

impl Logged {
    fn note(&self, e: Event) {
        self.log.lock().unwrap().push(e);
    }
}

impl Logged {
    fn wrapped(&self) -> &dyn StorageBackend {
        &self.file
    }
}

impl StorageBackend for Logged {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.note(Event::Write);
        self.file.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.note(Event::SyncStart);
        std::thread::sleep(SYNC_TAKES);
        if self.fail.load(SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.file.sync_data()?;
        self.note(Event::SyncEnd);
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.note(Event::Write);
        self.file.write(offset, data)
    }
    fn close(&self) -> io::Result<()> {
        self.file.close()
    }
    delegate_locks!(wrapped);
}

struct Fixture {
    store: Store,
    log: Arc<Mutex<Vec<Event>>>,
    fail: Arc<AtomicBool>,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let fail = Arc::new(AtomicBool::new(false));
        let path = dir.path().join("quickmeet.redb");
        let (l, f) = (log.clone(), fail.clone());
        let open = move || {
            let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
            let syncs = Syncs::new(Box::new(Logged { file: FileBackend::new(file)?, log: l.clone(), fail: f.clone() }));
            Ok((Database::builder().create_with_backend(syncs.backend())?, syncs))
        };
        let opener = Opener { open: Box::new(open), room: Box::new(|| true) };
        let store = Store::with_opener(dir.path(), opener, Error::from).unwrap();
        Fixture { store, log, fail, dir }
    }

    /// What reached the file since the last call.
    fn events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn put(store: &Store, k: u64, v: &str) -> Result<WriteTx> {
    let tx = store.begin_write()?;
    tx.open_table(T)?.insert(k, v)?;
    Ok(tx)
}

fn get(store: &Store, k: u64) -> Option<String> {
    let tx = store.begin_read().unwrap();
    let t = tx.open_table(T).unwrap();
    let v = t.get(k).unwrap().map(|v| v.value().to_string());
    v
}

#[test]
fn a_deferred_commit_returns_before_its_sync_and_the_next_commit_writes_only_after_it() {
    let f = Fixture::new();
    f.events();
    let first = put(&f.store, 1, "first").unwrap().commit_deferred().unwrap();
    let e = f.events();
    assert!(e.contains(&Event::Write), "{e:?}");
    assert!(!e.contains(&Event::SyncStart), "the commit synced: {e:?}");
    // Visible at once, durable once the ticket says so.
    assert_eq!(get(&f.store, 1).as_deref(), Some("first"));

    // The next commit's first write finishes the sync the first one left.
    let second = put(&f.store, 2, "second").unwrap().commit_deferred().unwrap();
    let e = f.events();
    assert_eq!(e[..2], [Event::SyncStart, Event::SyncEnd], "{e:?}");
    assert!(e[2..].iter().all(|e| *e == Event::Write), "{e:?}");
    first.wait().unwrap();
    assert!(f.events().is_empty(), "the first commit's sync was done already");
    second.wait().unwrap();
    assert_eq!(f.events(), [Event::SyncStart, Event::SyncEnd]);
}

#[test]
fn a_plain_commit_is_durable_when_it_returns_including_the_deferred_ones_before_it() {
    let f = Fixture::new();
    let deferred = put(&f.store, 1, "deferred").unwrap().commit_deferred().unwrap();
    f.events();
    put(&f.store, 2, "plain").unwrap().commit().unwrap();
    let e = f.events();
    // The deferred sync, the commit's writes, and its own sync before it returned.
    assert_eq!(e.first(), Some(&Event::SyncStart), "{e:?}");
    assert_eq!(e[e.len() - 2..], [Event::SyncStart, Event::SyncEnd], "{e:?}");
    let after_first_sync = e.iter().position(|e| *e == Event::SyncEnd).unwrap();
    assert!(e[..after_first_sync].iter().all(|e| *e != Event::Write), "{e:?}");
    deferred.wait().unwrap();
    assert!(f.events().is_empty());

    let Fixture { store, dir, .. } = f;
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(get(&store, 1).as_deref(), Some("deferred"));
    assert_eq!(get(&store, 2).as_deref(), Some("plain"));
}

#[test]
fn a_failed_sync_fails_its_ticket_and_every_later_commit_until_the_store_reopens() {
    let f = Fixture::new();
    put(&f.store, 1, "durable").unwrap().commit().unwrap();
    f.fail.store(true, SeqCst);
    let lost = put(&f.store, 2, "not durable").unwrap().commit_deferred().unwrap();
    assert!(lost.wait().is_err());
    // Not written on top of a commit that is not durable: a plain commit is refused too.
    f.fail.store(false, SeqCst);
    let refused = put(&f.store, 3, "after").and_then(|tx| tx.commit());
    assert_eq!(refused.unwrap_err().code(), "storage_full");
    // The next write reopens the file (at most once a second) and works again.
    std::thread::sleep(Duration::from_millis(1100));
    put(&f.store, 4, "reopened").unwrap().commit().unwrap();
    assert_eq!(get(&f.store, 1).as_deref(), Some("durable"));
    assert_eq!(get(&f.store, 3), None);
    assert_eq!(get(&f.store, 4).as_deref(), Some("reopened"));
}
