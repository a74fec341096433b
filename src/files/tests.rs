use super::*;
use crate::chat::{Kind, SendRequest, Target};
use crate::Core;

async fn core_with(tweak: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Core) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    tweak(&mut config);
    let core = Core::open(config).unwrap();
    (dir, core)
}

async fn user(c: &Core, name: &str) -> UserRecord {
    c.accounts.signup(name, "password1", None).await.unwrap().1
}

async fn store(c: &Core, who: &UserId, name: &str, bytes: &[u8]) -> Result<FileInfo> {
    let mut up = c.files.begin(who, Some(name)).await?;
    for chunk in bytes.chunks(7) {
        up.write(chunk).await?;
    }
    let checked = up.check().await?;
    Ok(c.files.commit_all(vec![checked]).await?.remove(0))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn file_msg(id: &FileId) -> SendRequest {
    SendRequest { kind: Some(Kind::File), file_id: Some(id.clone()), ..Default::default() }
}

#[tokio::test]
async fn a_stored_file_is_named_by_its_detected_type_not_its_given_name() {
    let (_d, c) = core_with(|_| {}).await;
    let a = user(&c, "alice").await;
    let f = store(&c, &a.id, "../../evil.exe", b"just some notes\n").await.unwrap();
    assert_eq!(f.mime_type, "text/plain; charset=utf-8");
    assert_eq!(f.original_name, "evil.exe");
    assert_eq!(f.filename, format!("{}.txt", f.id));
    assert_eq!(f.url, format!("/api/files/download/{}", f.filename));
    assert_eq!(std::fs::read(c.files.dir().join(&f.filename)).unwrap(), b"just some notes\n");
    assert_eq!(entries(&c.files.dir().join(".tmp")), Vec::<String>::new());
    assert_eq!(c.files.used_by(&a.id), 16);
}

#[tokio::test]
async fn a_large_upload_arrives_byte_for_byte_with_the_disk_started_on_the_way() {
    let (_d, c) = core_with(|_| {}).await;
    let a = user(&c, "alice").await;
    // 20 MB of text that never repeats a line, in chunks that straddle every buffer and
    // writeback boundary.
    let mut body = String::new();
    for i in 0.. {
        if body.len() >= 20_000_000 {
            break;
        }
        body.push_str(&format!("line {i} of a large upload\n"));
    }
    let mut up = c.files.begin(&a.id, Some("big.txt")).await.unwrap();
    for chunk in body.as_bytes().chunks(100_003) {
        up.write(chunk).await.unwrap();
    }
    // Writeback was asked for twice (at 8 and 16 MiB) before the upload ended.
    assert!(up.file.written_back >= 2 * upload::WRITEBACK_EVERY, "{}", up.file.written_back);
    let checked = up.check().await.unwrap();
    let f = c.files.commit_all(vec![checked]).await.unwrap().remove(0);
    assert_eq!(f.size, body.len() as u64);
    assert!(std::fs::read(c.files.dir().join(&f.filename)).unwrap() == body.as_bytes());
}

#[tokio::test]
async fn a_refused_or_abandoned_upload_leaves_nothing_and_gives_the_quota_back() {
    let (_d, c) = core_with(|_| {}).await;
    let a = user(&c, "alice").await;
    let e = store(&c, &a.id, "x.svg", b"<svg onload=alert(1)></svg>").await.unwrap_err();
    assert_eq!(e.code(), "unsupported_type");
    let mut up = c.files.begin(&a.id, Some("half.txt")).await.unwrap();
    up.write(b"half of it").await.unwrap();
    assert_eq!(entries(&c.files.dir().join(".tmp")).len(), 1);
    drop(up);
    assert_eq!(entries(c.files.dir()), vec![".tmp"]);
    assert_eq!(entries(&c.files.dir().join(".tmp")), Vec::<String>::new());
    assert_eq!(c.files.used_by(&a.id), 0);
}

#[tokio::test]
async fn size_and_quota_are_enforced_while_streaming() {
    let (_d, c) = core_with(|cfg| {
        cfg.max_upload_bytes = 1024;
        cfg.user_quota_bytes = 1500;
    })
    .await;
    let a = user(&c, "alice").await;
    let mut up = c.files.begin(&a.id, None).await.unwrap();
    up.write(&[b'a'; 1024]).await.unwrap();
    let e = up.write(b"a").await.unwrap_err();
    assert_eq!(e.code(), "file_too_large");
    assert!(e.to_string().contains("1 KiB"), "{e}");
    drop(up);
    store(&c, &a.id, "one.txt", &[b'a'; 1000]).await.unwrap();
    let e = store(&c, &a.id, "two.txt", &[b'b'; 1000]).await.unwrap_err();
    assert_eq!(e.code(), "quota_exceeded");
    assert!(e.to_string().contains("1000 bytes already used"), "{e}");
    assert_eq!(c.files.used_by(&a.id), 1000);
}

#[tokio::test]
async fn access_follows_the_messages_that_carry_the_file() {
    let (_d, c) = core_with(|_| {}).await;
    let (a, b, e) = (user(&c, "alice").await, user(&c, "bob").await, user(&c, "eve").await);
    let f = store(&c, &a.id, "n.txt", b"notes").await.unwrap();
    assert!(c.files.open_for(&a.id, &f.filename).await.is_ok());
    assert_eq!(c.files.open_for(&b.id, &f.filename).await.err().unwrap().code(), "not_found");
    // Bob cannot share what he cannot read; once Alice sends it, he can read and forward it.
    let err = c.chat.send(&b.id, Target::User(e.id.clone()), file_msg(&f.id)).await.unwrap_err();
    assert_eq!(err.code(), "not_found");
    let (m, _) = c.chat.send(&a.id, Target::User(b.id.clone()), file_msg(&f.id)).await.unwrap();
    assert_eq!(m.file.as_ref().unwrap().id, f.id);
    assert!(c.files.open_for(&b.id, &f.filename).await.is_ok());
    assert_eq!(c.files.open_for(&e.id, &f.filename).await.err().unwrap().code(), "not_found");
    // Group: members read it, and stop reading it when they leave.
    let g = c.groups.create(&a.id, "team", None, std::slice::from_ref(&e.id)).await.unwrap();
    c.chat.send(&a.id, Target::Group(g.id.clone()), file_msg(&f.id)).await.unwrap();
    assert!(c.files.open_for(&e.id, &f.filename).await.is_ok());
    c.groups.leave(&g.id, &e.id).await.unwrap();
    assert!(c.files.open_for(&e.id, &f.filename).await.is_err());
}

#[tokio::test]
async fn deleting_marks_messages_removed_and_only_the_uploader_or_an_admin_may() {
    let (_d, c) = core_with(|_| {}).await;
    let admin = user(&c, "root").await;
    assert_eq!(admin.role, Role::Admin);
    let (a, b, e) = (user(&c, "alice").await, user(&c, "bob").await, user(&c, "eve").await);
    let f = store(&c, &a.id, "n.txt", b"notes").await.unwrap();
    c.chat.send(&a.id, Target::User(b.id.clone()), file_msg(&f.id)).await.unwrap();
    assert_eq!(c.files.delete(&b, &f.filename).await.unwrap_err().code(), "not_uploader");
    assert_eq!(c.files.delete(&e, &f.filename).await.unwrap_err().code(), "not_found");
    c.files.delete(&a, &f.filename).await.unwrap();
    assert!(!c.files.dir().join(&f.filename).exists());
    assert_eq!(c.files.used_by(&a.id), 0);
    assert_eq!(c.files.delete(&a, &f.filename).await.unwrap_err().code(), "not_found");
    let page = c.chat.history(&b.id, &Target::User(a.id.clone()), None, 50).await.unwrap();
    let shown = page.messages[0].file.as_ref().unwrap();
    assert!(shown.removed);
    assert_eq!(shown.original_name, "n.txt");
    assert!(c.chat.sync(&b.id, None).await.unwrap().messages[0].file.as_ref().unwrap().removed);
    // A removed file cannot be sent again; an admin may delete anyone's file.
    assert_eq!(c.chat.send(&a.id, Target::User(b.id.clone()), file_msg(&f.id)).await.unwrap_err().code(), "not_found");
    let g = store(&c, &a.id, "m.txt", b"more").await.unwrap();
    c.files.delete(&admin, &g.filename).await.unwrap();
}

#[tokio::test]
async fn start_up_clears_temp_files_and_keeps_files_it_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    let (kept, orphan_name);
    {
        let c = Core::open(config.clone()).unwrap();
        let a = user(&c, "alice").await;
        kept = store(&c, &a.id, "k.txt", b"keep me").await.unwrap();
        c.chat.close().await;
    }
    let files = dir.path().join("files");
    std::fs::write(files.join(".tmp/leftover.part"), b"half").unwrap();
    orphan_name = format!("{}.png", uuid::Uuid::now_v7());
    std::fs::write(files.join(&orphan_name), b"not ours").unwrap();
    let c = Core::open(config).unwrap();
    assert_eq!(entries(&files.join(".tmp")), Vec::<String>::new());
    assert!(files.join(&orphan_name).exists(), "unknown files are reported, never deleted");
    assert_eq!(c.files.used_by(&kept.uploaded_by), 7);
    assert!(c.files.open_for(&kept.uploaded_by, &kept.filename).await.is_ok());
}

