//! Kill -9 drills beyond chat messages: quickmeetd is SIGKILLed in the middle of concurrent
//! uploads (here), and in the middle of a burst of group changes ([`groups`]), then
//! restarted on the same data dir and port. Everything it acknowledged before dying must be
//! served afterwards, and nothing it had not finished may show.

mod groups;

use crate::util::{test_config, ChildDaemon};
use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const MIB: usize = 1024 * 1024;

/// How long a drill waits for the load it needs before it kills.
const SETTLE: Duration = Duration::from_secs(60);

/// SHA-256 of any bytes, as hex (the certificate fingerprint helper is just that).
fn sha256(bytes: &[u8]) -> String {
    quickmeet::certs::fingerprint(bytes)
}

/// `len` bytes of lowercase text lines, different for every `seed`: the type check takes
/// them for text/plain, and any truncation or mix-up changes the hash.
fn text(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for b in x.to_le_bytes() {
            out.push(if out.len() % 64 == 63 { b'\n' } else { b'a' + b % 26 });
        }
    }
    out.truncate(len);
    out
}

/// A part that sends the first half of `bytes` at about 1.5 MiB/s and holds the rest back
/// until `killed`: an upload certain to be mid-stream when the daemon dies.
fn held_back(bytes: Arc<Vec<u8>>, killed: watch::Receiver<bool>) -> Part {
    let (len, half) = (bytes.len(), bytes.len() / 2);
    let stream = futures_util::stream::unfold(Some(0usize), move |sent| {
        let (bytes, mut killed) = (bytes.clone(), killed.clone());
        async move {
            let sent = sent?;
            if sent == half {
                let _ = killed.wait_for(|k| *k).await;
                return Some((Err(std::io::Error::other("the daemon was killed")), None));
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
            let end = (sent + 64 * 1024).min(half);
            Some((Ok(Bytes::copy_from_slice(&bytes[sent..end])), Some(end)))
        }
    });
    Part::stream_with_length(reqwest::Body::wrap_stream(stream), len as u64)
}

/// Names in a folder.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

/// Temp files in `files/.tmp` that already hold bytes.
fn streaming(tmp: &Path) -> usize {
    std::fs::read_dir(tmp).unwrap().filter(|e| e.as_ref().unwrap().metadata().is_ok_and(|m| m.len() > 0)).count()
}

struct Upload {
    owner: usize,
    bytes: Arc<Vec<u8>>,
    slow: bool,
    /// The answer, when one came: status and body.
    answer: tokio::task::JoinHandle<Option<(StatusCode, Value)>>,
}

#[tokio::test]
async fn uploads_cut_by_kill_9_leave_no_trace_and_acknowledged_ones_survive_byte_for_byte() {
    let mut d = ChildDaemon::start().await;
    let users = [d.user("alice").await, d.user("bob").await];
    let (killed_tx, killed_rx) = watch::channel(false);

    // Eight uploads of 5 to 9.4 MiB from two users at once: four quick ones sent in one go,
    // four that stream half their bytes and then wait for the kill.
    let mut uploads = Vec::new();
    for i in 0..8usize {
        let (owner, slow) = (i % 2, i >= 4);
        let bytes = Arc::new(text(i as u64 + 1, 5 * MIB + i * 640 * 1024));
        let part = if slow { held_back(bytes.clone(), killed_rx.clone()) } else { Part::bytes(bytes.to_vec()) };
        let form = Form::new().part("file", part.file_name(format!("upload-{i}.txt")));
        let req = d.http.post(d.url("/api/files/upload")).bearer_auth(&users[owner].0).multipart(form);
        let answer = tokio::spawn(async move {
            let resp = req.send().await.ok()?;
            let status = resp.status();
            Some((status, resp.json().await.ok()?))
        });
        uploads.push(Upload { owner, bytes, slow, answer });
    }
    // Kill once two quick ones are acknowledged: the others may be streaming, checking or
    // committing, and the held-back ones are certainly mid-stream.
    let tmp = d.dir.path().join("files/.tmp");
    let deadline = Instant::now() + SETTLE;
    loop {
        let answered = uploads.iter().filter(|u| !u.slow && u.answer.is_finished()).count();
        let in_flight = streaming(&tmp);
        if answered >= 2 && in_flight >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "no kill point: {answered} quick ones answered, {in_flight} streaming");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    d.kill9();
    killed_tx.send(true).unwrap();

    let mut acked: BTreeSet<String> = BTreeSet::new();
    for (i, u) in uploads.iter_mut().enumerate() {
        let answer = tokio::time::timeout(Duration::from_secs(30), &mut u.answer).await.expect("never ended").unwrap();
        match answer {
            Some((StatusCode::CREATED, v)) if !u.slow => {
                assert_eq!(v["file"]["size"], u.bytes.len(), "{v}");
                acked.insert(v["file"]["filename"].as_str().unwrap().to_string());
            }
            Some((s, v)) => panic!("upload {i} was answered before the kill: {s} {v}"),
            None => {}
        }
    }
    assert!(acked.len() >= 2, "{acked:?}");

    // After the restart: nothing in files/.tmp; every acknowledged upload there; and any
    // other file is a complete upload its owner can download (one the daemon recorded but
    // could not answer before it died), never a part of one.
    d.restart().await;
    let files = d.dir.path().join("files");
    assert_eq!(names(&files.join(".tmp")), BTreeSet::new(), "unfinished uploads were left in files/.tmp");
    let mut stored = names(&files);
    stored.remove(".tmp");
    assert!(stored.is_superset(&acked), "acknowledged {acked:?}, stored {stored:?}");
    eprintln!("killed with {} of 4 quick uploads acknowledged; {} stored after the restart", acked.len(), stored.len());
    let mut usage = [0u64; 2];
    for name in &stored {
        let mut owners = Vec::new();
        for (owner, (token, _)) in users.iter().enumerate() {
            let resp =
                d.http.get(d.url(&format!("/api/files/download/{name}"))).bearer_auth(token).send().await.unwrap();
            if resp.status() == StatusCode::OK {
                owners.push((owner, sha256(&resp.bytes().await.unwrap())));
            }
        }
        let [(owner, hash)] = owners.as_slice() else { panic!("{name} is stored but downloadable by {owners:?}") };
        let upload = uploads.iter().find(|u| u.owner == *owner && sha256(&u.bytes) == *hash);
        let upload = upload.unwrap_or_else(|| panic!("{name} is not any whole upload of user {owner}"));
        assert!(!upload.slow, "{name} is a held-back upload, which never finished");
        usage[*owner] += upload.bytes.len() as u64;
    }
    // It serves uploads normally again.
    let form = Form::new().part("file", Part::bytes(b"after the kill\n".to_vec()).file_name("after.txt"));
    let resp = d.http.post(d.url("/api/files/upload")).bearer_auth(&users[1].0).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    usage[1] += b"after the kill\n".len() as u64;

    // No metadata was recorded for anything else: the quota usage rebuilt from the metadata
    // at start-up is exactly the bytes of the files served.
    d.kill9();
    let core = quickmeet::Core::open(test_config(d.dir.path())).unwrap();
    for (i, (_, id)) in users.iter().enumerate() {
        assert_eq!(core.files.used_by(&id.as_str().into()), usage[i], "bytes recorded for user {i}");
    }
    core.chat.close().await;
}
