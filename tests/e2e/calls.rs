//! Calls proven with real WebRTC peers signaling through the daemon's WebSocket, directly
//! and relayed by the embedded TURN server, plus the signaling rules: busy, reject,
//! timeout, disconnect, group mesh limits and strangers kept out.

use crate::rtc::{ice_servers, open_channel, wait_open, Peer};
use crate::util::{TestDaemon, Ws};
use serde_json::{json, Value};
use std::time::Duration;

async fn call_and_connect(d: &TestDaemon, relay_only: bool) {
    let (ta, a) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let (mut wa, mut wb) = (d.ws(&ta).await, d.ws(&tb).await);
    let (_, ice_a) = d.get("/api/ice-servers", &ta).await;
    let (_, ice_b) = d.get("/api/ice-servers", &tb).await;
    let mut pa = Peer::new(ice_servers(&ice_a), relay_only).await;
    let mut pb = Peer::new(ice_servers(&ice_b), relay_only).await;
    let (dc, mut replies) = open_channel(&pa.pc, "chat").await;

    let offer = pa.offer().await;
    if relay_only {
        assert!(offer.contains("typ relay"), "no relay candidate gathered: {offer}");
        assert!(!offer.contains("typ host"), "relay-only peer offered host candidates");
    }
    let ack = wa.request("call:offer", json!({"to": b, "callId": "call-1", "callType": "video", "sdp": offer})).await;
    assert!(ack.get("error").is_none(), "{ack}");
    let ring = wb.expect("call:offer").await;
    assert_eq!((ring["data"]["from"].as_str(), ring["data"]["callType"].as_str()), (Some(a.as_str()), Some("video")));
    let answer = pb.answer(ring["data"]["sdp"].as_str().unwrap()).await;
    let ack = wb.request("call:answer", json!({"to": a, "callId": "call-1", "sdp": answer})).await;
    assert!(ack.get("error").is_none(), "{ack}");
    let got = wa.expect("call:answer").await;
    pa.accept_answer(got["data"]["sdp"].as_str().unwrap()).await;

    pa.wait_connected().await;
    pb.wait_connected().await;
    wait_open(&dc).await;
    if relay_only {
        // Every byte between the two now crosses the TURN server: 20 KB out must show up
        // as at least that much relayed.
        let turn = d.running.as_ref().unwrap().state.turn.clone().expect("embedded TURN runs");
        let before = turn.stats.relayed_bytes();
        for i in 0..20 {
            dc.send_text(format!("{i:04}{}", "x".repeat(996))).await.unwrap();
        }
        for i in 0..20 {
            pb.expect_message(&format!("{i:04}{}", "x".repeat(996))).await;
        }
        for _ in 0..20 {
            tokio::time::timeout(Duration::from_secs(10), replies.recv()).await.unwrap().unwrap();
        }
        let relayed = turn.stats.relayed_bytes() - before;
        assert!(relayed >= 20_000, "only {relayed} bytes went through TURN");
    }
    dc.send_text("hello over webrtc".to_string()).await.unwrap();
    pb.expect_message("hello over webrtc").await;
    let echo = tokio::time::timeout(Duration::from_secs(10), replies.recv()).await.unwrap().unwrap();
    assert_eq!(echo, "echo:hello over webrtc");
    let sender = pa.stream_rtp(b"frame-from-alice");
    pb.expect_rtp(b"frame-from-alice").await;
    let sender_b = pb.stream_rtp(b"frame-from-bob");
    pa.expect_rtp(b"frame-from-bob").await;
    sender.abort();
    sender_b.abort();

    // Media state goes to the peer; hanging up reaches the peer.
    wa.request("media:state", json!({"callId": "call-1", "audio": false, "video": true, "screen": false})).await;
    let m = wb.expect("media:state").await;
    assert_eq!((m["data"]["from"].as_str(), m["data"]["audio"].as_bool()), (Some(a.as_str()), Some(false)));
    wb.request("call:end", json!({"to": a, "callId": "call-1"})).await;
    assert_eq!(wa.expect("call:end").await["data"]["from"], b.as_str());
    pa.pc.close().await.unwrap();
    pb.pc.close().await.unwrap();
}