#[tokio::test]
async fn start_up_takes_back_a_commit_a_crash_interrupted_before_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    let kept;
    {
        let c = Core::open(config.clone()).unwrap();
        let a = user(&c, "alice").await;
        kept = store(&c, &a.id, "k.txt", b"keep me").await.unwrap();
        c.chat.close().await;
    }
    // A kill after the move into files/ but before the metadata commit leaves the file and
    // its marker; one after the commit but before the markers went leaves a stale marker.
    let files = dir.path().join("files");
    let unrecorded = format!("{}.txt", FileId::generate());
    std::fs::write(files.join(&unrecorded), b"never acknowledged").unwrap();
    std::fs::write(files.join(format!(".tmp/{unrecorded}{PENDING}")), b"").unwrap();
    std::fs::write(files.join(format!(".tmp/{}{PENDING}", kept.filename)), b"").unwrap();
    let c = Core::open(config).unwrap();
    assert_eq!(entries(&files), vec![".tmp".to_string(), kept.filename.clone()]);
    assert_eq!(entries(&files.join(".tmp")), Vec::<String>::new());
    assert_eq!(c.files.used_by(&kept.uploaded_by), 7);
    assert!(c.files.open_for(&kept.uploaded_by, &kept.filename).await.is_ok());
}

#[tokio::test]
async fn a_commit_leaves_no_marker_behind() {
    let (_d, c) = core_with(|_| {}).await;
    let a = user(&c, "alice").await;
    let f = store(&c, &a.id, "a.txt", b"abc").await.unwrap();
    assert_eq!(entries(c.files.dir()), vec![".tmp".to_string(), f.filename]);
    assert_eq!(entries(&c.files.dir().join(".tmp")), Vec::<String>::new());
}

#[test]
fn sizes_read_like_people_write_them() {
    assert_eq!(human_bytes(52_428_800), "50 MiB");
    assert_eq!(human_bytes(2 * 1024 * 1024 * 1024), "2 GiB");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(1000), "1000 bytes");
}
