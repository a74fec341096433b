//! The gateway's edges: authentication, malformed and oversized frames, logout.

use crate::util::TestDaemon;
use futures_util::SinkExt;
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_bad_or_missing_token_closes_with_4401() {
    let d = TestDaemon::start().await;
    let mut ws = d.ws_raw().await;
    ws.send_json(json!({"type": "auth", "data": {"token": "forged"}})).await;
    assert_eq!(ws.close_code().await, Some(4401));
    let mut ws = d.ws_raw().await;
    ws.send_json(json!({"type": "sync", "data": {}})).await;
    assert_eq!(ws.close_code().await, Some(4401));
}

#[tokio::test]
async fn the_login_cookie_authenticates_the_upgrade() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let d = TestDaemon::start().await;
    let (token, _) = d.user("alice").await;
    let mut req = format!("wss://127.0.0.1:{}/ws", d.addr.port()).into_client_request().unwrap();
    req.headers_mut().insert("cookie", format!("qm_token={token}").parse().unwrap());
    let connector = tokio_tungstenite::Connector::Rustls(d.tls.clone());
    let (stream, _) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector)).await.unwrap();
    let mut ws = crate::util::Ws::new(stream);
    assert_eq!(ws.next_event().await["type"], "ready");
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_connection_lives_on() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let (_, b) = d.user("bob").await;
    let mut ws = d.ws(&ta).await;
    ws.stream.send(Message::Text("{nope".into())).await.unwrap();
    assert_eq!(ws.expect("error").await["data"]["code"], "invalid_frame");
    ws.send_json(json!({"type": "no:such", "data": {}, "ref": 99})).await;
    let ack = ws.expect("ack").await;
    assert_eq!((ack["ref"].as_u64(), ack["error"]["code"].as_str()), (Some(99), Some("invalid_frame")));
    let ack = ws.request("message:send", json!({"to": b, "content": "", "x": 1})).await;
    assert!(ack["error"].is_object(), "{ack}");
    let ack = ws.request("message:send", json!({"to": b, "content": "still here"})).await;
    assert!(ack.get("error").is_none(), "{ack}");
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_with_1009() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let (_, b) = d.user("bob").await;
    let mut ws = d.ws(&ta).await;
    let huge = json!({"type": "message:send", "data": {"to": b, "content": "x".repeat(70 * 1024)}});
    let _ = ws.stream.send(Message::Text(huge.to_string().into())).await;
    assert_eq!(ws.close_code().await, Some(1009));
}

#[tokio::test]
async fn logout_closes_the_sockets_opened_with_that_token() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let mut ws = d.ws(&ta).await;
    d.call(Method::POST, "/api/auth/logout", Some(&ta), None).await;
    assert_eq!(ws.close_code().await, Some(4401));
}

