use super::*;
use crate::chat::{SendRequest, Target};
use crate::config::Config;
use crate::Core;
use redb::TableHandle;

fn open(dir: &Path) -> Core {
    Core::open(Config { data_dir: dir.to_path_buf(), ..Config::default() }).unwrap()
}

/// A data dir with two users, a group, a direct and a group message and a stored file.
async fn populated() -> (tempfile::TempDir, Core) {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    crate::certs::ensure(dir.path(), &["127.0.0.1".into()], false).unwrap();
    let a = c.accounts.signup("alice", "password1", None).await.unwrap().1.id;
    let b = c.accounts.signup("bob", "password2", None).await.unwrap().1.id;
    let g = c.groups.create(&a, "Team", None, std::slice::from_ref(&b)).await.unwrap();
    let text = |s: &str| SendRequest { content: s.into(), ..Default::default() };
    c.chat.send(&a, Target::User(b.clone()), text("hello bob")).await.unwrap();
    c.chat.send(&b, Target::Group(g.id.clone()), text("hello team")).await.unwrap();
    std::fs::create_dir_all(dir.path().join("files/ab")).unwrap();
    std::fs::write(dir.path().join("files/ab/blob"), b"file bytes").unwrap();
    std::fs::write(dir.path().join("files/.tmp/half.part"), b"junk").unwrap();
    (dir, c)
}

fn backup(c: &Core) -> (Vec<u8>, Manifest) {
    let mut out = Vec::new();
    let m = create(&c.store, &mut out).unwrap();
    (out, m)
}

#[test]
fn the_backup_knows_every_table_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tx = store.begin_read().unwrap();
    for t in tx.list_tables().unwrap() {
        let name = t.name();
        assert!(
            tables::SKIPPED.contains(&name) || tables::TABLES.iter().any(|(n, _)| *n == name),
            "table {name} is not in backup::tables::TABLES"
        );
    }
}

#[tokio::test]
async fn a_backup_counts_and_checksums_what_it_holds_and_verifies() {
    let (dir, c) = populated().await;
    let (bytes, m) = backup(&c);
    assert_eq!((m.counts.users, m.counts.groups, m.counts.messages), (2, 1, 2));
    let paths: Vec<&str> = m.entries.iter().map(|e| e.path.as_str()).collect();
    for want in ["store/userid_user.jsonl", "files/ab/blob", "tls/ca.pem", "tls/server.key", "jwt.key"] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    assert!(!paths.iter().any(|p| p.contains(".tmp") || p.contains("redb")), "{paths:?}");
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".backup")));
    assert_eq!(verify(bytes.as_slice()).unwrap(), m);
}

#[tokio::test]
async fn a_tampered_or_truncated_archive_fails_verification() {
    let (_dir, c) = populated().await;
    let (bytes, m) = backup(&c);
    // Rewrite the archive with one file's content changed but its size kept.
    let mut tampered = Vec::new();
    {
        let mut t = tar::Builder::new(zstd::stream::write::Encoder::new(&mut tampered, 1).unwrap().auto_finish());
        let mut a = tar::Archive::new(zstd::stream::read::Decoder::new(bytes.as_slice()).unwrap());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            if path == Path::new("files/ab/blob") {
                data = b"FILE BYTES".to_vec();
            }
            t.append_data(&mut e.header().clone(), &path, data.as_slice()).unwrap();
        }
        t.finish().unwrap();
    }
    let e = verify(tampered.as_slice()).unwrap_err().to_string();
    assert!(e.contains("files/ab/blob") && e.contains("checksum"), "{e}");
    let e = verify(&bytes[..bytes.len() / 2]).unwrap_err().to_string();
    assert!(e.contains("truncated") || e.contains("damaged"), "{e}");
    assert!(verify(&b"not an archive"[..]).is_err());
    assert_eq!(m.format, FORMAT_VERSION);
}

