//! The authorization matrix: for every REST route and every WebSocket event that touches
//! someone else's data, a stranger (a logged-in user who is party to nothing), a removed
//! group member (who left the group) and a disabled user are refused and learn nothing.
//!
//! The rules the matrix checks, as docs/security.md states them:
//! - A disabled account's token is dead everywhere: 401 on every route, 4401 on the gateway.
//! - What exists only for its parties (files, calls) answers a non-party exactly as if it
//!   did not exist: 404 with the same body as for a made-up id.
//! - Groups are a public directory (`/api/groups/all`, open `join`), so a group's existence
//!   is no secret: its messages, read marks, typing and calls answer a non-member 403
//!   `not_a_member`, and a made-up group 404.
//! - A refusal carries the error shape and nothing else; no refused event reaches anyone.

use crate::util::{TestDaemon, Ws};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// Runs the `quickmeet` CLI in-process against the daemon's admin socket.
async fn cli(dir: &std::path::Path, args: &[&str]) -> i32 {
    let mut argv = vec!["quickmeet".to_string(), "--data-dir".into(), dir.display().to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input: &[u8] = b"";
        quickmeet_cli::run(argv, &mut quickmeet_cli::Io { out: &mut out, err: &mut err, stdin: &mut input })
    })
    .await
    .unwrap()
}

/// The scene: alice and bob talk in a DM and in group G (alice admin, bob and rita
/// members); rita then leaves G; dave was a member and gets disabled; sam is a stranger.
struct Scene {
    d: TestDaemon,
    alice: (String, String),
    bob: (String, String),
    group: String,
    /// A file alice sent to G and one she sent to bob.
    group_file: String,
    dm_file: String,
    call_id: String,
    secrets: Vec<String>,
    stranger: String,
    removed: String,
    disabled: String,
    /// Gina's socket: open, and in G's group call, for the life of the test.
    _in_group_call: Ws,
}

async fn upload(d: &TestDaemon, token: &str, text: &str) -> Value {
    let part = reqwest::multipart::Part::bytes(text.as_bytes().to_vec()).file_name("secret-plan.txt");
    let form = reqwest::multipart::Form::new().part("file", part);
    let resp = d.http.post(d.url("/api/files/upload")).bearer_auth(token).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json::<Value>().await.unwrap()["file"].clone()
}

