//! Messaging journeys with real WebSocket clients: DMs, groups, presence, typing, receipts,
//! unread counts, pagination, idempotent resends and catch-up after a reconnect.

use crate::util::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn two_users_chat_and_the_senders_other_tab_sees_it_too() {
    let d = TestDaemon::start().await;
    let (ta, a) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let mut a1 = d.ws(&ta).await;
    let mut a2 = d.ws(&ta).await;
    let mut b1 = d.ws(&tb).await;
    let ack = a1.request("message:send", json!({"to": b, "content": "hi bob", "clientId": "c1"})).await;
    assert!(ack.get("error").is_none(), "{ack}");
    let msg = &ack["data"]["message"];
    assert_eq!(
        (msg["from"].as_str(), msg["to"].as_str(), msg["content"].as_str()),
        (Some(a.as_str()), Some(b.as_str()), Some("hi bob"))
    );
    let got = b1.expect("message:receive").await;
    assert_eq!(got["data"]["message"]["id"], msg["id"]);
    let other_tab = a2.expect("message:receive").await;
    assert_eq!(other_tab["data"]["message"]["id"], msg["id"]);
    a1.assert_no("message:receive", Duration::from_millis(300)).await;

    let ack = b1.request("message:send", json!({"to": a, "content": "hello alice"})).await;
    assert!(ack.get("error").is_none(), "{ack}");
    assert_eq!(a1.expect("message:receive").await["data"]["message"]["content"], "hello alice");

    // REST sends are delivered live too.
    let (s, _) = d.post("/api/messages", &tb, json!({"to": a, "content": "via rest"})).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(a1.expect("message:receive").await["data"]["message"]["content"], "via rest");
}