#[tokio::test]
async fn two_users_call_and_exchange_data_and_rtp() {
    let d = TestDaemon::start().await;
    call_and_connect(&d, false).await;
}

#[tokio::test]
async fn a_relay_only_call_goes_through_the_embedded_turn_server() {
    let d = TestDaemon::start().await;
    call_and_connect(&d, true).await;
}

#[tokio::test]
async fn ice_servers_point_at_the_address_used_with_working_credentials() {
    let d = TestDaemon::start().await;
    let (ta, a) = d.user("alice").await;
    let (s, v) = d.get("/api/ice-servers", &ta).await;
    assert_eq!(s, reqwest::StatusCode::OK);
    let port = d.running.as_ref().unwrap().state.turn.as_ref().unwrap().addr.port();
    assert_eq!(v["iceServers"][0]["urls"][0], format!("stun:127.0.0.1:{port}"));
    assert_eq!(v["iceServers"][1]["urls"][0], format!("turn:127.0.0.1:{port}?transport=udp"));
    let username = v["iceServers"][1]["username"].as_str().unwrap();
    assert!(username.ends_with(&format!(":{a}")), "{username}");
    assert!(v["ttl"].as_u64().unwrap() >= 60);
    let (s, _) = d.call(reqwest::Method::GET, "/api/ice-servers", None, None).await;
    assert_eq!(s, reqwest::StatusCode::UNAUTHORIZED);
}

/// Tries a TURN allocation with the given credentials; true when the server grants one.
async fn allocate(server: std::net::SocketAddr, username: &str, password: &str) -> bool {
    let conn = std::sync::Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let client = turn::client::Client::new(turn::client::ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: username.to_string(),
        password: password.to_string(),
        realm: "quickmeet".to_string(),
        software: String::new(),
        rto_in_ms: 100,
        conn,
        vnet: None,
    })
    .await
    .unwrap();
    client.listen().await.unwrap();
    let ok = tokio::time::timeout(Duration::from_secs(10), client.allocate()).await.map(|r| r.is_ok()).unwrap_or(false);
    let _ = client.close().await;
    ok
}

#[tokio::test]
async fn expired_or_forged_turn_credentials_are_refused() {
    let d = TestDaemon::start().await;
    let (ta, a) = d.user("alice").await;
    let (_, v) = d.get("/api/ice-servers", &ta).await;
    let server = d.running.as_ref().unwrap().state.turn.as_ref().unwrap().addr;
    let (user, pass) =
        (v["iceServers"][1]["username"].as_str().unwrap(), v["iceServers"][1]["credential"].as_str().unwrap());
    assert!(allocate(server, user, pass).await, "valid credentials must allocate");
    assert!(!allocate(server, user, "Zm9yZ2VkIHBhc3N3b3Jk").await, "a forged password allocated");
    let expired = format!("{}:{a}", quickmeet::clock::unix_now() - 10);
    let creds = &d.running.as_ref().unwrap().state.ice.creds;
    assert!(!allocate(server, &expired, &creds.password(&expired)).await, "an expired credential allocated");
    let stranger = format!("{}:no-such-user", quickmeet::clock::unix_now() + 600);
    assert!(!allocate(server, &stranger, &creds.password(&stranger)).await, "a credential for no user allocated");
}

async fn join(w: &mut Ws, gid: &str) -> Value {
    w.request("group-call:join", json!({"groupId": gid})).await
}

