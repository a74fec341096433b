//! The commands that work on a stopped daemon's data dir: `status` reports what the data
//! dir holds and exits 3, `user passwd` and `cert renew` write straight into it, and every
//! offline write is refused while a daemon holds the database, even one whose admin socket
//! cannot be reached.

use super::{cli, cli_json, login, served_fingerprint};
use crate::util::TestDaemon;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn with_the_daemon_stopped_status_passwd_and_cert_renew_work_on_the_data_dir() {
    let mut d = TestDaemon::start().await;
    let (token, _) = d.user("alice").await;
    d.user("bob").await;
    let dir = d.dir.path().to_path_buf();

    // A running daemon that does not answer where we look: the database lock still tells.
    let elsewhere = tempfile::tempdir().unwrap();
    let socket = elsewhere.path().join("admin.sock");
    let socket = socket.to_str().unwrap();
    let (code, _, err) =
        cli(&dir, &["--socket", socket, "user", "passwd", "alice", "--password-stdin"], "brand new pw\n").await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("quickmeetd is running") && err.contains("use the online command"), "{err}");
    let (code, _, err) = cli(&dir, &["--socket", socket, "cert", "renew"], "").await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("quickmeetd is running"), "{err}");
    let (code, out, err) = cli(&dir, &["--socket", socket, "status"], "").await;
    assert_eq!(code, 3, "{err}");
    assert!(out.contains("in use") && err.contains("seems to be running"), "{out}{err}");

    d.running.take().unwrap().stop().await.unwrap();
    let (code, out, err) = cli(&dir, &["status"], "").await;
    assert_eq!(code, 3, "{err}");
    assert!(out.contains("not running") && out.contains("2 users, 0 groups"), "{out}");
    assert!(err.contains("quickmeetd is not running; start it with"), "{err}");
    let (code, out, _) = cli(&dir, &["--json", "status"], "").await;
    assert_eq!(code, 3);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (s["running"].as_bool(), s["database"].as_str(), s["users"].as_u64()),
        (Some(false), Some("readable"), Some(2))
    );
    let before = s["cert"]["fingerprint"].as_str().unwrap().to_string();

    let (code, out, err) = cli(&dir, &["user", "passwd", "alice", "--password-stdin"], "brand new pw\n").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alice has a new password") && out.contains("stopped"), "{out}");
    let (code, _, err) = cli(&dir, &["user", "passwd", "nobody", "--password-stdin"], "brand new pw\n").await;
    assert_eq!(code, 5, "{err}");
    let renewed = cli_json(&dir, &["cert", "renew"], "").await;
    let after = renewed["fingerprint"].as_str().unwrap().to_string();
    assert_ne!(before, after);

    d.restart().await;
    assert_eq!(served_fingerprint(&d).await, after, "the daemon serves the certificate renewed offline");
    assert_eq!(d.get("/api/auth/me", &token).await.0, StatusCode::UNAUTHORIZED, "old sessions are refused");
    assert_eq!(login(&d, "alice", "password1").await.0, StatusCode::UNAUTHORIZED);
    let (s, v) = login(&d, "alice", "brand new pw").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(login(&d, "bob", "password1").await.0, StatusCode::OK, "others are untouched");
}
