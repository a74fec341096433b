//! Slow clients are cut off at every stage (TLS handshake, headers, body, idle keep-alive);
//! only TLS 1.2 and 1.3 with ECDHE AEAD suites are spoken; every answer carries the
//! security headers; cross-origin requests get no CORS grant.

use crate::util::TestDaemon;
use reqwest::StatusCode;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Timeouts of one second, so each slow-client test takes a few seconds.
async fn impatient() -> TestDaemon {
    TestDaemon::start_with(|c| {
        c.timeout_handshake_secs = 1;
        c.timeout_header_secs = 1;
        c.timeout_body_secs = 1;
        c.timeout_idle_secs = 2;
    })
    .await
}

/// A TLS client trusting the daemon's CA, with the given protocol versions, over HTTP/1.1.
fn tls_client(d: &TestDaemon, versions: &[&'static rustls::SupportedProtocolVersion]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    let ca = &d.running.as_ref().unwrap().ca_pem;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

async fn tls_connect(d: &TestDaemon) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(d.addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tls_client(d, &[&rustls::version::TLS13]).connect(name, tcp).await.unwrap()
}

/// Reads until the server closes; returns what it sent and how long that took.
async fn until_closed<S: AsyncReadExt + Unpin>(s: &mut S, within: Duration) -> (String, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(within.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Err(_) => panic!("still open after {within:?}; got {:?}", String::from_utf8_lossy(&got)),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), start.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_slowloris_tls_client_is_cut_off_at_the_handshake_deadline() {
    let d = impatient().await;
    // A client that trickles the first bytes of a ClientHello and never finishes it.
    let mut tcp = TcpStream::connect(d.addr).await.unwrap();
    let hello_start = [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    let start = Instant::now();
    for b in hello_start {
        if tcp.write_all(&[b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (_, _) = until_closed(&mut tcp, Duration::from_secs(5)).await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(4), "handshake deadline not enforced: {took:?}");
    // A client that connects and says nothing at all is cut off too.
    let mut silent = TcpStream::connect(d.addr).await.unwrap();
    let (_, took) = until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "{took:?}");
    // Meanwhile the daemon serves everyone else.
    assert_eq!(d.http.get(d.url("/api/health")).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn headers_trickled_past_the_header_deadline_close_the_connection() {
    let d = impatient().await;
    let mut tls = tls_connect(&d).await;
    tls.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
    let start = Instant::now();
    let trickle = async {
        for i in 0..40 {
            if tls.write_all(format!("X-Slow-{i}: a\r\n").as_bytes()).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if start.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        tls
    };
    let mut tls = trickle.await;
    let (answer, _) = until_closed(&mut tls, Duration::from_secs(5)).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(start.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn a_body_that_stalls_is_abandoned_after_the_body_deadline() {
    let d = impatient().await;
    let mut tls = tls_connect(&d).await;
    let head = "POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n{\"username\":";
    tls.write_all(head.as_bytes()).await.unwrap();
    let (answer, took) = until_closed(&mut tls, Duration::from_secs(6)).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let d = impatient().await;
    let mut tls = tls_connect(&d).await;
    tls.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let start = Instant::now();
    let (answer, _) = until_closed(&mut tls, Duration::from_secs(8)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(6), "{took:?}");
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_with_ecdhe_aead_suites_are_spoken() {
    let d = TestDaemon::start().await;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let tcp = TcpStream::connect(d.addr).await.unwrap();
        let tls = tls_client(&d, &[version]).connect(name.clone(), tcp).await.unwrap();
        let (_, conn) = tls.get_ref();
        let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
        assert_eq!(conn.protocol_version(), Some(version.version));
        assert!(suite.contains("GCM") || suite.contains("CHACHA20_POLY1305"), "{suite}");
        assert!(suite.starts_with("TLS13_") || suite.starts_with("TLS_ECDHE_"), "{suite}");
    }
    // What the server offers at all: TLS 1.3 suites or ECDHE with an AEAD, nothing else.
    let certs = d.running.as_ref().unwrap().state.certs.clone();
    let cfg = quickmeet_daemon::tls::server_config(certs).unwrap();
    for suite in &cfg.crypto_provider().cipher_suites {
        let name = format!("{:?}", suite.suite());
        let aead = name.contains("GCM") || name.contains("CHACHA20_POLY1305");
        assert!(aead && (name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_")), "weak suite {name}");
    }
    // Older protocols and non-ECDHE or CBC suites are refused (rustls clients cannot even
    // offer them, so ask openssl where it is installed).
    // tokio's Command: a blocking one would stall this test's runtime, and the daemon with it.
    if tokio::process::Command::new("openssl").arg("version").output().await.is_ok() {
        let target = format!("127.0.0.1:{}", d.addr.port());
        for args in [
            &["-tls1"][..],
            &["-tls1_1"][..],
            &["-tls1_2", "-cipher", "AES128-SHA:AES256-SHA256:AES128-GCM-SHA256:@SECLEVEL=0"][..],
            &[
                "-tls1_2",
                "-cipher",
                "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:@SECLEVEL=0",
            ][..],
        ] {
            let out = openssl(
                tokio::process::Command::new("openssl").args(["s_client", "-connect", &target, "-brief"]).args(args),
            )
            .await;
            let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
            assert!(!text.contains("CONNECTION ESTABLISHED"), "{args:?} connected: {text}");
        }
        // The same tool does connect with TLS 1.2 and a strong suite, so the refusals mean something.
        let out = openssl(
            tokio::process::Command::new("openssl").args(["s_client", "-connect", &target, "-brief", "-tls1_2"]),
        )
        .await;
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("CONNECTION ESTABLISHED"), "{text}");
    }
}

async fn openssl(cmd: &mut tokio::process::Command) -> std::process::Output {
    let run = cmd.stdin(std::process::Stdio::null()).kill_on_drop(true).output();
    tokio::time::timeout(Duration::from_secs(20), run).await.expect("openssl s_client hung").unwrap()
}

fn assert_security_headers(what: &str, h: &reqwest::header::HeaderMap) {
    let get = |k: &str| h.get(k).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(get("content-security-policy").contains("frame-ancestors 'none'"), "{what}: CSP {h:?}");
    assert!(!get("content-security-policy").contains("unsafe-inline"), "{what}: {h:?}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert!(get("strict-transport-security").starts_with("max-age="), "{what}");
    assert!(h.get("access-control-allow-origin").is_none(), "{what}: {h:?}");
}

#[tokio::test]
async fn every_kind_of_answer_carries_the_security_headers() {
    let d = TestDaemon::start_with(|c| c.rate_api_per_minute = 8).await;
    let (token, _) = d.user("alice").await;
    let part = reqwest::multipart::Part::bytes(b"plain text\n".to_vec()).file_name("a.txt");
    let up = d
        .http
        .post(d.url("/api/files/upload"))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    let file: serde_json::Value = up.json().await.unwrap();
    let download = file["file"]["url"].as_str().unwrap().to_string();
    let login = d
        .http
        .post(d.url("/api/auth/login"))
        .json(&serde_json::json!({"username": "alice", "password": "password1"}))
        .send()
        .await
        .unwrap();
    assert_security_headers("login", login.headers());
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("ui", d.http.get(d.url("/"))),
        ("health", d.http.get(d.url("/api/health"))),
        ("openapi", d.http.get(d.url("/api/openapi.json"))),
        ("401", d.http.get(d.url("/api/users"))),
        ("404", d.http.get(d.url("/api/nope")).bearer_auth(&token)),
        (
            "400",
            d.http.post(d.url("/api/groups")).bearer_auth(&token).body("{").header("content-type", "application/json"),
        ),
        ("download", d.http.get(d.url(&download)).bearer_auth(&token)),
        ("ws without upgrade", d.http.get(d.url("/ws"))),
    ];
    for (what, req) in cases {
        let resp = req.send().await.unwrap();
        assert_security_headers(what, resp.headers());
    }
    // And the 429 of a user over their rate.
    let mut last = None;
    for _ in 0..10 {
        last = Some(d.http.get(d.url("/api/auth/me")).bearer_auth(&token).send().await.unwrap());
    }
    let last = last.unwrap();
    assert_eq!(last.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_security_headers("429", last.headers());
}

#[tokio::test]
async fn cross_origin_requests_and_preflights_get_no_cors_grant() {
    let d = TestDaemon::start().await;
    let (token, _) = d.user("alice").await;
    let preflight = d
        .http
        .request(reqwest::Method::OPTIONS, d.url("/api/auth/login"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type, authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().get("access-control-allow-origin").is_none(), "{:?}", preflight.headers());
    assert!(preflight.headers().get("access-control-allow-credentials").is_none());
    assert!(!preflight.status().is_success() || preflight.headers().get("access-control-allow-methods").is_none());
    let simple = d
        .http
        .get(d.url("/api/users"))
        .bearer_auth(&token)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(simple.headers().get("access-control-allow-origin").is_none());
}
