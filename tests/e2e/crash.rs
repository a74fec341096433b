//! Nothing acknowledged is lost: kill -9 the daemon right after acks arrive, restart it on
//! the same data dir, and find every acknowledged message exactly once.

use crate::util::ChildDaemon;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn every_acknowledged_message_survives_kill_9_exactly_once() {
    let mut p = ChildDaemon::start().await;
    let (ta, _) = p.user("alice").await;
    let (tb, bob) = p.user("bob").await;
    let mut ws = p.ws(&ta).await;

    // Pipeline many sends, then kill the daemon the moment 200 acks are in. Fewer than a
    // connection's burst of chat frames (600, a minute's worth): beyond it sends are
    // refused as rate limited, and one let through later, once a token came back, would
    // leave a gap that says nothing about durability.
    for i in 0..500u64 {
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
    p.kill9();

    p.restart().await;
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