#[tokio::test]
async fn a_restore_brings_back_users_groups_messages_and_files() {
    let (_dir, c) = populated().await;
    let (bytes, _) = backup(&c);
    let alice = c.accounts.find("alice").unwrap();
    let archive = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(archive.path(), &bytes).unwrap();

    let target = tempfile::tempdir().unwrap();
    let fresh = target.path().join("data");
    let m = restore(archive.path(), &fresh, false).unwrap();
    assert_eq!(m.counts.messages, 2);
    let r = open(&fresh);
    let (token, rec) = r.accounts.login("alice", "password1").await.unwrap();
    assert_eq!(rec.id, alice.id);
    let bob = r.accounts.find("bob").unwrap().id;
    let page = r.chat.history(&bob, &Target::User(alice.id.clone()), None, 50).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    // Message ids carry their seq under the database's own key, which the backup carries:
    // a cursor a client kept from before the restore still finds its place.
    let before = c.chat.sync(&bob, None).await.unwrap().messages;
    let after = r.chat.sync(&bob, Some(before[0].id.as_str())).await.unwrap().messages;
    assert_eq!(after.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["hello team"]);
    let g = r.groups.all().remove(0);
    assert_eq!(r.chat.history(&alice.id, &Target::Group(g.id), None, 50).await.unwrap().messages.len(), 1);
    assert_eq!(std::fs::read(fresh.join("files/ab/blob")).unwrap(), b"file bytes");
    // Same secrets, so tokens issued before the backup still verify.
    assert!(r.accounts.authenticate(&token).is_ok());
    let _ = c;
}

#[tokio::test]
async fn a_restore_refuses_a_database_in_use_and_existing_data_without_force() {
    let (dir, c) = populated().await;
    let (bytes, _) = backup(&c);
    let archive = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(archive.path(), &bytes).unwrap();
    let e = restore(archive.path(), dir.path(), true).unwrap_err().to_string();
    assert!(e.contains("quickmeetd running"), "{e}");
    c.chat.close().await;
    drop(c);
    let e = restore(archive.path(), dir.path(), false).unwrap_err();
    assert_eq!(e.code(), "data_exists");
    std::fs::write(dir.path().join("files/ab/blob"), b"changed").unwrap();
    restore(archive.path(), dir.path(), true).unwrap();
    assert_eq!(std::fs::read(dir.path().join("files/ab/blob")).unwrap(), b"file bytes");
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".restore")));
    open(dir.path()).accounts.login("bob", "password2").await.unwrap();
}

#[tokio::test]
async fn a_schema_4_backup_restores_with_its_unmerged_messages_indexed() {
    an_older_backup_restores(4).await;
}

#[tokio::test]
async fn a_schema_5_backup_restores_with_its_index_numbered() {
    an_older_backup_restores(5).await;
}

/// Rewrites a backup into what schema `version` (4 or 5) wrote, restores it and checks
/// every read.
async fn an_older_backup_restores(version: u64) {
    use crate::chat::data;
    use redb::ReadableTable;
    let (_dir, c) = populated().await;
    let alice = c.accounts.find("alice").unwrap().id;
    let bob = c.accounts.find("bob").unwrap().id;
    for i in 0..10 {
        let req = SendRequest { content: format!("m{i}"), ..Default::default() };
        c.chat.send(&alice, Target::User(bob.clone()), req).await.unwrap();
    }
    let (bytes, mut m) = backup(&c);
    // Schema 5 kept the per-conversation index by conversation key, in `conv_seq_sender`.
    // Schema 4 had no merged mark either: the messages after it were entries of
    // `recent_seq_conv_sender` instead. Both are read off a transaction never committed.
    let (mut index, mut recent) = (String::new(), String::new());
    {
        let tx = c.store.begin_write().unwrap();
        data::unnumber(&tx).unwrap();
        for row in tx.open_table(data::LEGACY_CONV_SEQ_SENDER).unwrap().iter().unwrap() {
            let (k, v) = row.unwrap();
            index += &format!("{}\n", serde_json::json!([[k.value().0, k.value().1], v.value()]));
        }
        let mark = tx.open_table(data::CHAT_MARK).unwrap().get("merged_seq").unwrap().map_or(0, |v| v.value());
        for row in tx.open_table(data::SEQ_MESSAGE).unwrap().range(mark + 1..).unwrap() {
            let (k, v) = row.unwrap();
            let r = data::Route::of(v.value()).unwrap();
            recent += &format!("{}\n", serde_json::json!([k.value(), [r.conv(), r.from()]]));
        }
    }
    assert!(!index.is_empty() && !recent.is_empty());
    // Table → its rows in the old backup (None: it had no such table).
    let mut old: Vec<(&str, Option<&str>)> =
        vec![("conv_number", None), ("convno_seq_sender", None), ("conv_seq_sender", Some(&index))];
    if version == 4 {
        old.extend([("chat_mark", None), ("recent_seq_conv_sender", Some(recent.as_str()))]);
    }
    m.schema_version = version;
    let old = with_tables(&bytes, &mut m, &old);
    let archive = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(archive.path(), &old).unwrap();
    let target = tempfile::tempdir().unwrap();
    assert_eq!(restore(archive.path(), target.path(), false).unwrap().schema_version, version);

    let r = open(target.path());
    let contents = |core: &Core| {
        let (core, alice, bob) = (core.clone(), alice.clone(), bob.clone());
        async move {
            let page = core.chat.history(&bob, &Target::User(alice), None, 50).await.unwrap();
            (
                page.messages.into_iter().map(|m| m.content).collect::<Vec<_>>(),
                core.chat.unread(&bob).await.unwrap().users,
            )
        }
    };
    assert_eq!(contents(&r).await, contents(&c).await);
    assert_eq!(contents(&r).await.0.len(), 11);
    // Nothing of the old schema is left: the restored store backs up again.
    let tx = r.store.begin_read().unwrap();
    assert!(tx.list_tables().unwrap().all(|t| !tables::LEGACY.iter().any(|(n, _, _)| *n == t.name())));
    drop(tx);
    backup(&r);
}

