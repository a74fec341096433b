//! A quickmeetd child process and the clients that talk to it.

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A daemon started for one measurement, with its own data dir.
pub struct Daemon {
    child: Child,
    _dir: Option<tempfile::TempDir>,
    pub data_dir: PathBuf,
    pub port: u16,
    pub tls: Arc<rustls::ClientConfig>,
    pub http: reqwest::Client,
    /// Time from spawn to the first successful `/api/health`.
    pub started_in: Duration,
}

pub fn tls_config(ca_pem: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
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

/// Settings the load generator needs from the daemon: everything on loopback, and the
/// abuse limits out of the way (the load is deliberate and bounded).
fn bench_config(dir: &Path, port: u16) -> String {
    format!(
        "listen = \"127.0.0.1:{port}\"\nturn-listen = \"127.0.0.1:0\"\nhttp-enabled = false\nmdns-enabled = false\ndata-dir = \"{}\"\nws-outbound-queue = 4096\n{}",
        dir.display(),
        crate::limits::RELAXED
    )
}

impl Daemon {
    /// Starts `binary` with a fresh data dir under target/loadgen (a real disk).
    pub async fn spawn(binary: &Path) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all("target/loadgen")?;
        let dir = tempfile::tempdir_in("target/loadgen")?;
        let path = dir.path().to_path_buf();
        let mut d = Daemon::spawn_on(binary, &path).await?;
        d._dir = Some(dir);
        Ok(d)
    }

    /// Starts `binary` on an existing data dir and waits for `/api/health`.
    pub async fn spawn_on(binary: &Path, data_dir: &Path) -> anyhow::Result<Daemon> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        std::fs::create_dir_all(data_dir)?;
        let cfg = data_dir.join("loadgen.toml");
        std::fs::write(&cfg, bench_config(data_dir, port))?;
        let start = Instant::now();
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning quickmeetd")?;
        let ca_path = data_dir.join("tls/ca.pem");
        let mut client: Option<(Arc<rustls::ClientConfig>, reqwest::Client)> = None;
        while start.elapsed() < Duration::from_secs(60) {
            if client.is_none() {
                if let Ok(ca) = std::fs::read_to_string(&ca_path) {
                    let tls = tls_config(&ca)?;
                    let http = reqwest::Client::builder().use_preconfigured_tls((*tls).clone()).build()?;
                    client = Some((tls, http));
                }
            }
            if let Some((tls, http)) = &client {
                if http.get(format!("https://127.0.0.1:{port}/api/health")).send().await.is_ok() {
                    let started_in = start.elapsed();
                    let (tls, http) = (tls.clone(), http.clone());
                    return Ok(Daemon {
                        child,
                        _dir: None,
                        data_dir: data_dir.to_path_buf(),
                        port,
                        tls,
                        http,
                        started_in,
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("quickmeetd did not answer /api/health")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Creates an account; returns (token, user id).
    pub async fn signup(&self, name: &str) -> anyhow::Result<(String, String)> {
        self.auth("signup", name).await
    }

    async fn auth(&self, what: &str, name: &str) -> anyhow::Result<(String, String)> {
        let v: Value = self
            .http
            .post(self.url(&format!("/api/auth/{what}")))
            .json(&json!({"username": name, "password": "loadgen-password"}))
            .send()
            .await?
            .json()
            .await?;
        let token = v["token"].as_str().with_context(|| format!("{what} failed: {v}"))?.to_string();
        Ok((token, v["user"]["id"].as_str().unwrap_or_default().to_string()))
    }

    /// An authenticated WebSocket with small client buffers, past `users:online-list`.
    pub async fn ws(&self, token: &str) -> anyhow::Result<Ws> {
        ws_to(self.port, self.tls.clone(), token).await
    }

    /// The daemon's resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status(self.pid(), "VmRSS:")
    }

    /// CPU time the daemon used so far (user + system), in seconds.
    pub fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 =
            f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        ticks as f64 / 100.0
    }

    /// Stops the daemon as systemd does, with SIGTERM, so that it closes its database
    /// cleanly (after a SIGKILL, the next open of a data dir that was written to repairs
    /// the whole file first); SIGKILL if it has not exited within 15 s.
    pub fn stop(mut self) {
        use nix::sys::signal::{kill, Signal};
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if kill(pid, Signal::SIGTERM).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            eprintln!("quickmeetd did not stop within 15 s of SIGTERM; killing it");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An authenticated WebSocket to the daemon on `port`.
pub async fn ws_to(port: u16, tls: Arc<rustls::ClientConfig>, token: &str) -> anyhow::Result<Ws> {
    let url = format!("wss://127.0.0.1:{port}/ws");
    let connector = tokio_tungstenite::Connector::Rustls(tls);
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, Some(connector)).await?;
    ws.send(Message::Text(json!({"type": "auth", "data": {"token": token}}).to_string().into())).await?;
    loop {
        match ws.next().await.transpose()? {
            Some(Message::Text(t)) if t.contains("users:online-list") => return Ok(ws),
            Some(Message::Close(c)) => bail!("closed during auth: {c:?}"),
            None => bail!("closed during auth"),
            _ => {}
        }
    }
}

/// A `kB` field of /proc/<pid>/status.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Raises this process's open-files limit to its hard limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc_rlimit();
    lim.0 = lim.1;
    let _ = set_rlimit(lim);
    libc_rlimit().0
}

fn libc_rlimit() -> (u64, u64) {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024))
}

fn set_rlimit(l: (u64, u64)) -> nix::Result<()> {
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, l.0, l.1)
}

/// Reads frames until one satisfies `want`, with a timeout.
pub async fn wait_for(ws: &mut Ws, within: Duration, mut want: impl FnMut(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.context("timed out")?;
        match msg.transpose()? {
            Some(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t)?;
                if want(&v) {
                    return Ok(v);
                }
            }
            Some(Message::Close(c)) => bail!("closed: {c:?}"),
            None => bail!("closed"),
            _ => {}
        }
    }
}
