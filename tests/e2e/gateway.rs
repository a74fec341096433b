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
    let mut ws = crate::util::Ws { stream, next_ref: 1 };
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