async fn scene() -> (Scene, Ws, Ws) {
    let d = TestDaemon::start().await;
    let alice = d.user("alice").await;
    let bob = d.user("bob").await;
    let rita = d.user("rita").await;
    let dave = d.user("dave").await;
    let sam = d.user("sam").await;
    let gina = d.user("gina").await;
    let members = json!({"name": "Inner circle", "members": [bob.1, rita.1, dave.1, gina.1]});
    let (s, g) = d.post("/api/groups", &alice.0, members).await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let group = g["group"]["id"].as_str().unwrap().to_string();
    let gf = upload(&d, &alice.0, "group secret file").await;
    let df = upload(&d, &alice.0, "dm secret file").await;
    let secrets = vec!["dm secret text".to_string(), "group secret text".to_string(), "secret-plan".to_string()];
    let (s, _) = d.post("/api/messages", &alice.0, json!({"to": bob.1, "content": secrets[0]})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = d
        .post("/api/messages", &alice.0, json!({"to": bob.1, "content": "", "kind": "file", "fileId": df["id"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = d.post("/api/messages/group", &alice.0, json!({"groupId": group, "content": secrets[1]})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = d
        .post(
            "/api/messages/group",
            &alice.0,
            json!({"groupId": group, "content": "", "kind": "file", "fileId": gf["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Rita read the group while she was in it, then left.
    assert_eq!(d.get(&format!("/api/messages/group/{group}"), &rita.0).await.0, StatusCode::OK);
    assert_eq!(d.post(&format!("/api/groups/{group}/leave"), &rita.0, json!({})).await.0, StatusCode::OK);
    // Alice calls bob, and gina opens a group call in G.
    let mut wa = d.ws(&alice.0).await;
    let mut wb = d.ws(&bob.0).await;
    let call_id = "0192f7a4-3c2e-7b1a-9f00-00000000c411".to_string();
    let ack =
        wa.request("call:offer", json!({"to": bob.1, "callId": call_id, "callType": "audio", "sdp": "v=0"})).await;
    assert!(ack.get("error").is_none(), "{ack}");
    wb.expect("call:offer").await;
    let mut wg = d.ws(&gina.0).await;
    let ack = wg.request("group-call:join", json!({"groupId": group})).await;
    assert!(ack.get("error").is_none(), "{ack}");

    let scene = Scene {
        group_file: gf["filename"].as_str().unwrap().to_string(),
        dm_file: df["filename"].as_str().unwrap().to_string(),
        d,
        alice,
        bob,
        group,
        call_id,
        secrets,
        stranger: sam.0,
        removed: rita.0,
        disabled: dave.0,
        _in_group_call: wg,
    };
    (scene, wa, wb)
}

/// A refusal: the given status, the error shape and nothing else, and no secret in it.
fn assert_refused(what: &str, status: StatusCode, body: &Value, expected: StatusCode, secrets: &[String]) {
    assert_eq!(status, expected, "{what}: {body}");
    let keys: Vec<&String> = body.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    assert_eq!(keys, vec!["error"], "{what}: {body}");
    let text = body.to_string();
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what} leaked {s}: {body}");
    }
}

/// A 200 that is the caller's own (empty) view: no secret in it.
fn assert_nothing_learnt(what: &str, status: StatusCode, body: &Value, secrets: &[String], ids: &[&str]) {
    assert_eq!(status, StatusCode::OK, "{what}: {body}");
    let text = body.to_string();
    for s in secrets.iter().map(String::as_str).chain(ids.iter().copied()) {
        assert!(!text.contains(s), "{what} leaked {s}: {body}");
    }
}

#[tokio::test]
async fn strangers_and_removed_members_are_refused_every_rest_route_and_learn_nothing() {
    let (s, _wa, _wb) = scene().await;
    let d = &s.d;
    let g = &s.group;
    let fake_group = "0192f7a4-3c2e-7b1a-9f00-0000000f4ce0";
    let fake_file = "0192f7a4-3c2e-7b1a-9f00-00000000f11e.txt";
    let forbidden = StatusCode::FORBIDDEN;
    let not_found = StatusCode::NOT_FOUND;
    for (who, token) in [("stranger", &s.stranger), ("removed member", &s.removed)] {
        let t = Some(token.as_str());
        // Group-scoped routes: 403 not_a_member for G, 404 for a made-up group.
        let group_routes: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, format!("/api/messages/group/{g}"), None),
            (Method::GET, format!("/api/messages/group/{g}?limit=5"), None),
            (Method::PUT, format!("/api/messages/group/read/{g}"), None),
            (Method::POST, "/api/messages/group".into(), Some(json!({"groupId": g, "content": "let me in"}))),
            (Method::POST, format!("/api/groups/{g}/leave"), None),
        ];
        for (m, path, body) in group_routes {
            let (st, v) = d.call(m.clone(), &path, t, body.clone()).await;
            let what = format!("{who} {m} {path}");
            assert_refused(&what, st, &v, forbidden, &s.secrets);
            assert!(v["error"]["code"] == "not_a_member" || v["error"]["code"] == "not_found", "{what}: {v}");
            let fake_path = path.replace(g.as_str(), fake_group);
            let fake_body = body.map(|b| serde_json::from_str(&b.to_string().replace(g.as_str(), fake_group)).unwrap());
            let (st, v) = d.call(m.clone(), &fake_path, t, fake_body).await;
            assert_refused(&format!("{who} {m} {fake_path}"), st, &v, not_found, &s.secrets);
        }
        // Only the group admin adds members.
        let sam_id = d.get("/api/auth/me", token).await.1["user"]["id"].as_str().unwrap().to_string();
        let (st, v) = d.post(&format!("/api/groups/{g}/add-member"), token, json!({"userId": sam_id})).await;
        assert_refused(&format!("{who} add-member"), st, &v, forbidden, &s.secrets);
        // Files exist only for their parties: a real one answers exactly like a made-up one.
        let (_, fake_dl) = d.call(Method::GET, &format!("/api/files/download/{fake_file}"), t, None).await;
        for file in [&s.group_file, &s.dm_file] {
            let (st, v) = d.call(Method::GET, &format!("/api/files/download/{file}"), t, None).await;
            assert_refused(&format!("{who} download {file}"), st, &v, not_found, &s.secrets);
            assert_eq!(v, fake_dl, "{who}: a real file answers like a missing one");
            let (st, v) = d.call(Method::DELETE, &format!("/api/files/{file}"), t, None).await;
            assert_refused(&format!("{who} delete {file}"), st, &v, not_found, &s.secrets);
            assert!(v["error"]["code"] == "not_found", "{v}");
        }
        // Routes that answer with the caller's own view show none of alice and bob's data.
        let ids = [s.group_file.as_str(), s.dm_file.as_str()];
        for path in [
            format!("/api/messages/{}", s.alice.1),
            format!("/api/messages/{}", s.bob.1),
            "/api/messages/unread/count".to_string(),
            "/api/groups".to_string(),
        ] {
            let (st, v) = d.call(Method::GET, &path, t, None).await;
            assert_nothing_learnt(&format!("{who} GET {path}"), st, &v, &s.secrets, &ids);
            if path.contains("unread") || path == "/api/groups" {
                assert!(!v.to_string().contains(g.as_str()), "{who} {path}: {v}");
            }
        }
        let (st, v) = d.call(Method::PUT, &format!("/api/messages/read/{}", s.alice.1), t, None).await;
        assert_nothing_learnt(&format!("{who} read alice"), st, &v, &s.secrets, &ids);
        assert_eq!(v["updated"], 0);
    }
    // The files stayed intact for their parties.
    for file in [&s.group_file, &s.dm_file] {
        let resp =
            d.http.get(d.url(&format!("/api/files/download/{file}"))).bearer_auth(&s.bob.0).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn strangers_and_removed_members_are_refused_every_websocket_event_and_nobody_hears_them() {
    let (s, mut wa, mut wb) = scene().await;
    let d = &s.d;
    let g = &s.group;
    let (alice, bob, call) = (&s.alice.1, &s.bob.1, &s.call_id);
    for (who, token) in [("stranger", &s.stranger), ("removed member", &s.removed)] {
        let mut ws = d.ws(token).await;
        let refused: Vec<(&str, Value, &[&str])> = vec![
            ("message:group:send", json!({"groupId": g, "content": "let me in"}), &["not_a_member"]),
            ("message:read", json!({"groupId": g}), &["not_a_member"]),
            ("typing:start", json!({"groupId": g}), &["not_a_member"]),
            ("typing:stop", json!({"groupId": g}), &["not_a_member"]),
            ("group-call:join", json!({"groupId": g}), &["not_a_member"]),
            ("group-call:leave", json!({"groupId": g}), &["not_a_member", "not_in_call", "not_found"]),
            ("group-call:offer", json!({"groupId": g, "to": alice, "sdp": "v=0"}), &["not_a_member", "not_in_call"]),
            ("group-call:answer", json!({"groupId": g, "to": alice, "sdp": "v=0"}), &["not_a_member", "not_in_call"]),
            (
                "group-call:ice-candidate",
                json!({"groupId": g, "to": alice, "candidate": {"candidate": "x"}}),
                &["not_a_member", "not_in_call"],
            ),
            ("call:answer", json!({"to": alice, "callId": call, "sdp": "v=0"}), &["not_found"]),
            ("call:ice-candidate", json!({"to": bob, "callId": call, "candidate": {"candidate": "x"}}), &["not_found"]),
            ("call:reject", json!({"to": bob, "callId": call}), &["not_found"]),
            ("call:end", json!({"to": alice, "callId": call}), &["not_found"]),
            ("media:state", json!({"callId": call, "audio": true, "video": true, "screen": true}), &["not_found"]),
            (
                "media:state",
                json!({"groupId": g, "audio": true, "video": true, "screen": true}),
                &["not_a_member", "not_in_call", "not_found"],
            ),
        ];
        for (ty, data, codes) in refused {
            let ack = ws.request(ty, data.clone()).await;
            let code = ack["error"]["code"].as_str().unwrap_or_default().to_string();
            assert!(codes.contains(&code.as_str()), "{who} {ty} {data}: {ack}");
            let keys: Vec<&String> = ack.as_object().unwrap().keys().collect();
            assert_eq!(keys, vec!["error", "ref", "type"], "{who} {ty}: {ack}");
            // A made-up call answers the same as a real one the caller is not party to.
            if code == "not_found" && data.get("callId").is_some() {
                let fake = serde_json::from_str(
                    &data.to_string().replace(call.as_str(), "0192f7a4-3c2e-7b1a-9f00-0000000fa4e0"),
                )
                .unwrap();
                let other = ws.request(ty, fake).await;
                assert_eq!(other["error"], ack["error"], "{who} {ty}");
            }
        }
        // Sync returns only the caller's own messages.
        let ack = ws.request("sync", json!({})).await;
        let text = ack.to_string();
        assert!(s.secrets.iter().all(|x| !text.contains(x.as_str())), "{who} sync: {ack}");
        assert!(!text.contains(s.group_file.as_str()) && !text.contains(s.dm_file.as_str()), "{ack}");
    }
    // Nothing a refused event asked for reached alice or bob.
    for ws in [&mut wa, &mut wb] {
        for ty in ["message:group:receive", "typing:start", "typing:stop", "group-call:peer-joined", "call:answer"] {
            ws.assert_no(ty, Duration::from_millis(100)).await;
        }
        ws.assert_no("call:end", Duration::from_millis(100)).await;
        ws.assert_no("media:state", Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_disabled_user_is_refused_everywhere_at_once() {
    let (s, _wa, _wb) = scene().await;
    let d = &s.d;
    let mut open = d.ws(&s.disabled).await;
    assert_eq!(cli(d.dir.path(), &["user", "disable", "dave"]).await, 0);
    assert_eq!(open.close_code().await, Some(4401));
    let g = &s.group;
    let t = Some(s.disabled.as_str());
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/auth/me".into(), None),
        (Method::POST, "/api/auth/logout".into(), None),
        (Method::GET, "/api/users".into(), None),
        (Method::GET, "/api/users/active".into(), None),
        (Method::GET, "/api/users/search?q=ali".into(), None),
        (Method::GET, format!("/api/users/{}", s.alice.1), None),
        (Method::PUT, "/api/users/profile".into(), Some(json!({"displayName": "D"}))),
        (Method::POST, "/api/messages".into(), Some(json!({"to": s.alice.1, "content": "hi"}))),
        (Method::POST, "/api/messages/group".into(), Some(json!({"groupId": g, "content": "hi"}))),
        (Method::GET, format!("/api/messages/{}", s.alice.1), None),
        (Method::GET, format!("/api/messages/group/{g}"), None),
        (Method::PUT, format!("/api/messages/read/{}", s.alice.1), None),
        (Method::PUT, format!("/api/messages/group/read/{g}"), None),
        (Method::GET, "/api/messages/unread/count".into(), None),
        (Method::POST, "/api/groups".into(), Some(json!({"name": "mine"}))),
        (Method::GET, "/api/groups".into(), None),
        (Method::GET, "/api/groups/all".into(), None),
        (Method::GET, format!("/api/groups/{g}"), None),
        (Method::POST, format!("/api/groups/{g}/join"), None),
        (Method::POST, format!("/api/groups/{g}/leave"), None),
        (Method::POST, format!("/api/groups/{g}/add-member"), Some(json!({"userId": s.alice.1}))),
        (Method::GET, format!("/api/files/download/{}", s.group_file), None),
        (Method::DELETE, format!("/api/files/{}", s.group_file), None),
        (Method::GET, "/api/ice-servers".into(), None),
    ];
    for (m, path, body) in routes {
        let (st, v) = d.call(m.clone(), &path, t, body).await;
        assert_refused(&format!("disabled {m} {path}"), st, &v, StatusCode::UNAUTHORIZED, &s.secrets);
    }
    for path in ["/api/files/upload", "/api/files/upload-multiple"] {
        let part = reqwest::multipart::Part::bytes(b"hello\n".to_vec()).file_name("a.txt");
        let form =
            reqwest::multipart::Form::new().part(if path.ends_with("multiple") { "files" } else { "file" }, part);
        let resp = d.http.post(d.url(path)).bearer_auth(&s.disabled).multipart(form).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "disabled {path}");
    }
    // The gateway refuses the token, by frame and by cookie alike.
    let mut ws = d.ws_raw().await;
    ws.send_json(json!({"type": "auth", "data": {"token": s.disabled}})).await;
    assert_eq!(ws.close_code().await, Some(4401));
    let (st, v) =
        d.call(Method::POST, "/api/auth/login", None, Some(json!({"username": "dave", "password": "password1"}))).await;
    assert_refused("disabled login", st, &v, StatusCode::FORBIDDEN, &s.secrets);
    // Alice and bob carry on.
    assert_eq!(d.get(&format!("/api/messages/group/{g}"), &s.bob.0).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_matrix_covers_every_documented_route() {
    // If a route is added to the OpenAPI document, this test names it until the matrix
    // above is extended to cover it.
    let d = TestDaemon::start().await;
    let (_, doc) = d.call(Method::GET, "/api/openapi.json", None, None).await;
    let covered = [
        "/api/health",
        "/api/auth/signup",
        "/api/auth/login",
        "/api/auth/logout",
        "/api/auth/me",
        "/api/users",
        "/api/users/active",
        "/api/users/search",
        "/api/users/{id}",
        "/api/users/profile",
        "/api/messages",
        "/api/messages/group",
        "/api/messages/{user_id}",
        "/api/messages/group/{group_id}",
        "/api/messages/read/{user_id}",
        "/api/messages/group/read/{group_id}",
        "/api/messages/unread/count",
        "/api/groups",
        "/api/groups/all",
        "/api/groups/{id}",
        "/api/groups/{id}/join",
        "/api/groups/{id}/leave",
        "/api/groups/{id}/add-member",
        "/api/files/upload",
        "/api/files/upload-multiple",
        "/api/files/download/{filename}",
        "/api/files/{filename}",
        "/api/ice-servers",
    ];
    let missing: Vec<&String> =
        doc["paths"].as_object().unwrap().keys().filter(|p| !covered.contains(&p.as_str())).collect();
    assert!(missing.is_empty(), "not in the authorization matrix: {missing:?}");
}
