//! The plain-HTTP landing port: the CA and its install guide without TLS, everything else
//! redirected to HTTPS.

use crate::util::{client_tls, TestDaemon};
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;

/// A client that shows redirects instead of following them.
fn plain_client(d: &TestDaemon) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls((*d.tls).clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn landing_url(d: &TestDaemon, path: &str) -> String {
    let http = d.running.as_ref().unwrap().http_addr.expect("the landing port is on by default");
    format!("http://127.0.0.1:{}{path}", http.port())
}

#[tokio::test]
async fn the_ca_downloads_over_plain_http_and_is_the_one_that_signed_the_https_certificate() {
    let d = TestDaemon::start().await;
    let resp = plain_client(&d).get(landing_url(&d, "/ca.crt")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/x-x509-ca-cert");
    let pem = resp.text().await.unwrap();
    assert_eq!(pem, d.running.as_ref().unwrap().ca_pem);
    // Trusting only what was downloaded is enough for a clean HTTPS connection.
    let mut tls = (*client_tls(&pem)).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let https = reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap();
    let health = https.get(d.url("/api/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_install_guide_covers_every_platform_shows_the_fingerprint_and_runs_no_script() {
    let d = TestDaemon::start().await;
    let resp = plain_client(&d).get(landing_url(&d, "/install-ca")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(resp.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let html = resp.text().await.unwrap();
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.dir.path().join("tls/server.json")).unwrap()).unwrap();
    let fingerprint = info["caFingerprint"].as_str().unwrap();
    assert!(html.contains(fingerprint), "the SHA-256 fingerprint {fingerprint} is on the page");
    for platform in ["Windows", "macOS", "iPhone", "Android", "Linux"] {
        assert!(html.contains(platform), "{platform} is explained");
    }
    assert!(html.contains("href=\"/ca.crt\""));
    assert!(!html.contains("<script") && !html.contains("style="), "nothing inline for the CSP to block");
    let css = plain_client(&d).get(landing_url(&d, "/install-ca.css")).send().await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
}

#[tokio::test]
async fn everything_else_redirects_permanently_to_the_same_path_over_https() {
    let d = TestDaemon::start().await;
    let client = plain_client(&d);
    let port = d.addr.port();
    for (path, host, expected) in [
        ("/", None, format!("https://127.0.0.1:{port}/")),
        ("/chat/room?x=1", None, format!("https://127.0.0.1:{port}/chat/room?x=1")),
        ("/api/health", Some("quickmeet.local:8080"), format!("https://quickmeet.local:{port}/api/health")),
    ] {
        let mut req = client.get(landing_url(&d, path));
        if let Some(h) = host {
            req = req.header(reqwest::header::HOST, h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT, "{path}");
        assert_eq!(resp.headers()[LOCATION], expected.as_str(), "{path}");
    }
    // A POST keeps its method through a 308 as well.
    let resp = client.post(landing_url(&d, "/api/auth/login")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    // And following the redirect lands on the real HTTPS server.
    let follow = reqwest::Client::builder().use_preconfigured_tls((*d.tls).clone()).build().unwrap();
    let resp = follow.get(landing_url(&d, "/api/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.url().scheme(), "https");
}

#[tokio::test]
async fn the_landing_port_can_be_switched_off() {
    let d = TestDaemon::start_with(|c| c.http_enabled = false).await;
    assert_eq!(d.running.as_ref().unwrap().http_addr, None);
}
