//! A quickmeetd child process and the clients that talk to it.

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A daemon started for one measurement, with its own data dir.
pub struct Daemon {
    child: Child,
    _dir: tempfile::TempDir,
    pub port: u16,
    tls: Arc<rustls::ClientConfig>,
    http: reqwest::Client,
}

fn tls_config(ca_pem: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

impl Daemon {
    /// Starts `binary` on a free loopback port and waits for `/api/health`.
    pub async fn spawn(binary: &Path) -> anyhow::Result<Daemon> {
        // The data dir lives under target/ (a real disk), not in a tmpfs.
        std::fs::create_dir_all("target/loadgen")?;
        let dir = tempfile::tempdir_in("target/loadgen")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new(binary)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--turn-listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning quickmeetd")?;
        for _ in 0..300 {
            if let Ok(ca) = std::fs::read_to_string(dir.path().join("tls/ca.pem")) {
                let tls = tls_config(&ca)?;
                let http = reqwest::Client::builder().use_preconfigured_tls((*tls).clone()).build()?;
                if http.get(format!("https://127.0.0.1:{port}/api/health")).send().await.is_ok() {
                    return Ok(Daemon { child, _dir: dir, port, tls, http });
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("quickmeetd did not answer /api/health")
    }

    /// Creates an account; returns (token, user id).
    pub async fn signup(&self, name: &str) -> anyhow::Result<(String, String)> {
        let v: Value = self
            .http
            .post(format!("https://127.0.0.1:{}/api/auth/signup", self.port))
            .json(&json!({"username": name, "password": "loadgen-password"}))
            .send()
            .await?
            .json()
            .await?;
        let token = v["token"].as_str().context("signup failed")?.to_string();
        Ok((token, v["user"]["id"].as_str().unwrap_or_default().to_string()))
    }

    /// An authenticated WebSocket, past `ready`.
    pub async fn ws(&self, token: &str) -> anyhow::Result<Ws> {
        let url = format!("wss://127.0.0.1:{}/ws", self.port);
        let connector = tokio_tungstenite::Connector::Rustls(self.tls.clone());
        let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector)).await?;
        ws.send(Message::Text(json!({"type": "auth", "data": {"token": token}}).to_string().into())).await?;
        loop {
            if let Some(Message::Text(t)) = ws.next().await.transpose()? {
                if t.contains("users:online-list") {
                    return Ok(ws);
                }
            }
        }
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `count` messages to `to`, keeping `window` unacknowledged at most; returns the
/// ack latency of each.
pub async fn send_closed_loop(mut ws: Ws, to: String, count: usize, window: usize) -> anyhow::Result<Vec<Duration>> {
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(count);
    let mut next = 0usize;
    while latencies.len() < count {
        while next < count && sent_at.len() < window {
            let r = next as u64 + 1;
            let frame = json!({"type": "message:send", "ref": r, "data": {"to": to, "content": format!("load message {next}"), "clientId": format!("lg-{next}")}});
            sent_at.insert(r, Instant::now());
            ws.send(Message::Text(frame.to_string().into())).await?;
            next += 1;
        }
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.context("ack timeout")?;
        if let Some(Message::Text(t)) = msg.transpose()? {
            let v: Value = serde_json::from_str(&t)?;
            if v["type"] == "ack" {
                if v.get("error").is_some() {
                    bail!("send refused: {v}");
                }
                if let Some(at) = v["ref"].as_u64().and_then(|r| sent_at.remove(&r)) {
                    latencies.push(at.elapsed());
                }
            }
        }
    }
    Ok(latencies)
}
