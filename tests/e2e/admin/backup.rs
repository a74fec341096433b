//! Backups through the CLI: created online while the daemon serves, checked by `verify`
//! (which catches tampering), refused as a restore while the daemon runs, and restored into
//! a fresh data dir where a new daemon serves the same users, groups, messages and file
//! bytes through the API.

use super::{cli, cli_json};
use crate::util::{client_tls, test_config, TestDaemon};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Some kilobytes of UTF-8 text, so the file is more than a header in the archive.
fn notes() -> Vec<u8> {
    (0..2000).map(|i| format!("line {i}: ünïcode and numbers {}\n", i * 7919 % 1000)).collect::<String>().into_bytes()
}

/// An HTTPS client of a daemon started outside `TestDaemon`, with bearer-token helpers.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(running: &quickmeet_daemon::Running) -> Api {
        let http =
            reqwest::Client::builder().use_preconfigured_tls((*client_tls(&running.ca_pem)).clone()).build().unwrap();
        Api { http, base: format!("https://127.0.0.1:{}", running.addr.port()) }
    }

    async fn login(&self, username: &str) -> String {
        let resp = self
            .http
            .post(format!("{}/api/auth/login", self.base))
            .json(&json!({"username": username, "password": "password1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{username} logs in on the restored daemon");
        resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.unwrap()
    }

    async fn json(&self, path: &str, token: &str) -> Value {
        let resp = self.get(path, token).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        resp.json().await.unwrap()
    }
}

#[tokio::test]
async fn a_backup_restores_users_groups_messages_and_file_bytes_and_restore_refuses_a_running_daemon() {
    let d = TestDaemon::start().await;
    let (ta, a) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    d.post("/api/messages", &ta, json!({"to": b, "content": "backed up"})).await;
    let (_, g) = d.post("/api/groups", &ta, json!({"name": "Team", "members": [b]})).await;
    let gid = g["group"]["id"].as_str().unwrap().to_string();
    d.post("/api/messages/group", &tb, json!({"groupId": gid, "content": "group line"})).await;
    let bytes = notes();
    let part = Part::bytes(bytes.clone()).file_name("notes.txt").mime_str("text/plain").unwrap();
    let resp = d.http.post(d.url("/api/files/upload")).bearer_auth(&ta).multipart(Form::new().part("file", part));
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let file = resp.json::<Value>().await.unwrap()["file"].clone();
    let (s, v) = d.post("/api/messages", &ta, json!({"to": b, "kind": "file", "fileId": file["id"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let download = format!("/api/files/download/{}", file["filename"].as_str().unwrap());

    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("q.tar.zst");
    let archive_s = archive.to_str().unwrap();
    let m = cli_json(d.dir.path(), &["backup", "create", archive_s], "").await;
    let counts = &m["counts"];
    assert_eq!(
        (counts["users"].as_u64(), counts["groups"].as_u64(), counts["messages"].as_u64(), counts["files"].as_u64()),
        (Some(2), Some(1), Some(3), Some(1)),
        "{m}"
    );
    let entries = m["entries"].as_array().unwrap();
    let stored = entries.iter().find(|e| e["path"].as_str().unwrap().ends_with(file["filename"].as_str().unwrap()));
    assert_eq!(stored.expect("the uploaded file is in the archive")["size"], bytes.len(), "{m}");
    let (code, out_text, _) = cli(d.dir.path(), &["backup", "verify", archive_s], "").await;
    assert_eq!(code, 0);
    assert!(out_text.contains("1 files") && out_text.contains("checksums match"), "{out_text}");

    let (code, _, err) = cli(d.dir.path(), &["backup", "restore", archive_s, "--force"], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("is running") && err.contains("stop it first"), "{err}");

    let mut tampered = std::fs::read(&archive).unwrap();
    let n = tampered.len();
    tampered[n / 2] ^= 0xff;
    let broken = out.path().join("broken.tar.zst");
    std::fs::write(&broken, tampered).unwrap();
    assert_eq!(cli(d.dir.path(), &["backup", "verify", broken.to_str().unwrap()], "").await.0, 1);

    let fresh = out.path().join("restored");
    let (code, _, err) = cli(&fresh, &["backup", "restore", archive_s], "").await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&fresh, &["backup", "restore", archive_s], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("--force"), "{err}");

    let running = quickmeet_daemon::start(test_config(&fresh)).await.unwrap();
    let api = Api::new(&running);
    let tb = api.login("bob").await;
    let ta = api.login("alice").await;
    let users = api.json("/api/users", &tb).await;
    let names: Vec<&str> = users["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert!(names.contains(&"alice"), "{users}");
    let page = api.json(&format!("/api/messages/{a}"), &tb).await;
    let contents: Vec<&str> =
        page["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(contents.contains(&"backed up"), "{page}");
    let kinds: Vec<&str> = page["messages"].as_array().unwrap().iter().filter_map(|m| m["kind"].as_str()).collect();
    assert!(kinds.contains(&"file"), "{page}");
    let page = api.json(&format!("/api/messages/group/{gid}"), &tb).await;
    assert_eq!(page["messages"][0]["content"], "group line", "{page}");
    let group = api.json(&format!("/api/groups/{gid}"), &ta).await;
    assert_eq!(
        (group["group"]["name"].as_str(), group["group"]["members"].as_array().map(Vec::len)),
        (Some("Team"), Some(2))
    );
    for token in [&ta, &tb] {
        let resp = api.get(&download, token).await;
        assert_eq!(resp.status(), StatusCode::OK, "sender and recipient download the restored file");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice(), "byte for byte");
    }
    running.stop().await.unwrap();
}
