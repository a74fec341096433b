//! File sharing journeys: uploads checked by content, byte-exact downloads with ranges,
//! access that follows the messages carrying a file, deletion, limits enforced while the
//! bytes stream, and requests crafted to escape the files folder.

use crate::util::{ChildDaemon, TestDaemon};
use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: u64 = 1024 * 1024;

/// A valid 2×2 RGB PNG: signature, IHDR, one stored-deflate IDAT, IEND, with real CRCs.
fn png() -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let raw: Vec<u8> = [[0u8, 255, 0, 0, 0, 255, 0], [0, 0, 0, 255, 255, 255, 255]].concat(); // filter byte + 2 pixels per row
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    zlib.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &[0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0]);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A valid one-page PDF with a correct cross-reference table.
fn pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
        "<< /Length 0 >>\nstream\n\nendstream",
    ];
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

fn part(name: &str, bytes: Vec<u8>, mime: &str) -> Part {
    Part::bytes(bytes).file_name(name.to_string()).mime_str(mime).unwrap()
}

async fn send_form(d: &TestDaemon, path: &str, token: &str, form: Form) -> (StatusCode, Value) {
    let resp = d.http.post(d.url(path)).bearer_auth(token).multipart(form).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn upload(d: &TestDaemon, token: &str, name: &str, bytes: Vec<u8>, mime: &str) -> (StatusCode, Value) {
    send_form(d, "/api/files/upload", token, Form::new().part("file", part(name, bytes, mime))).await
}

/// Uploads and returns the File object, asserting success.
async fn uploaded(d: &TestDaemon, token: &str, name: &str, bytes: Vec<u8>) -> Value {
    let (s, v) = upload(d, token, name, bytes, "application/octet-stream").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["file"].clone()
}

async fn download(d: &TestDaemon, token: &str, file: &Value, range: Option<&str>) -> reqwest::Response {
    let mut req = d.http.get(d.url(file["url"].as_str().unwrap())).bearer_auth(token);
    if let Some(r) = range {
        req = req.header(header::RANGE, r);
    }
    req.send().await.unwrap()
}

fn files_dir(d: &TestDaemon) -> PathBuf {
    d.dir.path().join("files")
}

/// Names in `files/` (without `.tmp`) and in `files/.tmp/`.
fn on_disk(d: &TestDaemon) -> (Vec<String>, Vec<String>) {
    let list = |p: PathBuf| -> Vec<String> {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".tmp")
            .collect()
    };
    (list(files_dir(d)), list(files_dir(d).join(".tmp")))
}

#[tokio::test]
async fn a_png_and_a_pdf_round_trip_byte_for_byte_with_safe_headers() {
    let d = TestDaemon::start().await;
    let (ta, a) = d.user("alice").await;
    let image = png();
    let f = uploaded(&d, &ta, "../holiday \"photo\".png", image.clone()).await;
    assert_eq!(f["mimeType"], "image/png");
    assert_eq!(f["originalName"], "holiday photo.png");
    assert_eq!(f["size"], image.len());
    assert_eq!(f["uploadedBy"], a.as_str());
    assert_eq!(f["removed"], false);
    let filename = f["filename"].as_str().unwrap();
    assert_eq!(filename, format!("{}.png", f["id"].as_str().unwrap()));
    assert_eq!(f["url"], format!("/api/files/download/{filename}"));

    let resp = download(&d, &ta, &f, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    assert_eq!(h[header::CONTENT_TYPE], "image/png");
    assert_eq!(
        h[header::CONTENT_DISPOSITION],
        "inline; filename=\"holiday photo.png\"; filename*=UTF-8''holiday%20photo.png"
    );
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[header::CONTENT_SECURITY_POLICY], "default-src 'none'; sandbox; frame-ancestors 'none'");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), image.as_slice());

    // Several at once: a PDF (downloaded as an attachment), a text file with a
    // non-ASCII name, and the PNG again under a misleading name and type.
    let document = pdf();
    let form = Form::new()
        .part("files", part("report.pdf", document.clone(), "text/html"))
        .part("files", part("notes – draft.txt", b"line one\nline two\n".to_vec(), "image/png"))
        .part("files", part("not-a-pdf.pdf", image.clone(), "application/pdf"));
    let (s, v) = send_form(&d, "/api/files/upload-multiple", &ta, form).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let files = v["files"].as_array().unwrap();
    let types: Vec<&str> = files.iter().map(|f| f["mimeType"].as_str().unwrap()).collect();
    assert_eq!(types, ["application/pdf", "text/plain; charset=utf-8", "image/png"]);
    assert!(files[2]["filename"].as_str().unwrap().ends_with(".png"));
    let resp = download(&d, &ta, &files[0], None).await;
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(
        resp.headers()[header::CONTENT_DISPOSITION],
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), document.as_slice());
    let resp = download(&d, &ta, &files[1], None).await;
    assert!(resp.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains("UTF-8''notes%20%E2%80%93%20draft.txt"));
    assert_eq!(on_disk(&d).0.len(), 4);
}

