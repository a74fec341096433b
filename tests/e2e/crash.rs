//! Nothing acknowledged is lost: kill -9 the daemon right after acks arrive, restart it on
//! the same data dir, and find every acknowledged message exactly once.

use crate::util::{client_tls, daemon_binary, Ws};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc {
    child: Child,
    port: u16,
    http: reqwest::Client,
    tls: std::sync::Arc<rustls::ClientConfig>,
}

async fn spawn(dir: &std::path::Path) -> Proc {
    let port = free_port();
    let mut child = Command::new(daemon_binary())
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--turn-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if let Ok(ca) = std::fs::read_to_string(dir.join("tls/ca.pem")) {
            let tls = client_tls(&ca);
            let http = reqwest::Client::builder().use_preconfigured_tls((*tls).clone()).build().unwrap();
            if http.get(format!("https://127.0.0.1:{port}/api/health")).send().await.is_ok() {
                return Proc { child, port, http, tls };
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("quickmeetd did not come up");
}

impl Drop for Proc {
    /// A failing test must not leave a daemon behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self.http.post(format!("https://127.0.0.1:{}{path}", self.port)).json(&body).send().await.unwrap();
        r.json().await.unwrap()
    }
    async fn ws(&self, token: &str) -> Ws {
        let url = format!("wss://127.0.0.1:{}/ws", self.port);
        let connector = tokio_tungstenite::Connector::Rustls(self.tls.clone());
        let (stream, _) =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector)).await.unwrap();
        let mut ws = Ws::new(stream);
        ws.send_json(json!({"type": "auth", "data": {"token": token}})).await;
        ws.expect("users:online-list").await;
        ws
    }
}

#[tokio::test]
async fn every_acknowledged_message_survives_kill_9_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path()).await;
    let a = p.post("/api/auth/signup", json!({"username": "alice", "password": "password1"})).await;
    let b = p.post("/api/auth/signup", json!({"username": "bob", "password": "password1"})).await;
    let (ta, tb) = (a["token"].as_str().unwrap().to_string(), b["token"].as_str().unwrap().to_string());
    let bob = b["user"]["id"].as_str().unwrap().to_string();
    let mut ws = p.ws(&ta).await;

    // Pipeline many sends, then kill the daemon the moment 200 acks are in.
    for i in 0..2000u64 {
        let frame = json!({"type": "message:send", "data": {"to": bob, "content": format!("m{i}"), "clientId": format!("c{i}")}, "ref": i + 1000});
        ws.stream.send(Message::Text(frame.to_string().into())).await.unwrap();
    }
    let mut acked: HashMap<String, String> = HashMap::new();
    while acked.len() < 200 {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.stream.next()).await.unwrap().unwrap().unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "ack" {
                assert!(v.get("error").is_none(), "{v}");
                let m = &v["data"]["message"];
                acked.insert(m["id"].as_str().unwrap().to_string(), m["content"].as_str().unwrap().to_string());
            }
        }
    }
    p.child.kill().unwrap(); // SIGKILL
    p.child.wait().unwrap();

    let p = spawn(dir.path()).await;
    let mut wb = p.ws(&tb).await;
    let mut stored: Vec<Value> = Vec::new();
    let mut since: Option<String> = None;
    loop {
        let ack = wb.request("sync", json!({"since": since})).await;
        let msgs = ack["data"]["messages"].as_array().unwrap().clone();
        since = msgs.last().map(|m| m["id"].as_str().unwrap().to_string());
        stored.extend(msgs);
        if !ack["data"]["hasMore"].as_bool().unwrap() {
            break;
        }
    }
    let mut count: HashMap<&str, usize> = HashMap::new();
    for m in &stored {
        *count.entry(m["clientId"].as_str().unwrap()).or_default() += 1;
    }
    assert!(count.values().all(|n| *n == 1), "a message was stored twice");
    let ids: HashMap<&str, &str> =
        stored.iter().map(|m| (m["id"].as_str().unwrap(), m["content"].as_str().unwrap())).collect();
    for (id, content) in &acked {
        assert_eq!(ids.get(id.as_str()), Some(&content.as_str()), "acknowledged message {content} was lost");
    }
    // Stored order is send order: m0, m1, … with no gaps.
    for (i, m) in stored.iter().enumerate() {
        assert_eq!(m["content"], format!("m{i}"));
    }
}