#[tokio::test]
async fn a_group_of_three_talks_and_a_stranger_hears_nothing() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let (tc, c) = d.user("carol").await;
    let (te, _) = d.user("eve").await;
    let (s, g) = d.post("/api/groups", &ta, json!({"name": "Team", "members": [b, c]})).await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gid = g["group"]["id"].as_str().unwrap().to_string();
    assert_eq!(g["group"]["members"].as_array().unwrap().len(), 3);
    let (mut wa, mut wb, mut wc, mut we) = (d.ws(&ta).await, d.ws(&tb).await, d.ws(&tc).await, d.ws(&te).await);

    let ack = wa.request("message:group:send", json!({"groupId": gid, "content": "standup"})).await;
    assert!(ack.get("error").is_none(), "{ack}");
    for w in [&mut wb, &mut wc] {
        let m = w.expect("message:group:receive").await;
        assert_eq!(m["data"]["message"]["content"], "standup");
        assert_eq!(m["data"]["message"]["groupId"], gid.as_str());
    }
    let refused = we.request("message:group:send", json!({"groupId": gid, "content": "let me in"})).await;
    assert!(refused["error"]["code"].is_string(), "{refused}");
    we.assert_no("message:group:receive", Duration::from_millis(300)).await;
    let (s, _) = d.get(&format!("/api/messages/group/{gid}"), &te).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Carol leaves: the next message no longer reaches her.
    let (s, _) = d.post(&format!("/api/groups/{gid}/leave"), &tc, json!({})).await;
    assert_eq!(s, StatusCode::OK);
    wa.request("message:group:send", json!({"groupId": gid, "content": "after carol left"})).await;
    assert_eq!(wb.expect("message:group:receive").await["data"]["message"]["content"], "after carol left");
    wc.assert_no("message:group:receive", Duration::from_millis(300)).await;

    // Only the group admin adds members; eve can join by herself.
    let (s, _) = d.post(&format!("/api/groups/{gid}/add-member"), &tb, json!({"userId": c})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = d.post(&format!("/api/groups/{gid}/add-member"), &ta, json!({"userId": c})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = d.post(&format!("/api/groups/{gid}/join"), &te, json!({})).await;
    assert_eq!((s, v["group"]["members"].as_array().unwrap().len()), (StatusCode::OK, 4));
    let (_, mine) = d.get("/api/groups", &te).await;
    assert_eq!(mine["groups"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn presence_follows_the_last_tab_of_a_user() {
    let d = TestDaemon::start().await;
    let (ta, a) = d.user("alice").await;
    let (tb, _) = d.user("bob").await;
    let mut wb = d.ws(&tb).await;
    let a1 = d.ws(&ta).await;
    assert_eq!(wb.expect("user:online").await["data"]["userId"], a.as_str());
    let a2 = d.ws(&ta).await;
    drop(a1);
    wb.assert_no("user:offline", Duration::from_millis(500)).await;
    let (_, active) = d.get("/api/users/active", &tb).await;
    assert!(active["users"].as_array().unwrap().iter().any(|u| u["id"] == a.as_str()));
    drop(a2);
    let off = wb.expect("user:offline").await;
    assert_eq!(off["data"]["userId"], a.as_str());
    assert!(off["data"]["lastSeen"].is_string());
    // Read straight after the event: the value is there before its durable write lands.
    let (_, user) = d.get(&format!("/api/users/{a}"), &tb).await;
    assert_eq!(user["user"]["online"], false);
    assert_eq!(user["user"]["lastSeen"], off["data"]["lastSeen"]);
}

#[tokio::test]
async fn typing_reaches_only_the_party_concerned() {
    let d = TestDaemon::start().await;
    let (ta, a) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let (tc, _) = d.user("carol").await;
    let (mut wa, mut wb, mut wc) = (d.ws(&ta).await, d.ws(&tb).await, d.ws(&tc).await);
    wa.send_json(json!({"type": "typing:start", "data": {"to": b}})).await;
    let t = wb.expect("typing:start").await;
    assert_eq!((t["data"]["from"].as_str(), t["data"]["to"].as_str()), (Some(a.as_str()), Some(b.as_str())));
    wa.send_json(json!({"type": "typing:stop", "data": {"to": b}})).await;
    wb.expect("typing:stop").await;
    wc.assert_no("typing:start", Duration::from_millis(300)).await;
    wa.assert_no("typing:start", Duration::from_millis(100)).await;
}

#[tokio::test]
async fn read_receipts_and_unread_counts() {
    let d = TestDaemon::start().await;
    let (ta, a) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let mut wa = d.ws(&ta).await;
    let mut wb = d.ws(&tb).await;
    for i in 0..3 {
        wa.request("message:send", json!({"to": b, "content": format!("m{i}")})).await;
    }
    let (_, unread) = d.get("/api/messages/unread/count", &tb).await;
    assert_eq!(unread["users"][&a], 3, "{unread}");
    let ack = wb.request("message:read", json!({"userId": a})).await;
    assert_eq!(ack["data"]["updated"], 3, "{ack}");
    let receipt = wa.expect("message:read").await;
    assert_eq!(
        (receipt["data"]["by"].as_str(), receipt["data"]["userId"].as_str()),
        (Some(b.as_str()), Some(a.as_str()))
    );
    assert!(receipt["data"]["readAt"].is_string() && receipt["data"]["upTo"].is_string());
    let (_, unread) = d.get("/api/messages/unread/count", &tb).await;
    assert!(unread["users"].get(&a).is_none(), "{unread}");
    let (_, page) = d.get(&format!("/api/messages/{b}"), &ta).await;
    assert!(page["messages"].as_array().unwrap().iter().all(|m| m["readAt"].is_string()), "{page}");

    // Groups: readBy lists who has read.
    let (_, g) = d.post("/api/groups", &ta, json!({"name": "G", "members": [b]})).await;
    let gid = g["group"]["id"].as_str().unwrap().to_string();
    wa.request("message:group:send", json!({"groupId": gid, "content": "hey"})).await;
    let (_, unread) = d.get("/api/messages/unread/count", &tb).await;
    assert_eq!(unread["groups"][&gid], 1);
    let (s, v) = d.call(Method::PUT, &format!("/api/messages/group/read/{gid}"), Some(&tb), None).await;
    assert_eq!((s, v["updated"].as_u64()), (StatusCode::OK, Some(1)));
    let notice = wa.expect("message:read").await;
    assert_eq!(notice["data"]["groupId"], gid.as_str());
    let (_, page) = d.get(&format!("/api/messages/group/{gid}"), &ta).await;
    assert_eq!(page["messages"][0]["readBy"], json!([b]));
}

#[tokio::test]
async fn history_of_120_messages_pages_back_in_order() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let mut wa = d.ws(&ta).await;
    for i in 0..120 {
        let ack = wa.request("message:send", json!({"to": b, "content": format!("m{i:03}")})).await;
        assert!(ack.get("error").is_none());
    }
    let a = wa.request("sync", json!({})).await["data"]["messages"][0]["from"].as_str().unwrap().to_string();
    let mut all: Vec<String> = Vec::new();
    let mut path = format!("/api/messages/{a}?limit=50");
    loop {
        let (s, page) = d.get(&path, &tb).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let msgs = page["messages"].as_array().unwrap();
        let mut contents: Vec<String> = msgs.iter().map(|m| m["content"].as_str().unwrap().to_string()).collect();
        contents.append(&mut all);
        all = contents;
        if !page["hasMore"].as_bool().unwrap() {
            break;
        }
        path = format!("/api/messages/{a}?limit=50&before={}", msgs[0]["id"].as_str().unwrap());
    }
    let want: Vec<String> = (0..120).map(|i| format!("m{i:03}")).collect();
    assert_eq!(all, want);
    for bad in ["?limit=0", "?limit=101", "?limit=abc", "?before=nope", "?other=1"] {
        let (s, _) = d.get(&format!("/api/messages/{a}{bad}"), &tb).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn a_resend_with_the_same_client_id_is_stored_once() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let body = json!({"to": b, "content": "once", "clientId": "k-1"});
    let (s1, m1) = d.post("/api/messages", &ta, body.clone()).await;
    let (s2, m2) = d.post("/api/messages", &ta, body.clone()).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(m1["message"]["id"], m2["message"]["id"]);
    let mut wa = d.ws(&ta).await;
    let ack = wa.request("message:send", body).await;
    assert_eq!(ack["data"]["message"]["id"], m1["message"]["id"]);
    let mut wb = d.ws(&tb).await;
    let sync = wb.request("sync", json!({})).await;
    assert_eq!(sync["data"]["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_reconnecting_client_catches_up_with_sync() {
    let d = TestDaemon::start().await;
    let (ta, a) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let mut wb = d.ws(&tb).await;
    let mut wa = d.ws(&ta).await;
    wa.request("message:send", json!({"to": b, "content": "before"})).await;
    let last = wb.expect("message:receive").await["data"]["message"]["id"].as_str().unwrap().to_string();
    drop(wb);
    let (_, g) = d.post("/api/groups", &ta, json!({"name": "G", "members": [b]})).await;
    let gid = g["group"]["id"].as_str().unwrap();
    wa.request("message:send", json!({"to": b, "content": "missed 1"})).await;
    wa.request("message:group:send", json!({"groupId": gid, "content": "missed 2"})).await;
    let mut wb = d.ws(&tb).await;
    let ack = wb.request("sync", json!({"since": last})).await;
    let got: Vec<&str> =
        ack["data"]["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(got, ["missed 1", "missed 2"]);
    assert_eq!(ack["data"]["hasMore"], false);
    assert_eq!(ack["data"]["messages"][0]["from"], a.as_str());
}