#[tokio::test]
async fn three_members_connect_a_full_mesh_and_a_non_member_is_refused() {
    let d = TestDaemon::start().await;
    let names = ["ann", "ben", "cat"];
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for n in names {
        let (t, id) = d.user(n).await;
        tokens.push(t);
        ids.push(id);
    }
    let (_, g) = d.post("/api/groups", &tokens[0], json!({"name": "Mesh", "members": [ids[1], ids[2]]})).await;
    let gid = g["group"]["id"].as_str().unwrap().to_string();
    let mut ws = Vec::new();
    let mut peers = Vec::new();
    for t in &tokens {
        ws.push(d.ws(t).await);
        let (_, ice) = d.get("/api/ice-servers", t).await;
        peers.push(Peer::new(ice_servers(&ice), false).await);
    }
    assert_eq!(join(&mut ws[0], &gid).await["data"]["peers"], json!([]));
    // Each newcomer offers to everyone already in the call.
    let mut channels = Vec::new();
    for newcomer in 1..3 {
        let ack = join(&mut ws[newcomer], &gid).await;
        let existing: Vec<String> =
            ack["data"]["peers"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
        assert_eq!(existing.len(), newcomer);
        for (i, id) in ids.iter().enumerate().take(newcomer) {
            assert!(existing.contains(id));
            assert_eq!(ws[i].expect("group-call:peer-joined").await["data"]["userId"], ids[newcomer].as_str());
            // One peer connection per pair: the newcomer's peer object for this pair.
            let (ice_n, ice_i) =
                (d.get("/api/ice-servers", &tokens[newcomer]).await.1, d.get("/api/ice-servers", &tokens[i]).await.1);
            let mut offerer = Peer::new(ice_servers(&ice_n), false).await;
            let mut answerer = Peer::new(ice_servers(&ice_i), false).await;
            let (dc, _rx) = open_channel(&offerer.pc, "mesh").await;
            let sdp = offerer.offer().await;
            let ack = ws[newcomer].request("group-call:offer", json!({"groupId": gid, "to": id, "sdp": sdp})).await;
            assert!(ack.get("error").is_none(), "{ack}");
            let got = ws[i].expect("group-call:offer").await;
            assert_eq!(got["data"]["from"], ids[newcomer].as_str());
            let answer = answerer.answer(got["data"]["sdp"].as_str().unwrap()).await;
            ws[i].request("group-call:answer", json!({"groupId": gid, "to": ids[newcomer], "sdp": answer})).await;
            let back = ws[newcomer].expect("group-call:answer").await;
            offerer.accept_answer(back["data"]["sdp"].as_str().unwrap()).await;
            offerer.wait_connected().await;
            answerer.wait_connected().await;
            wait_open(&dc).await;
            dc.send_text(format!("{newcomer}->{i}")).await.unwrap();
            answerer.expect_message(&format!("{newcomer}->{i}")).await;
            channels.push((offerer, answerer, dc));
        }
    }
    assert_eq!(channels.len(), 3, "a 3-party mesh has 3 pairs");

    // A stranger can neither join nor signal into the call.
    let (te, eve) = d.user("eve").await;
    let mut we = d.ws(&te).await;
    let refused = join(&mut we, &gid).await;
    assert_eq!(refused["error"]["code"], "not_a_member", "{refused}");
    let refused = we.request("group-call:offer", json!({"groupId": gid, "to": ids[0], "sdp": "v=0"})).await;
    assert!(refused["error"].is_object());
    ws[0].assert_no("group-call:offer", Duration::from_millis(300)).await;

    // Leaving tells the others.
    ws[2].request("group-call:leave", json!({"groupId": gid})).await;
    assert_eq!(ws[0].expect("group-call:peer-left").await["data"]["userId"], ids[2].as_str());
    let _ = (eve, peers);
    for (a, b, _) in channels {
        a.pc.close().await.unwrap();
        b.pc.close().await.unwrap();
    }
}

#[tokio::test]
async fn the_seventh_joiner_gets_call_full() {
    let d = TestDaemon::start().await;
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for i in 0..7 {
        let (t, id) = d.user(&format!("user{i}")).await;
        tokens.push(t);
        ids.push(id);
    }
    let (_, g) = d.post("/api/groups", &tokens[0], json!({"name": "Big", "members": ids[1..]})).await;
    let gid = g["group"]["id"].as_str().unwrap().to_string();
    let mut sockets = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let mut w = d.ws(t).await;
        let ack = join(&mut w, &gid).await;
        if i < 6 {
            assert_eq!(ack["data"]["peers"].as_array().unwrap().len(), i, "{ack}");
        } else {
            assert_eq!(ack["error"]["code"], "call_full", "{ack}");
        }
        sockets.push(w);
    }
}