/// `backup` as a backup with `tables` (table → its rows; `None`: no such table) instead of
/// the ones of those names it has, and `m` as its manifest.
fn with_tables(backup: &[u8], m: &mut Manifest, tables: &[(&str, Option<&str>)]) -> Vec<u8> {
    for (table, rows) in tables {
        let path = format!("store/{table}.jsonl");
        m.tables.remove(*table);
        m.entries.retain(|e| e.path != path);
        if let Some(rows) = rows {
            m.tables.insert(table.to_string(), rows.lines().count() as u64);
            m.entries.push(Entry { path, size: rows.len() as u64, sha256: hex(Sha256::digest(rows)) });
        }
    }
    let mut archive = Vec::new();
    {
        let mut t = tar::Builder::new(zstd::stream::write::Encoder::new(&mut archive, 1).unwrap().auto_finish());
        let mut a = tar::Archive::new(zstd::stream::read::Decoder::new(backup).unwrap());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            if path == MANIFEST {
                // The manifest comes last: the tables go in before it.
                for (table, rows) in tables.iter().filter_map(|(t, r)| r.map(|r| (t, r))) {
                    let mut h = header(rows.len() as u64, 0o600);
                    t.append_data(&mut h, format!("store/{table}.jsonl"), rows.as_bytes()).unwrap();
                }
                let json = serde_json::to_vec_pretty(&*m).unwrap();
                t.append_data(&mut header(json.len() as u64, 0o644), MANIFEST, json.as_slice()).unwrap();
            } else if !tables.iter().any(|(table, _)| path == format!("store/{table}.jsonl")) {
                t.append_data(&mut e.header().clone(), &path, data.as_slice()).unwrap();
            }
        }
        t.finish().unwrap();
    }
    archive
}

#[tokio::test]
async fn a_backup_of_the_current_schema_with_a_table_it_dropped_is_refused_and_changes_nothing() {
    let (_dir, c) = populated().await;
    let (bytes, mut m) = backup(&c);
    let alice = c.accounts.find("alice").unwrap().id;
    // Schema 6 dropped `conv_seq_sender`: loaded, it would stay, and every later backup of
    // the restored store would fail on it.
    let rows = format!("{}\n", serde_json::json!([["dm:x", 1], alice.as_str()]));
    let archive = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(archive.path(), with_tables(&bytes, &mut m, &[("conv_seq_sender", Some(&rows))])).unwrap();
    let target = tempfile::tempdir().unwrap();
    let err = restore(archive.path(), target.path(), false).unwrap_err();
    assert!(matches!(err, Error::Invalid("invalid_backup", _)), "{err:?}");
    assert!(err.to_string().contains("conv_seq_sender"), "{err}");
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0, "the data dir stays empty");
    // The same archive without that table restores.
    std::fs::write(archive.path(), with_tables(&bytes, &mut m, &[("conv_seq_sender", None)])).unwrap();
    restore(archive.path(), target.path(), false).unwrap();
    backup(&open(target.path()));
}
