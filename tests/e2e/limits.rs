//! Abuse limits: rates per IP, user and connection answer 429 with `Retry-After` (or a
//! `rate_limited` ack on the gateway), floods are dropped, and open connections are capped.

use crate::util::{TestDaemon, WAIT};
use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

async fn login(d: &TestDaemon, password: &str) -> reqwest::Response {
    d.http
        .post(d.url("/api/auth/login"))
        .json(&json!({"username": "alice", "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn failed_logins_from_one_ip_are_refused_with_429_and_a_growing_backoff() {
    let d = TestDaemon::start().await;
    d.user("alice").await; // a signup spends one of the ten
    for i in 0..9 {
        assert_eq!(login(&d, "wrong-password").await.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let resp = login(&d, "password1").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits out the lockout");
    let first: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(first >= 1, "{first}");
    // The API of a logged-in user is another tier: it is not locked out with the IP.
    let (s, _) = d.call(Method::GET, "/api/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn successful_logins_do_not_spend_the_auth_budget() {
    let d = TestDaemon::start().await;
    d.user("alice").await;
    for _ in 0..20 {
        assert_eq!(login(&d, "password1").await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn api_requests_past_the_per_user_rate_get_429_and_other_users_are_unaffected() {
    let d = TestDaemon::start_with(|c| c.rate_api_per_minute = 5).await;
    let (ta, _) = d.user("alice").await;
    let (tb, _) = d.user("bob").await;
    for _ in 0..5 {
        assert_eq!(d.get("/api/auth/me", &ta).await.0, StatusCode::OK);
    }
    let resp = d.http.get(d.url("/api/users")).bearer_auth(&ta).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=13).contains(&wait), "{wait}");
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["error"]["code"], "rate_limited");
    assert_eq!(d.get("/api/auth/me", &tb).await.0, StatusCode::OK);
}

#[tokio::test]
async fn uploads_have_their_own_per_user_rate() {
    let d = TestDaemon::start_with(|c| c.rate_upload_per_minute = 2).await;
    let (ta, _) = d.user("alice").await;
    let upload = || async {
        let part = reqwest::multipart::Part::bytes(b"hello there\n".to_vec()).file_name("a.txt");
        let form = reqwest::multipart::Form::new().part("file", part);
        d.http.post(d.url("/api/files/upload")).bearer_auth(&ta).multipart(form).send().await.unwrap().status()
    };
    assert_eq!(upload().await, StatusCode::CREATED);
    assert_eq!(upload().await, StatusCode::CREATED);
    assert_eq!(upload().await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(d.get("/api/auth/me", &ta).await.0, StatusCode::OK, "the API tier is separate");
}

#[tokio::test]
async fn websocket_tiers_are_counted_apart_and_refused_frames_get_rate_limited() {
    let d = TestDaemon::start_with(|c| c.rate_ws_typing_per_minute = 3).await;
    let (ta, _) = d.user("alice").await;
    let (_, b) = d.user("bob").await;
    let mut ws = d.ws(&ta).await;
    for _ in 0..3 {
        let ack = ws.request("typing:start", json!({"to": b})).await;
        assert!(ack.get("error").is_none(), "{ack}");
    }
    let ack = ws.request("typing:start", json!({"to": b})).await;
    assert_eq!(ack["error"]["code"], "rate_limited", "{ack}");
    // Without a ref the refusal is an `error` event.
    ws.send_json(json!({"type": "typing:stop", "data": {"to": b}})).await;
    let e = ws.expect("error").await;
    assert_eq!(e["data"]["code"], "rate_limited", "{e}");
    // Chat has its own budget.
    let ack = ws.request("message:send", json!({"to": b, "content": "still here"})).await;
    assert!(ack.get("error").is_none(), "{ack}");
}

#[tokio::test]
async fn a_connection_flooding_far_past_its_rate_is_dropped_with_1008() {
    let d = TestDaemon::start_with(|c| c.rate_ws_messages_per_minute = 20).await;
    let (ta, _) = d.user("alice").await;
    let mut ws = d.ws(&ta).await;
    for i in 0..200 {
        let frame = json!({"type": "sync", "data": {}, "ref": i});
        if ws.stream.send(Message::Text(frame.to_string().into())).await.is_err() {
            break;
        }
    }
    assert_eq!(ws.close_code().await, Some(1008));
    // The account is not locked out: a new connection works.
    d.ws(&ta).await;
}

#[tokio::test]
async fn open_websockets_per_user_are_capped() {
    let d = TestDaemon::start_with(|c| c.max_ws_per_user = 2).await;
    let (ta, _) = d.user("alice").await;
    let _one = d.ws(&ta).await;
    let _two = d.ws(&ta).await;
    let mut three = d.ws_raw().await;
    three.send_json(json!({"type": "auth", "data": {"token": ta}})).await;
    let e = three.next_event().await;
    assert_eq!((e["type"].as_str(), e["data"]["code"].as_str()), (Some("error"), Some("rate_limited")), "{e}");
    assert_eq!(three.close_code().await, Some(1008));
}

/// Whether the server closes a raw TCP connection (EOF or reset) within `within`.
async fn closed_within(tcp: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn open_connections_per_ip_are_capped_and_new_ones_rate_limited() {
    let d = TestDaemon::start_with(|c| {
        c.max_connections_per_ip = 3;
        c.rate_connections_per_minute = 5;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(d.addr).await.unwrap());
    }
    let mut fourth = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    assert!(closed_within(&mut fourth, WAIT).await, "a fourth open connection is refused");
    drop(held);
    // Generous: the daemon must have seen the three closes before the next connect.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Four connections were made so far; a fifth is within the rate, a sixth is not.
    let mut fifth = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    assert!(!closed_within(&mut fifth, Duration::from_millis(500)).await, "within the rate");
    drop(fifth);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut sixth = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    assert!(closed_within(&mut sixth, WAIT).await, "past the rate of new connections");
}
