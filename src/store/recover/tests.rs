//! Recovery against a simulated full disk: a file backend whose writes fail with ENOSPC
//! while a switch is on, and an opener that counts how often the database was opened.

use super::*;
use crate::store::Store;
use redb::backends::FileBackend;
use redb::{StorageBackend, TableDefinition};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

const T: TableDefinition<u64, &str> = TableDefinition::new("test_recover");

/// A file whose writes fail as on a full disk while `full` is set.
#[derive(Debug)]
struct Disk {
    file: FileBackend,
    full: Arc<AtomicBool>,
}

impl Disk {
    fn room(&self) -> std::io::Result<()> {
        match self.full.load(SeqCst) {
            true => Err(std::io::Error::from_raw_os_error(libc::ENOSPC)),
            false => Ok(()),
        }
    }
}

impl Disk {
    fn wrapped(&self) -> &dyn StorageBackend {
        &self.file
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.room()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.room()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.room()?;
        self.file.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.file.close()
    }
    delegate_locks!(wrapped);
}

/// A store on a [`Disk`], holding key 0 = "seed".
struct Fixture {
    store: Store,
    /// The disk refuses writes, and reports no room.
    full: Arc<AtomicBool>,
    /// Opening the database fails, as if the disk filled up again during the reopen.
    refuse_open: Arc<AtomicBool>,
    opens: Arc<AtomicUsize>,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let full = Arc::new(AtomicBool::new(false));
        let refuse_open = Arc::new(AtomicBool::new(false));
        let opens = Arc::new(AtomicUsize::new(0));
        let path = dir.path().join("quickmeet.redb");
        let (f, r, o) = (full.clone(), refuse_open.clone(), opens.clone());
        let open = move || {
            o.fetch_add(1, SeqCst);
            if r.load(SeqCst) {
                return Err(DatabaseError::Storage(StorageError::Io(std::io::Error::other("refused"))));
            }
            let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
            let syncs = Syncs::new(Box::new(Disk { file: FileBackend::new(file)?, full: f.clone() }));
            Ok((Database::builder().create_with_backend(syncs.backend())?, syncs))
        };
        let f = full.clone();
        let opener = Opener { open: Box::new(open), room: Box::new(move || !f.load(SeqCst)) };
        let store = Store::with_opener(dir.path(), opener, Error::from).unwrap();
        put(&store, 0, "seed").unwrap();
        Fixture { store, full, refuse_open, opens, dir }
    }

    fn opens(&self) -> usize {
        self.opens.load(SeqCst)
    }

    /// Fills the disk, fails a commit (which poisons the handle), and frees the disk.
    fn fail_a_commit(&self) {
        self.full.store(true, SeqCst);
        assert_eq!(put(&self.store, 1, "failed").unwrap_err().code(), "storage_full");
        self.full.store(false, SeqCst);
    }
}

fn put(store: &Store, k: u64, v: &str) -> Result<()> {
    let tx = store.begin_write()?;
    tx.open_table(T)?.insert(k, v)?;
    tx.commit()
}

fn get(store: &Store, k: u64) -> Result<Option<String>> {
    let tx = store.begin_read()?;
    let t = tx.open_table(T)?;
    let v = t.get(k)?.map(|v| v.value().to_string());
    Ok(v)
}

#[test]
fn a_write_after_a_disk_error_reopens_the_database_once_there_is_room_and_loses_nothing() {
    let f = Fixture::new();
    put(&f.store, 2, "acked").unwrap();
    f.full.store(true, SeqCst);
    assert_eq!(put(&f.store, 3, "failed").unwrap_err().code(), "storage_full");
    // Still full: refused without closing the handle, so reads keep working.
    assert_eq!(put(&f.store, 4, "failed").unwrap_err().code(), "storage_full");
    assert_eq!(get(&f.store, 2).unwrap().as_deref(), Some("acked"));
    assert_eq!(f.opens(), 1);

    // Room again: within a second of the last attempt the write is still refused…
    f.full.store(false, SeqCst);
    assert_eq!(put(&f.store, 5, "failed").unwrap_err().code(), "storage_full");
    assert_eq!(f.opens(), 1);
    // …then the next one reopens the database and succeeds.
    std::thread::sleep(RETRY_EVERY);
    put(&f.store, 6, "after").unwrap();
    assert_eq!(f.opens(), 2);
    put(&f.store, 7, "after").unwrap();
    assert_eq!(f.opens(), 2);

    let expect = [(0, Some("seed")), (2, Some("acked")), (3, None), (4, None), (5, None), (6, Some("after"))];
    for (k, v) in expect {
        assert_eq!(get(&f.store, k).unwrap().as_deref(), v, "key {k}");
    }
    // The file itself holds exactly that, as the next daemon start would see it.
    let Fixture { store, dir, .. } = f;
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    for (k, v) in expect {
        assert_eq!(get(&store, k).unwrap().as_deref(), v, "key {k} after a restart");
    }
}

#[test]
fn concurrent_writes_after_a_disk_error_reopen_the_database_once() {
    let f = Fixture::new();
    f.fail_a_commit();
    let writers: Vec<_> = (10..18)
        .map(|k| {
            let store = f.store.clone();
            std::thread::spawn(move || put(&store, k, "concurrent"))
        })
        .collect();
    for w in writers {
        w.join().unwrap().unwrap();
    }
    assert_eq!(f.opens(), 2);
    for k in 10..18 {
        assert_eq!(get(&f.store, k).unwrap().as_deref(), Some("concurrent"));
    }
    assert_eq!(get(&f.store, 1).unwrap(), None);
}

#[test]
fn a_recovery_waits_for_reads_still_running_on_the_old_handle() {
    let f = Fixture::new();
    f.fail_a_commit();
    let read = f.store.begin_read().unwrap();
    let store = f.store.clone();
    let writer = std::thread::spawn(move || {
        put(&store, 2, "after").unwrap();
        Instant::now()
    });
    std::thread::sleep(Duration::from_millis(300));
    // The old handle is still open under the read: closing it would fail this.
    assert_eq!(read.open_table(T).unwrap().get(0).unwrap().unwrap().value(), "seed");
    assert_eq!(f.opens(), 1);
    let released = Instant::now();
    drop(read);
    let reopened = writer.join().unwrap();
    assert!(reopened >= released);
    assert_eq!(f.opens(), 2);
    assert_eq!(get(&f.store, 2).unwrap().as_deref(), Some("after"));
}

#[test]
fn a_failed_reopen_is_retried_by_the_next_transaction() {
    let f = Fixture::new();
    f.fail_a_commit();
    f.refuse_open.store(true, SeqCst);
    assert_eq!(put(&f.store, 2, "failed").unwrap_err().code(), "unavailable");
    // The old handle is closed and no new one is open: reads say the store is reopening.
    let e = get(&f.store, 0).unwrap_err();
    assert_eq!(e.to_string(), POISONED);
    assert_eq!(f.opens(), 2);

    f.refuse_open.store(false, SeqCst);
    std::thread::sleep(RETRY_EVERY);
    assert_eq!(get(&f.store, 0).unwrap().as_deref(), Some("seed"));
    assert_eq!(f.opens(), 3);
    put(&f.store, 3, "after").unwrap();
    assert_eq!(get(&f.store, 2).unwrap(), None);
    assert_eq!(get(&f.store, 3).unwrap().as_deref(), Some("after"));
}
