//! The plain-HTTP landing port (`http-listen`, default 8080). A device that does not trust
//! the local CA yet can fetch it here without a certificate warning: `/ca.crt` is the CA
//! and `/install-ca` explains how to install it on each platform, with its fingerprints to
//! compare. Every other request is redirected (308, method kept) to the same host and path
//! on the HTTPS port, so `http://quickmeet.local:8080/` ends up on the real UI.
//!
//! No cookies, no scripts, no user input stored: the page is static apart from the host
//! it names, which is HTML-escaped; a strict CSP forbids anything inline.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use sha1::Digest;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Nothing inline, nothing foreign: the page uses only its own stylesheet.
pub const CSP: &str =
    "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// Longest a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest open requests get to finish after shutdown starts.
const GRACE: Duration = Duration::from_secs(2);

/// What the landing port needs to know.
pub struct Landing {
    /// Port of the HTTPS listener, the target of every redirect.
    pub https_port: u16,
    /// The local CA certificate, PEM.
    pub ca_pem: String,
    /// `<mdns-name>.local` when mDNS is on: suggested when the page is reached by address.
    pub mdns_host: Option<String>,
}

/// The landing routes; everything but the CA and its guide redirects to HTTPS.
pub fn router(landing: Landing) -> Router {
    Router::new()
        .route("/ca.crt", get(ca_cert))
        .route("/install-ca", get(install_page))
        .route("/install-ca.css", get(stylesheet))
        .fallback(redirect)
        .with_state(Arc::new(landing))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// The CA as PEM under the media type browsers and phones hand to their certificate
/// installer (Android and iOS accept PEM as well as DER).
async fn ca_cert(State(l): State<Arc<Landing>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/x-x509-ca-cert"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"quickmeet-ca.crt\""),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        l.ca_pem.clone(),
    )
        .into_response()
}

/// The host the client asked for, without its port; `None` when missing or malformed.
fn request_host(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::HOST)?.to_str().ok()?;
    let authority: axum::http::uri::Authority = raw.parse().ok()?;
    let host = authority.host();
    let ok = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
        && !authority.as_str().contains('@');
    ok.then(|| host.to_ascii_lowercase())
}

/// `https://host[:port]`, leaving out the default port 443.
fn https_origin(host: &str, port: u16) -> String {
    if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
    }
}

async fn redirect(State(l): State<Arc<Landing>>, headers: HeaderMap, uri: Uri) -> Response {
    let Some(host) = request_host(&headers) else {
        return (StatusCode::BAD_REQUEST, "a Host header is required\n").into_response();
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let target = format!("{}{path}", https_origin(&host, l.https_port));
    match HeaderValue::from_str(&target) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "bad request target\n").into_response(),
    }
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// `AB:CD:…` of a digest.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// SHA-256 and SHA-1 fingerprints of the CA: most systems show SHA-256, Windows shows
/// the SHA-1 "Thumbprint".
pub fn ca_fingerprints(ca_pem: &str) -> anyhow::Result<(String, String)> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes())?;
    Ok((quickmeet::certs::fingerprint(&der), hex(&sha1::Sha1::digest(&der))))
}

async fn install_page(State(l): State<Arc<Landing>>, headers: HeaderMap) -> Response {
    let (sha256, sha1) = match ca_fingerprints(&l.ca_pem) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "the CA certificate cannot be parsed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let host = request_host(&headers).or_else(|| l.mdns_host.clone()).unwrap_or_else(|| "localhost".into());
    let mut origins = vec![https_origin(&host, l.https_port)];
    if let Some(m) = l.mdns_host.as_ref().filter(|m| **m != host) {
        origins.push(https_origin(m, l.https_port));
    }
    let links: String =
        origins.iter().map(|o| format!("<a href=\"{0}/\">{0}/</a>", esc(o))).collect::<Vec<_>>().join(" or ");
    let html = PAGE.replace("{LINKS}", &links).replace("{SHA256}", &esc(&sha256)).replace("{SHA1}", &esc(&sha1));
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], html).into_response()
}

/// Serves the landing routes on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().header_read_timeout(HEADER_TIMEOUT).timer(TokioTimer::new()).keep_alive(false);
    let builder = builder.http1_only();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "landing port: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let conn = builder.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app.clone())).into_owned();
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(%peer, error = %e, "landing connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(GRACE, graceful.shutdown()).await;
}

const STYLE: &str =
    "body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1d2430}
