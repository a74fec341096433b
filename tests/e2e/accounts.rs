//! Accounts over HTTPS: the signup → login → me → logout journey, validation, restarts.

use crate::util::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn signup_login_me_logout_then_the_token_is_refused() {
    let d = TestDaemon::start().await;
    let (s, v) = d.call(Method::GET, "/api/health", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));

    let (s, v) = d
        .call(
            Method::POST,
            "/api/auth/signup",
            None,
            Some(json!({"username": "Alice", "password": "password1", "displayName": "Alice A"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["user"]["role"], "admin", "the first account is admin");
    assert!(v["user"].get("passwordHash").is_none() && !v.to_string().contains("argon2"));

    let (s, v) = d
        .call(Method::POST, "/api/auth/login", None, Some(json!({"username": "alice", "password": "password1"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let (s, me) = d.get("/api/auth/me", &token).await;
    assert_eq!((s, me["user"]["displayName"].as_str()), (StatusCode::OK, Some("Alice A")));

    let (s, _) = d.call(Method::POST, "/api/auth/logout", Some(&token), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = d.get("/api/auth/me", &token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "unauthenticated");
}

#[tokio::test]
async fn login_sets_a_strict_cookie_that_authenticates() {
    let d = TestDaemon::start().await;
    d.user("carol").await;
    let resp = d
        .http
        .post(d.url("/api/auth/login"))
        .json(&json!({"username": "carol", "password": "password1"}))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    for attr in ["qm_token=", "HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    let me = d.http.get(d.url("/api/auth/me")).header("cookie", pair).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_username_taken_in_another_case_is_a_conflict() {
    let d = TestDaemon::start().await;
    d.user("alice").await;
    let (s, v) = d
        .call(Method::POST, "/api/auth/signup", None, Some(json!({"username": "ALICE", "password": "password1"})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["error"]["code"], "username_taken");
}

#[tokio::test]
async fn wrong_user_and_wrong_password_get_the_same_answer() {
    let d = TestDaemon::start().await;
    d.user("alice").await;
    let a = d
        .call(Method::POST, "/api/auth/login", None, Some(json!({"username": "alice", "password": "nope-nope"})))
        .await;
    let b = d
        .call(Method::POST, "/api/auth/login", None, Some(json!({"username": "nobody", "password": "password1"})))
        .await;
    assert_eq!(a.0, StatusCode::UNAUTHORIZED);
    assert_eq!(a, b);
}

#[tokio::test]
async fn bad_input_is_a_400_with_the_error_shape_and_stores_nothing() {
    let d = TestDaemon::start().await;
    let cases = [
        json!({"username": "al", "password": "password1"}),
        json!({"username": "alice!", "password": "password1"}),
        json!({"username": "alice", "password": "short"}),
        json!({"username": "alice", "password": "password1", "admin": true}),
        json!({"username": "alice"}),
        json!({"username": 5, "password": "password1"}),
    ];
    for body in cases {
        let (s, v) = d.call(Method::POST, "/api/auth/signup", None, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} → {v}");
        assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string(), "{v}");
    }
    let raw = d
        .http
        .post(d.url("/api/auth/signup"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let big = d
        .http
        .post(d.url("/api/auth/signup"))
        .header("content-type", "application/json")
        .body("x".repeat(200_000))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing was created: the first real signup still becomes admin.
    let (_, v) = d
        .call(Method::POST, "/api/auth/signup", None, Some(json!({"username": "alice", "password": "password1"})))
        .await;
    assert_eq!(v["user"]["role"], "admin");
}

#[tokio::test]
async fn every_api_route_but_the_public_ones_needs_a_token() {
    let d = TestDaemon::start().await;
    for (m, p) in [
        (Method::GET, "/api/auth/me"),
        (Method::POST, "/api/auth/logout"),
        (Method::GET, "/api/users"),
        (Method::GET, "/api/users/active"),
        (Method::GET, "/api/users/search?q=a"),
        (Method::GET, "/api/messages/unread/count"),
        (Method::GET, "/api/groups"),
        (Method::GET, "/api/groups/all"),
    ] {
        let (s, v) = d.call(m.clone(), p, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {p}: {v}");
        let (s, _) = d.call(m.clone(), p, Some("not.a.token"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {p}");
    }
}

#[tokio::test]
async fn users_can_be_listed_searched_and_edit_their_profile() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let (_, bob) = d.user("bobby").await;
    let (_, v) = d.get("/api/users", &ta).await;
    assert_eq!(v["users"].as_array().unwrap().len(), 2);
    let (_, v) = d.get("/api/users/search?q=BOB", &ta).await;
    assert_eq!(v["users"][0]["id"], bob.as_str());
    let (s, _) = d.get("/api/users/search?q=", &ta).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = d.get(&format!("/api/users/{bob}"), &ta).await;
    assert_eq!((s, v["user"]["username"].as_str()), (StatusCode::OK, Some("bobby")));
    let (s, _) = d.get("/api/users/nobody", &ta).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = d
        .call(
            Method::PUT,
            "/api/users/profile",
            Some(&ta),
            Some(json!({"displayName": "Al", "avatarColor": "#112233"})),
        )
        .await;
    assert_eq!((s, v["user"]["displayName"].as_str()), (StatusCode::OK, Some("Al")));
    let (s, _) =
        d.call(Method::PUT, "/api/users/profile", Some(&ta), Some(json!({"avatarColor": "javascript:1"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_restart_keeps_users_tokens_and_the_certificate() {
    let mut d = TestDaemon::start().await;
    let (token, _) = d.user("alice").await;
    let ca_before = d.running.as_ref().unwrap().ca_pem.clone();
    let cert_before = std::fs::read(d.dir.path().join("tls/server.pem")).unwrap();
    d.restart().await;
    assert_eq!(d.running.as_ref().unwrap().ca_pem, ca_before);
    assert_eq!(std::fs::read(d.dir.path().join("tls/server.pem")).unwrap(), cert_before);
    let (s, _) = d.get("/api/auth/me", &token).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = d
        .call(Method::POST, "/api/auth/login", None, Some(json!({"username": "alice", "password": "password1"})))
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let d = TestDaemon::start().await;
    let (s, v) = d.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = v["paths"].as_object().unwrap();
    for p in
        ["/api/auth/signup", "/api/users/{id}", "/api/messages/group/read/{group_id}", "/api/groups/{id}/add-member"]
    {
        assert!(paths.contains_key(p), "missing {p}");
    }
}
