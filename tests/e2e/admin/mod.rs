//! The `quickmeet` CLI against a real daemon over its admin socket: accounts, sessions
//! that end at once, status and certificates swapped live here; backups that restore in
//! [`backup`], the commands that work on a stopped daemon's data dir in [`offline`], and
//! who may use the socket in [`access`]. The CLI runs in-process through its library
//! (`quickmeet_cli::run`) with captured output, exactly as the binary runs it.

mod access;
mod backup;
mod offline;

use crate::util::{client_tls, TestDaemon};
use quickmeet::config::Registration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;

/// Runs `quickmeet --data-dir DIR args…` with `stdin`; returns (exit code, stdout, stderr).
async fn cli(dir: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut argv = vec!["quickmeet".to_string(), "--data-dir".into(), dir.display().to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    let stdin = stdin.to_string();
    tokio::task::spawn_blocking(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input = stdin.as_bytes();
        let code = quickmeet_cli::run(argv, &mut quickmeet_cli::Io { out: &mut out, err: &mut err, stdin: &mut input });
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    })
    .await
    .unwrap()
}

/// Like [`cli`] with `--json`, expecting success; returns the parsed output.
async fn cli_json(dir: &Path, args: &[&str], stdin: &str) -> Value {
    let mut with = vec!["--json"];
    with.extend_from_slice(args);
    let (code, out, err) = cli(dir, &with, stdin).await;
    assert_eq!(code, 0, "quickmeet {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

async fn login(d: &TestDaemon, user: &str, pw: &str) -> (StatusCode, Value) {
    d.call(Method::POST, "/api/auth/login", None, Some(json!({"username": user, "password": pw}))).await
}

/// SHA-256 fingerprint of the certificate a full TLS handshake presents.
async fn served_fingerprint(d: &TestDaemon) -> String {
    let tcp = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    // A fresh client config: a resumed session would report the certificate it began with.
    let config = client_tls(&d.running.as_ref().unwrap().ca_pem);
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.unwrap();
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    quickmeet::certs::fingerprint(&cert)
}

#[tokio::test]
async fn an_account_added_by_the_cli_logs_in_even_with_registration_closed() {
    let d = TestDaemon::start_with(|c| c.registration = Registration::Closed).await;
    let dir = d.dir.path();
    let (code, out, err) = cli(dir, &["user", "add", "root", "--password-stdin"], "password1\n").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("root created"), "{out}");
    let bob =
        cli_json(dir, &["user", "add", "bob", "--display-name", "Bob B", "--password-stdin"], "password2\n").await;
    assert_eq!((bob["displayName"].as_str(), bob["role"].as_str()), (Some("Bob B"), Some("user")));
    let (s, v) = login(&d, "bob", "password2").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(cli_json(dir, &["user", "set-role", "bob", "admin"], "").await["role"], "admin");
    assert_eq!(login(&d, "bob", "password2").await.1["user"]["role"], "admin");
    let (code, _, err) = cli(dir, &["user", "add", "bob", "--password-stdin"], "password3\n").await;
    assert_eq!(code, 1);
    assert!(err.contains("already taken"), "{err}");
    let (code, _, err) = cli(dir, &["user", "show", "nobody"], "").await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("quickmeet user list"), "{err}");
    let list = cli_json(dir, &["user", "list"], "").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn disabling_closes_the_open_websocket_with_4401_and_refuses_the_token() {
    let d = TestDaemon::start().await;
    let (token, _) = d.user("alice").await;
    let mut ws = d.ws(&token).await;
    let (code, out, err) = cli(d.dir.path(), &["user", "disable", "alice"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("disabled"), "{out}");
    assert_eq!(ws.close_code().await, Some(4401));
    assert_eq!(d.get("/api/auth/me", &token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(login(&d, "alice", "password1").await.0, StatusCode::FORBIDDEN);
    assert_eq!(cli(d.dir.path(), &["user", "enable", "alice"], "").await.0, 0);
    assert_eq!(d.get("/api/auth/me", &token).await.0, StatusCode::UNAUTHORIZED, "old tokens stay dead");
    assert_eq!(login(&d, "alice", "password1").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_new_password_refuses_the_old_token_and_deleting_keeps_history_readable() {
    let d = TestDaemon::start().await;
    let (ta, a) = d.user("alice").await;
    let (tb, _) = d.user("bob").await;
    let dir = d.dir.path();
    assert_eq!(cli(dir, &["user", "passwd", "alice", "--password-stdin"], "brand new pw\n").await.0, 0);
    assert_eq!(d.get("/api/auth/me", &ta).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(login(&d, "alice", "password1").await.0, StatusCode::UNAUTHORIZED);
    let (s, v) = login(&d, "alice", "brand new pw").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ta = v["token"].as_str().unwrap().to_string();
    let (s, _) = d.post("/api/messages", &tb, json!({"to": a, "content": "for the record"})).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(cli(dir, &["user", "delete", "bob"], "").await.0, 0);
    assert_eq!(d.get("/api/auth/me", &tb).await.0, StatusCode::UNAUTHORIZED);
    let bob = cli_json(dir, &["user", "show", "bob"], "").await;
    assert_eq!((bob["deleted"].as_bool(), bob["displayName"].as_str()), (Some(true), Some("deleted user")));
    let bob_id = bob["id"].as_str().unwrap();
    let (_, history) = d.get(&format!("/api/messages/{bob_id}"), &ta).await;
    assert_eq!(history["messages"][0]["content"], "for the record", "{history}");
    let (_, public) = d.get(&format!("/api/users/{bob_id}"), &ta).await;
    assert_eq!(
        public["user"]["displayName"].as_str().or(public["displayName"].as_str()),
        Some("deleted user"),
        "{public}"
    );
}

#[tokio::test]
async fn status_shows_connections_and_groups_made_by_the_cli_show_in_the_api() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    d.user("bob").await;
    let _ws = d.ws(&ta).await;
    let s = cli_json(d.dir.path(), &["status"], "").await;
    assert_eq!(
        (s["connections"].as_u64(), s["usersOnline"].as_u64(), s["users"].as_u64()),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(s["https"], d.addr.to_string());
    assert!(s["cert"]["notAfter"].is_string() && s["dataDirBytes"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["calls"]["oneToOne"], 0);
    let (code, out, _) = cli(d.dir.path(), &["status"], "").await;
    assert_eq!(code, 0);
    assert!(out.contains("connections:") && out.contains("1 online"), "{out}");

    let g = cli_json(d.dir.path(), &["group", "create", "Front desk", "--admin", "alice", "--member", "bob"], "").await;
    let gid = g["id"].as_str().unwrap().to_string();
    let (_, api) = d.get(&format!("/api/groups/{gid}"), &ta).await;
    assert_eq!(api["group"]["members"].as_array().unwrap().len(), 2, "{api}");
    let g = cli_json(d.dir.path(), &["group", "remove-member", "Front desk", "bob"], "").await;
    assert_eq!(g["members"], json!(["alice"]));
    assert_eq!(cli(d.dir.path(), &["group", "delete", &gid], "").await.0, 0);
    assert_eq!(d.get(&format!("/api/groups/{gid}"), &ta).await.0, StatusCode::NOT_FOUND);
    assert_eq!(cli(d.dir.path(), &["group", "show", "Front desk"], "").await.0, 5);
}

#[tokio::test]
async fn cert_renew_changes_the_served_certificate_and_keeps_the_open_websocket() {
    let d = TestDaemon::start().await;
    let (ta, _) = d.user("alice").await;
    let (_, b) = d.user("bob").await;
    let mut ws = d.ws(&ta).await;
    let before = served_fingerprint(&d).await;
    assert_eq!(cli_json(d.dir.path(), &["cert", "show"], "").await["fingerprint"], before);
    let renewed = cli_json(d.dir.path(), &["cert", "renew"], "").await;
    let after = served_fingerprint(&d).await;
    assert_ne!(before, after);
    assert_eq!(renewed["fingerprint"], after);
    let ack = ws.request("message:send", json!({"to": b, "content": "still connected"})).await;
    assert!(ack.get("error").is_none(), "{ack}");
    let (code, out, _) = cli(d.dir.path(), &["cert", "export-ca", "-"], "").await;
    assert_eq!(code, 0);
    assert_eq!(out, d.running.as_ref().unwrap().ca_pem);
}

#[tokio::test]
async fn an_imported_certificate_is_checked_then_served_without_a_restart() {
    let d = TestDaemon::start().await;
    let other = tempfile::tempdir().unwrap();
    let third = tempfile::tempdir().unwrap();
    let names = quickmeet::certs::local_names();
    let info = quickmeet::certs::ensure(other.path(), &names, false).unwrap();
    quickmeet::certs::ensure(third.path(), &names, false).unwrap();
    let (a, b) = (quickmeet::certs::TlsPaths::new(other.path()), quickmeet::certs::TlsPaths::new(third.path()));
    let (cert, wrong_key) = (a.cert.to_str().unwrap(), b.key.to_str().unwrap());
    let (code, _, err) = cli(d.dir.path(), &["cert", "import", "--cert", cert, "--key", wrong_key], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("do not match"), "{err}");
    let imported =
        cli_json(d.dir.path(), &["cert", "import", "--cert", cert, "--key", a.key.to_str().unwrap()], "").await;
    assert_eq!(
        (imported["fingerprint"].as_str(), imported["imported"].as_bool()),
        (Some(&*info.fingerprint), Some(true))
    );
    // The served certificate now chains to the other CA, which this client does not trust.
    let tcp = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let other_ca = std::fs::read_to_string(&a.ca_cert).unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_tls(&other_ca)).connect(name, tcp).await.unwrap();
    assert_eq!(quickmeet::certs::fingerprint(&tls.get_ref().1.peer_certificates().unwrap()[0]), info.fingerprint);
}