#[tokio::test]
async fn busy_reject_timeout_and_disconnect_end_calls_properly() {
    let d = TestDaemon::start_with(|c| c.ring_timeout_secs = 1).await;
    let (ta, a) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let (tc, c) = d.user("carol").await;
    let (mut wa, mut wb, mut wc) = (d.ws(&ta).await, d.ws(&tb).await, d.ws(&tc).await);
    let mut wb2 = d.ws(&tb).await;

    // Alice rings Bob on both of his tabs; Carol calling Bob meanwhile hears "busy".
    wa.request("call:offer", json!({"to": b, "callId": "c1", "callType": "audio", "sdp": "v=0 offer"})).await;
    wb.expect("call:offer").await;
    wb2.expect("call:offer").await;
    wc.request("call:offer", json!({"to": b, "callId": "c2", "callType": "audio", "sdp": "v=0"})).await;
    let busy = wc.expect("call:reject").await;
    assert_eq!((busy["data"]["reason"].as_str(), busy["data"]["from"].as_str()), (Some("busy"), Some(b.as_str())));

    // Bob rejects on one tab: Alice hears it and the other tab stops ringing.
    wb.request("call:reject", json!({"to": a, "callId": "c1"})).await;
    assert_eq!(wa.expect("call:reject").await["data"]["callId"], "c1");
    assert_eq!(wb2.expect("call:end").await["data"]["callId"], "c1");

    // Unanswered: after the ring timeout both sides get call:end.
    wa.request("call:offer", json!({"to": c, "callId": "c3", "callType": "video", "sdp": "v=0"})).await;
    wc.expect("call:offer").await;
    assert_eq!(wa.expect("call:end").await["data"]["callId"], "c3");
    assert_eq!(wc.expect("call:end").await["data"]["callId"], "c3");

    // Answered, then the callee's connection drops: the caller gets call:end.
    wa.request("call:offer", json!({"to": c, "callId": "c4", "callType": "video", "sdp": "v=0"})).await;
    wc.expect("call:offer").await;
    wc.request("call:answer", json!({"to": a, "callId": "c4", "sdp": "v=0 answer"})).await;
    wa.expect("call:answer").await;
    drop(wc);
    let end = wa.expect("call:end").await;
    assert_eq!((end["data"]["callId"].as_str(), end["data"]["from"].as_str()), (Some("c4"), Some(c.as_str())));
}

#[tokio::test]
async fn a_strangers_answer_and_candidates_never_reach_anyone() {
    let d = TestDaemon::start().await;
    let (ta, a) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let (te, _) = d.user("eve").await;
    let (mut wa, mut wb, mut we) = (d.ws(&ta).await, d.ws(&tb).await, d.ws(&te).await);
    wa.request("call:offer", json!({"to": b, "callId": "c1", "callType": "audio", "sdp": "v=0"})).await;
    wb.expect("call:offer").await;
    for (ty, data) in [
        ("call:answer", json!({"to": a, "callId": "c1", "sdp": "v=0 evil"})),
        ("call:ice-candidate", json!({"to": a, "callId": "c1", "candidate": {"candidate": "evil"}})),
        ("call:ice-candidate", json!({"to": b, "callId": "c1", "candidate": {"candidate": "evil"}})),
        ("call:end", json!({"to": b, "callId": "c1"})),
        ("media:state", json!({"callId": "c1", "audio": true, "video": true})),
    ] {
        let ack = we.request(ty, data).await;
        assert!(ack["error"].is_object(), "{ty} from a stranger was accepted: {ack}");
    }
    wa.assert_no("call:answer", Duration::from_millis(300)).await;
    wb.assert_no("call:ice-candidate", Duration::from_millis(100)).await;
    wb.assert_no("call:end", Duration::from_millis(100)).await;
    // The real parties still can.
    let ack =
        wb.request("call:ice-candidate", json!({"to": a, "callId": "c1", "candidate": {"candidate": "ok"}})).await;
    assert!(ack.get("error").is_none(), "{ack}");
    assert_eq!(wa.expect("call:ice-candidate").await["data"]["candidate"]["candidate"], "ok");
}