#[tokio::test]
async fn a_slow_consumer_is_closed_and_never_stalls_the_others() {
    use futures_util::StreamExt;
    use std::time::Duration;
    // The flood is deliberate: the per-connection chat rate limit is raised out of its way.
    let d = TestDaemon::start_with(|c| {
        c.ws_outbound_queue = 16;
        c.rate_ws_messages_per_minute = 1_000_000;
    })
    .await;
    let (ta, _) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let (tc, c) = d.user("carol").await;
    let (_, g) = d.post("/api/groups", &ta, json!({"name": "G", "members": [b, c]})).await;
    let gid = g["group"]["id"].as_str().unwrap().to_string();
    let mut sender = d.ws(&ta).await;
    let mut slow = d.ws(&tb).await; // never reads while the flood goes on
    let mut fast = d.ws(&tc).await;

    // 2,000 messages of 8 KB: far more than socket buffers plus a 16-frame queue hold.
    let total = 2000u64;
    let content = "y".repeat(8 * 1024 - 100);
    let flood = async {
        // Pipelined in windows, reading our own acks as we go (acks carry the message,
        // so a sender that never read them would itself be a slow consumer).
        let mut sent = 0u64;
        while sent < total {
            let batch = 64.min(total - sent);
            for i in sent..sent + batch {
                let f =
                    json!({"type": "message:group:send", "ref": i + 1, "data": {"groupId": gid, "content": content}});
                sender.stream.send(Message::Text(f.to_string().into())).await.unwrap();
            }
            let mut acks = 0;
            while acks < batch {
                let e = sender.next_event().await;
                if e["type"] == "ack" {
                    assert!(e.get("error").is_none(), "{e}");
                    acks += 1;
                }
            }
            sent += batch;
        }
    };
    let drain = async {
        let mut got = 0;
        while got < total {
            if fast.next_event().await["type"] == "message:group:receive" {
                got += 1;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), async { tokio::join!(flood, drain) })
        .await
        .expect("the fast reader was stalled by the slow one");

    // The slow reader finds its backlog cut short: a 1008 close, or the connection simply
    // dropped when even the close frame could not be written.
    let mut received = 0u64;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(20), slow.stream.next()).await.expect("no close") {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Close(c))) => break c.map(|c| u16::from(c.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert!(code.is_none() || code == Some(1008), "closed with {code:?}");
    assert!(received < total, "the slow reader got everything ({received}); nothing was bounded");
}

#[tokio::test]
async fn an_idle_session_reserves_little_memory_per_connection() {
    // Every open WebSocket keeps its session future for as long as it is open; with 20,000
    // connections each KiB reserved there is 20 MiB. The rarely-awaited parts are boxed.
    let d = TestDaemon::start().await;
    let state = d.running.as_ref().unwrap().state.clone();
    let user = quickmeet::ids::UserId::from("u");
    let conn = state.hub.register(&user, "jti", 8);
    let (io, _peer) = tokio::io::duplex(64);
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(io, tungstenite::protocol::Role::Server, None).await;
    let session = quickmeet_daemon::ws::session(state.clone(), Box::new(ws), conn.clone());
    let size = std::mem::size_of_val(&session);
    eprintln!("an idle session future reserves {size} bytes");
    assert!(size <= 1024, "an idle session future reserves {size} bytes");
    state.hub.unregister(&conn);
}

#[tokio::test]
async fn a_websocket_over_http2_extended_connect_is_greeted_and_chats() {
    // Browsers that already speak HTTP/2 to the appliance open WebSockets over it with
    // extended CONNECT (RFC 8441) rather than a new HTTP/1.1 connection.
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let d = TestDaemon::start().await;
    let (ta, a) = d.user("alice").await;
    let (tb, b) = d.user("bob").await;
    let mut alice = d.ws(&ta).await;
    let mut tls = (*d.tls).clone();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls)).connect(name, tcp).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(hyper::Method::CONNECT)
        .uri(format!("https://localhost:{}/ws", d.addr.port()))
        .header("sec-websocket-version", "13")
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let upgraded = hyper::upgrade::on(res).await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let auth = json!({"type": "auth", "data": {"token": tb}}).to_string();
    ws.send(Message::Text(auth.into())).await.unwrap();
    let mut seen: Vec<String> = Vec::new();
    let next = async |ws: &mut tokio_tungstenite::WebSocketStream<_>, seen: &Vec<String>| loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), futures_util::StreamExt::next(ws))
            .await
            .unwrap_or_else(|_| panic!("no frame within 5 s after {seen:?}"))
            .unwrap()
            .unwrap();
        if let Message::Text(t) = frame {
            return t.to_string();
        }
    };
    seen.push(next(&mut ws, &seen).await);
    seen.push(next(&mut ws, &seen).await);
    alice.send_json(json!({"type": "message:send", "ref": 1, "data": {"to": b, "content": "over h2"}})).await;
    while !seen.iter().any(|t| t.contains("message:receive")) {
        let t = next(&mut ws, &seen).await;
        seen.push(t);
    }
    assert!(seen[0].contains("\"type\":\"ready\""), "{seen:?}");
    assert!(seen[1].contains("users:online-list") && seen[1].contains(&a), "{seen:?}");
    assert!(seen.iter().any(|t| t.contains("over h2")), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_senders_messages_reach_a_busy_reader_in_the_order_sent() {
    // 8 senders keep 16 sends each in flight to one reader, so commits hold several sends
    // of each sender; the reader must see every sender's messages complete and in order,
    // as history has them.
    many_senders_to_one_reader(512).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_keeping_up_is_not_judged_too_slow_for_a_commit_larger_than_its_queue() {
    // A commit can hold up to 128 messages for the reader here, eight times its queue: the
    // reader reads as fast as it can, so it keeps its connection.
    many_senders_to_one_reader(16).await;
}

async fn many_senders_to_one_reader(queue: usize) {
    use std::time::Duration;
    let d = TestDaemon::start_with(|c| {
        c.rate_ws_messages_per_minute = 1_000_000;
        c.ws_outbound_queue = queue;
    })
    .await;
    let (tr, r) = d.user("reader").await;
    let mut reader = d.ws(&tr).await;
    let (senders, per_sender, window) = (8u64, 200u64, 16u64);
    let mut floods = Vec::new();
    for s in 0..senders {
        let (ts, _) = d.user(&format!("sender{s}")).await;
        let mut ws = d.ws(&ts).await;
        let to = r.clone();
        floods.push(tokio::spawn(async move {
            let (mut sent, mut acked) = (0u64, 0u64);
            while acked < per_sender {
                while sent < per_sender && sent - acked < window {
                    sent += 1;
                    let f = json!({"type": "message:send", "ref": sent, "data": {"to": to, "content": format!("{s}:{sent}")}});
                    ws.stream.send(Message::Text(f.to_string().into())).await.unwrap();
                }
                let e = ws.next_event().await;
                if e["type"] == "ack" {
                    assert!(e.get("error").is_none(), "{e}");
                    // Acks come back in the order of the sends, too.
                    assert_eq!(e["ref"].as_u64(), Some(acked + 1), "{e}");
                    acked += 1;
                }
            }
        }));
    }
    let mut last = vec![0u64; senders as usize];
    let mut got = 0;
    tokio::time::timeout(Duration::from_secs(120), async {
        while got < senders * per_sender {
            let e = reader.next_event().await;
            if e["type"] == "message:receive" {
                let content = e["data"]["message"]["content"].as_str().unwrap().to_string();
                let (s, n) = content.split_once(':').unwrap();
                let (s, n): (usize, u64) = (s.parse().unwrap(), n.parse().unwrap());
                assert_eq!(n, last[s] + 1, "sender {s}");
                last[s] = n;
                got += 1;
            }
        }
    })
    .await
    .expect("the reader stalled");
    for f in floods {
        f.await.unwrap();
    }
}