h1{font-size:1.6rem}h2{font-size:1.15rem;margin-top:1.6rem}code{background:#eef1f5;padding:0 .25rem;border-radius:3px}
.fp{font-family:ui-monospace,monospace;word-break:break-all;background:#eef1f5;padding:.5rem;border-radius:4px}
.button{display:inline-block;background:#2357c6;color:#fff;padding:.5rem 1rem;border-radius:4px;text-decoration:none}
";

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Quick Meet: trust this appliance</title>
<link rel="stylesheet" href="/install-ca.css">
</head>
<body>
<h1>Trust this Quick Meet appliance</h1>
<p>Quick Meet uses HTTPS with its own local certificate authority (CA). Install the CA once
on each device, and browsers open {LINKS} without warnings from then on.</p>
<p><a class="button" href="/ca.crt" download="quickmeet-ca.crt">Download the CA certificate (quickmeet-ca.crt)</a></p>
<p>Before trusting it, check that the certificate your device shows has this fingerprint.
It is also printed by <code>quickmeet cert show</code> on the appliance. If it differs,
do not install it: someone may be in between.</p>
<p>SHA-256:</p>
<p class="fp">{SHA256}</p>
<p>SHA-1 (what Windows calls the thumbprint):</p>
<p class="fp">{SHA1}</p>

<h2>Windows</h2>
<ol>
<li>Open the downloaded <code>quickmeet-ca.crt</code> and check the thumbprint under <em>Details</em>.</li>
<li>Choose <em>Install Certificate…</em>, then <em>Local Machine</em> (or <em>Current User</em>).</li>
<li>Choose <em>Place all certificates in the following store</em>, <em>Browse…</em>,
<em>Trusted Root Certification Authorities</em>, then <em>Finish</em>.</li>
<li>Restart the browser. Edge and Chrome use this store; so does Firefox on Windows.</li>
</ol>

<h2>macOS</h2>
<ol>
<li>Open the downloaded file: Keychain Access asks where to add it; choose <em>System</em>.</li>
<li>In Keychain Access, double-click <em>Quick Meet local CA</em>, compare the SHA-256
fingerprint, open <em>Trust</em> and set <em>When using this certificate</em> to
<em>Always Trust</em>.</li>
<li>Firefox: Settings, Privacy &amp; Security, Certificates, View Certificates, Authorities,
Import, and tick <em>Trust this CA to identify websites</em>.</li>
</ol>

<h2>iPhone and iPad</h2>
<ol>
<li>Open this page in Safari and tap the download button; allow the profile download.</li>
<li>Settings, General, VPN &amp; Device Management: tap the Quick Meet profile and install it.</li>
<li>Settings, General, About, Certificate Trust Settings: turn on full trust for
<em>Quick Meet local CA</em>.</li>
</ol>

<h2>Android</h2>
<ol>
<li>Tap the download button.</li>
<li>Settings, Security (on some phones: More security settings, or Encryption &amp;
credentials), Install a certificate, <em>CA certificate</em>; confirm and pick
<code>quickmeet-ca.crt</code> from Downloads.</li>
<li>Chrome trusts it at once; Firefox for Android needs Settings, About Firefox, tap the
logo five times, then Settings, Secret Settings, <em>Use third party CA certificates</em>.</li>
</ol>

<h2>Linux</h2>
<ol>
<li>Debian and Ubuntu: <code>sudo cp quickmeet-ca.crt /usr/local/share/ca-certificates/ &amp;&amp; sudo update-ca-certificates</code></li>
<li>Fedora and RHEL: <code>sudo cp quickmeet-ca.crt /etc/pki/ca-trust/source/anchors/ &amp;&amp; sudo update-ca-trust</code></li>
<li>Firefox and Chromium keep their own list: Settings, Certificates (Chromium: Privacy and
security, Security, Manage certificates), Authorities, Import, and trust it for websites.</li>
</ol>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> Option<String> {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(value).unwrap());
        request_host(&h)
    }

    #[test]
    fn the_redirect_host_is_the_requested_one_without_its_port() {
        assert_eq!(host("quickmeet.local:8080").as_deref(), Some("quickmeet.local"));
        assert_eq!(host("192.168.1.5").as_deref(), Some("192.168.1.5"));
        assert_eq!(host("[fd00::1]:8080").as_deref(), Some("[fd00::1]"));
        assert_eq!(host("evil<script>"), None);
        assert_eq!(host("user@host"), None);
        assert_eq!(https_origin("a.local", 443), "https://a.local");
        assert_eq!(https_origin("a.local", 8443), "https://a.local:8443");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        assert!(!PAGE.contains("<script") && !PAGE.contains("style=") && !PAGE.contains("<style"));
        assert!(CSP.contains("default-src 'none'") && !CSP.contains("unsafe"));
    }
}