#[tokio::test]
async fn executables_and_markup_are_refused_whatever_they_are_called() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let mut elf = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open("/proc/self/exe").unwrap(), 64 * 1024),
        &mut elf,
    )
    .unwrap();
    assert!(elf.starts_with(b"\x7fELF"));
    let svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    for (name, bytes, mime) in [
        ("cat.png", elf.clone(), "image/png"),
        ("drawing.png", svg.to_vec(), "image/png"),
        ("page.txt", b"<!doctype html><html><script>alert(1)</script></html>".to_vec(), "text/plain"),
        ("setup.txt", b"#!/bin/sh\necho hi\n".to_vec(), "text/plain"),
    ] {
        let (s, v) = upload(&d, &ta, name, bytes, mime).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}: {v}");
        assert_eq!(v["error"]["code"], "unsupported_type", "{v}");
    }
    // One bad part refuses the whole request: nothing is stored.
    let form = Form::new()
        .part("files", part("ok.png", png(), "image/png"))
        .part("files", part("bad.png", svg.to_vec(), "image/png"));
    let (s, _) = send_form(&d, "/api/files/upload-multiple", &ta, form).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(on_disk(&d), (vec![], vec![]));
}

#[tokio::test]
async fn malformed_upload_requests_are_told_what_is_wrong() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let (s, v) = upload(&d, &ta, "empty.txt", Vec::new(), "text/plain").await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("empty_file")));
    let form = Form::new().part("attachment", part("a.txt", b"a".to_vec(), "text/plain"));
    let (s, v) = send_form(&d, "/api/files/upload", &ta, form).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unexpected_part")));
    let mut form = Form::new();
    for i in 0..11 {
        form = form.part("files", part(&format!("{i}.txt"), b"x".to_vec(), "text/plain"));
    }
    let (s, v) = send_form(&d, "/api/files/upload-multiple", &ta, form).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("too_many_files")));
    let (s, v) = d.post("/api/files/upload", &ta, json!({"file": "x"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_content_type")));
    let resp = d.http.post(d.url("/api/files/upload")).multipart(Form::new()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(on_disk(&d), (vec![], vec![]));
}

async fn oversized_upload_is_refused_while_streaming(h2: bool) {
    // A child process, so that its memory is measured apart from the other tests here.
    let d = ChildDaemon::start().await;
    let http = d.client(h2);
    let (token, _) = d.user("alice").await;
    let token = token.as_str();
    let form = Form::new().part("file", part("warm.txt", b"warm".to_vec(), "text/plain"));
    let warm = http.post(d.url("/api/files/upload")).bearer_auth(token).multipart(form).send().await.unwrap();
    assert_eq!(warm.status(), StatusCode::CREATED);

    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let total = 50 * MIB + 1;
    let chunks = (total / ZEROS.len() as u64) as usize; // 800 full chunks, then the one byte too many
    let stream = futures_util::stream::iter((0..=chunks).map(move |i| {
        Ok::<Bytes, std::io::Error>(if i < chunks {
            Bytes::from_static(&ZEROS)
        } else {
            Bytes::from_static(&ZEROS[..1])
        })
    }));
    let big = Part::stream_with_length(reqwest::Body::wrap_stream(stream), total).file_name("big.png");
    let (rss, peak) = (d.memory_kib("VmRSS:"), d.memory_kib("VmHWM:"));
    let started = std::time::Instant::now();
    let resp =
        http.post(d.url("/api/files/upload")).bearer_auth(token).multipart(Form::new().part("file", big)).send().await;
    let resp = resp.unwrap_or_else(|e| panic!("no answer over {}: {e:?}", if h2 { "h2" } else { "HTTP/1.1" }));
    let (rss2, peak2) = (d.memory_kib("VmRSS:"), d.memory_kib("VmHWM:"));
    eprintln!(
        "50 MiB + 1 byte over {}: {} after {:?}; daemon RSS {rss} -> {rss2} KiB, peak {peak} -> {peak2} KiB",
        if h2 { "h2" } else { "HTTP/1.1" },
        resp.status(),
        started.elapsed()
    );
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "file_too_large", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("50 MiB"), "{v}");
    assert!(peak2.saturating_sub(peak) < 16 * 1024, "peak RSS grew by {} KiB", peak2 - peak);
    assert!(rss2.saturating_sub(rss) < 16 * 1024, "RSS grew by {} KiB", rss2 - rss);
    let tmp: Vec<_> = std::fs::read_dir(d.dir.path().join("files/.tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "the refused upload's temp file is gone");
    assert_eq!(std::fs::read_dir(d.dir.path().join("files")).unwrap().count(), 2, "warm.txt and .tmp only");
}

/// Memory an upload frees must leave the daemon's RSS. The daemon's allocator commits its
/// arenas on demand (`systemd::tune_allocator`); committed up front, as it would be without
/// the constructor that sets this before anything allocates, freed memory stays resident
/// (4 × 50 MiB uploads: +11–14 MiB instead of +6–8). Only its own report shows which, so
/// this reads it: of the 1 GiB it reserves at start, a few MiB are committed, not all.
#[test]
fn the_daemon_commits_allocator_memory_on_demand() {
    let out = std::process::Command::new(crate::util::daemon_binary())
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let report = String::from_utf8_lossy(&out.stderr);
    let line = |name: &str| {
        report
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in the allocator's report:\n{report}"))
            .to_string()
    };
    assert!(line("reserved:").contains("GiB"), "{report}");
    assert!(line("committed:").contains("MiB"), "committed up front:\n{report}");
}

#[tokio::test]
async fn an_upload_over_50_mib_is_refused_while_it_streams_without_being_buffered() {
    oversized_upload_is_refused_while_streaming(true).await;
}

#[tokio::test]
async fn an_upload_over_50_mib_is_refused_over_http1_too() {
    oversized_upload_is_refused_while_streaming(false).await;
}

#[tokio::test]
async fn the_storage_quota_is_enforced_with_a_clear_message() {
    let d = TestDaemon::start_with(|c| {
        c.max_upload_bytes = 2048;
        c.user_quota_bytes = 4096;
    })
    .await;
    let (ta, _) = d.user("alice").await;
    let (tb, _) = d.user("bob").await;
    let first = uploaded(&d, &ta, "a.txt", vec![b'a'; 2000]).await;
    uploaded(&d, &ta, "b.txt", vec![b'b'; 2000]).await;
    let (s, v) = upload(&d, &ta, "c.txt", vec![b'c'; 200], "text/plain").await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("quota_exceeded")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("4 KiB"), "{v}");
    let (s, v) = upload(&d, &ta, "big.txt", vec![b'c'; 3000], "text/plain").await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("file_too_large")), "{v}");
    // Quotas are per user; deleting gives the space back.
    uploaded(&d, &tb, "b.txt", vec![b'b'; 2000]).await;
    let path = format!("/api/files/{}", first["filename"].as_str().unwrap());
    assert_eq!(d.call(Method::DELETE, &path, Some(&ta), None).await.0, StatusCode::NO_CONTENT);
    uploaded(&d, &ta, "c.txt", vec![b'c'; 200]).await;
    assert_eq!(on_disk(&d).1, Vec::<String>::new());
}

#[tokio::test]
async fn only_parties_to_a_message_carrying_the_file_may_download_it() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let (tc, c) = d.user("carol").await;
    let (te, _) = d.user("eve").await;
    let image = png();
    let f = uploaded(&d, &ta, "p.png", image.clone()).await;
    let fid = f["id"].as_str().unwrap();
    for t in [&tb, &tc, &te] {
        assert_eq!(download(&d, t, &f, None).await.status(), StatusCode::NOT_FOUND);
    }
    // Nobody can share a file they cannot read.
    let (s, _) = d.post("/api/messages", &te, json!({"to": b, "kind": "file", "fileId": fid})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, v) = d.post("/api/messages", &ta, json!({"to": b, "kind": "file", "fileId": fid, "content": "look"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!((v["message"]["kind"].as_str(), v["message"]["file"]["id"].as_str()), (Some("file"), Some(fid)));
    let resp = download(&d, &tb, &f, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), image.as_slice());
    assert_eq!(download(&d, &te, &f, None).await.status(), StatusCode::NOT_FOUND);

    // A group message over WebSocket opens it to the members, and only them.
    let (_, g) = d.post("/api/groups", &ta, json!({"name": "Team", "members": [c]})).await;
    let gid = g["group"]["id"].as_str().unwrap();
    let mut wa = d.ws(&ta).await;
    let ack = wa.request("message:group:send", json!({"groupId": gid, "fileId": fid})).await;
    assert!(ack.get("error").is_none(), "{ack}");
    assert_eq!(ack["data"]["message"]["file"]["filename"], f["filename"]);
    assert_eq!(download(&d, &tc, &f, None).await.status(), StatusCode::OK);
    assert_eq!(download(&d, &te, &f, None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_the_uploader_or_an_admin_deletes_and_messages_then_show_the_file_removed() {
    let d = TestDaemon::start().await;
    let (troot, _) = d.user("root").await; // the first account is the administrator
    let (ta, a) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let (te, _) = d.user("eve").await;
    let f = uploaded(&d, &ta, "p.png", png()).await;
    let (s, _) = d.post("/api/messages", &ta, json!({"to": b, "fileId": f["id"]})).await;
    assert_eq!(s, StatusCode::CREATED);
    let path = format!("/api/files/{}", f["filename"].as_str().unwrap());
    let (s, v) = d.call(Method::DELETE, &path, Some(&tb), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_uploader")));
    let (s, _) = d.call(Method::DELETE, &path, Some(&te), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = d.call(Method::DELETE, &path, Some(&ta), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(download(&d, &ta, &f, None).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(on_disk(&d).0, Vec::<String>::new());

    let (_, page) = d.get(&format!("/api/messages/{a}"), &tb).await;
    let m = &page["messages"][0];
    assert_eq!((m["kind"].as_str(), m["file"]["removed"].as_bool()), (Some("file"), Some(true)), "{m}");
    assert_eq!(m["file"]["originalName"], "p.png");
    let mut wb = d.ws(&tb).await;
    let ack = wb.request("sync", json!({})).await;
    assert_eq!(ack["data"]["messages"][0]["file"]["removed"], true, "{ack}");

    let g = uploaded(&d, &ta, "q.png", png()).await;
    let (s, _) =
        d.call(Method::DELETE, &format!("/api/files/{}", g["filename"].as_str().unwrap()), Some(&troot), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn range_requests_return_exactly_the_bytes_asked_for() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let text: Vec<u8> = (0..1000).map(|i| b'a' + (i % 26) as u8).collect();
    let f = uploaded(&d, &ta, "abc.txt", text.clone()).await;
    let resp = download(&d, &ta, &f, Some("bytes=10-19")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.headers()[header::CONTENT_RANGE], "bytes 10-19/1000");
    assert_eq!(resp.headers()[header::ACCEPT_RANGES], "bytes");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &text[10..20]);
    let resp = download(&d, &ta, &f, Some("bytes=-5")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &text[995..]);
    let resp = download(&d, &ta, &f, Some("bytes=990-")).await;
    assert_eq!(resp.headers()[header::CONTENT_RANGE], "bytes 990-999/1000");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &text[990..]);
    let resp = download(&d, &ta, &f, Some("bytes=1000-")).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.headers()[header::CONTENT_RANGE], "bytes */1000");
    let resp = download(&d, &ta, &f, Some("bytes=0-1,5-6")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().len(), 1000);
}

/// Opens a TLS connection that speaks HTTP/1.1 by hand (no URL normalisation on the way).
async fn raw_tls(d: &TestDaemon) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(d.tls.clone()).connect(name, tcp).await.unwrap()
}

/// Sends a request line exactly as written; returns the status and the raw response.
async fn raw_request(d: &TestDaemon, method: &str, target: &str, token: &str) -> (u16, Vec<u8>) {
    let mut s = raw_tls(d).await;
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let status = std::str::from_utf8(&out[9..12]).unwrap().parse().unwrap();
    (status, out)
}

#[tokio::test]
async fn traversal_attempts_never_reach_the_filesystem() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    uploaded(&d, &ta, "a.txt", b"mine".to_vec()).await;
    let key = std::fs::read(d.dir.path().join("jwt.key")).unwrap();
    let canary = b"CANARY-OUTSIDE-FILES";
    std::fs::write(d.dir.path().join("canary.txt"), canary).unwrap();
    for target in [
        "/api/files/download/..%2f..%2fetc%2fpasswd",
        "/api/files/download/..",
        "/api/files/download/%2e%2e",
        "/api/files/download/..%2fjwt.key",
        "/api/files/download/..%2Fcanary.txt",
        "/api/files/download/%2e%2e%2fcanary.txt",
        "/api/files/download/..%5ccanary.txt",
        "/api/files/download/../canary.txt",
        "/api/files/download/../../etc/passwd",
        "/api/files/download/.tmp",
        "/api/files/download/canary.txt%00.png",
        "/api/files/download/%ff%fe",
        "/api/files/download/%2fetc%2fpasswd",
    ] {
        let (status, body) = raw_request(&d, "GET", target, &ta).await;
        assert!(status == 404 || status == 400, "{target}: {status}");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("CANARY") && !text.contains("root:"), "{target} leaked: {text}");
        assert!(!body.windows(key.len()).any(|w| w == key.as_slice()), "{target} leaked the key");
    }
    for target in ["/api/files/..%2fcanary.txt", "/api/files/..%2fquickmeet.redb", "/api/files/.."] {
        let (status, _) = raw_request(&d, "DELETE", target, &ta).await;
        assert!(status == 404 || status == 400, "{target}: {status}");
    }
    assert_eq!(std::fs::read(d.dir.path().join("canary.txt")).unwrap(), canary);
    assert!(d.dir.path().join("quickmeet.redb").exists());
}

#[tokio::test]
async fn an_upload_cut_off_mid_stream_leaves_nothing_behind() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let boundary = "qmcutoffboundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"half.txt\"\r\nContent-Type: text/plain\r\n\r\n"
    );
    let file_len = 4 * MIB as usize;
    let total = head.len() + file_len + format!("\r\n--{boundary}--\r\n").len();
    let mut s = raw_tls(&d).await;
    let req = format!(
        "POST /api/files/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ta}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\n\r\n{head}"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let half = vec![b'x'; file_len / 2];
    s.write_all(&half).await.unwrap();
    s.flush().await.unwrap();
    // Wait until the daemon is writing the temp file, then vanish without finishing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while on_disk(&d).1.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the upload never reached the disk");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(s);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while on_disk(&d) != (vec![], vec![]) {
        assert!(tokio::time::Instant::now() < deadline, "left behind: {:?}", on_disk(&d));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_openapi_document_lists_the_file_routes() {
    let d = TestDaemon::start().await;
    let (s, v) = d.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = v["paths"].as_object().unwrap();
    for p in
        ["/api/files/upload", "/api/files/upload-multiple", "/api/files/download/{filename}", "/api/files/{filename}"]
    {
        assert!(paths.contains_key(p), "missing {p}");
    }
    let upload = &paths["/api/files/upload"]["post"]["requestBody"]["content"];
    assert!(upload.get("multipart/form-data").is_some(), "{upload}");
}

/// A body of `chunks` chunks of `size` text bytes, one every `every`: never a stall the
/// body timeout would notice.
fn trickle(chunks: usize, size: usize, every: Duration) -> Part {
    let stream = futures_util::stream::unfold(0, move |i| async move {
        if i == chunks {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(every).await;
        }
        Some((Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; size])), i + 1))
    });
    Part::stream_with_length(reqwest::Body::wrap_stream(stream), (chunks * size) as u64).file_name("slow.txt")
}

#[tokio::test]
async fn an_upload_slower_than_the_minimum_speed_is_stopped_with_408_and_leaves_nothing_behind() {
    let d = TestDaemon::start_with(|c| {
        c.upload_min_bytes_per_sec = 64 * 1024;
        c.upload_min_rate_grace_secs = 1;
    })
    .await;
    let (ta, a) = d.user("alice").await;
    let files = &d.running.as_ref().unwrap().state.core.files;
    let http1 = reqwest::Client::builder().use_preconfigured_tls((*d.tls).clone()).build().unwrap();
    for (client, version) in [(&d.http, "h2"), (&http1, "HTTP/1.1")] {
        // 2 KiB every 100 ms is 20 KiB/s, under the 64 KiB/s floor; unchecked, it would go
        // on for 30 s and then be stored.
        let started = std::time::Instant::now();
        let form = Form::new().part("file", trickle(300, 2048, Duration::from_millis(100)));
        let resp = client.post(d.url("/api/files/upload")).bearer_auth(&ta).multipart(form).send().await;
        let resp = resp.unwrap_or_else(|e| panic!("no answer over {version}: {e:?}"));
        let took = started.elapsed();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (StatusCode::REQUEST_TIMEOUT, Some("upload_too_slow")),
            "{v}"
        );
        assert!(v["error"]["message"].as_str().unwrap().contains("64 KiB/s"), "{v}");
        assert!(took < Duration::from_secs(8), "over {version} the trickle was stopped only after {took:?}");
        assert_eq!(on_disk(&d), (vec![], vec![]), "over {version} the refused upload left something behind");
        assert_eq!(files.used_by(&a.as_str().into()), 0, "its quota reservation was given back");
    }

    // Slow but short: within the grace period anything goes.
    let form = Form::new().part("file", trickle(2, 1024, Duration::from_millis(200)));
    let (s, v) = send_form(&d, "/api/files/upload", &ta, form).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // A normal upload of 512 KiB is nowhere near the floor.
    let f = uploaded(&d, &ta, "normal.txt", vec![b'n'; 512 * 1024]).await;
    assert_eq!(download(&d, &ta, &f, None).await.bytes().await.unwrap().len(), 512 * 1024);
    assert_eq!((on_disk(&d).0.len(), on_disk(&d).1.len()), (2, 0));
    assert_eq!(files.used_by(&a.as_str().into()), 2048 + 512 * 1024);

    let (_, doc) = d.call(Method::GET, "/api/openapi.json", None, None).await;
    for route in ["/api/files/upload", "/api/files/upload-multiple"] {
        let answers = &doc["paths"][route]["post"]["responses"];
        assert!(answers.get("408").is_some(), "{route} does not document its 408: {answers}");
    }
}
