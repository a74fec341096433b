//! Shared helpers: a daemon per test, HTTP and WebSocket clients that trust its CA.

use futures_util::{SinkExt, StreamExt};
use quickmeet::config::Config;
use quickmeet_daemon::Running;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// rustls client config trusting only `ca_pem`.
pub fn client_tls(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}

/// A daemon in this process with its own temp data dir.
pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub running: Option<Running>,
    pub http: reqwest::Client,
    pub tls: Arc<rustls::ClientConfig>,
    pub addr: SocketAddr,
}

fn http_client(tls: &Arc<rustls::ClientConfig>) -> reqwest::Client {
    let mut cfg = (**tls).clone();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder().use_preconfigured_tls(cfg).timeout(Duration::from_secs(30)).build().unwrap()
}

impl TestDaemon {
    pub async fn start() -> TestDaemon {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestDaemon {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let running = quickmeet_daemon::start(config).await.unwrap();
        let tls = client_tls(&running.ca_pem);
        TestDaemon { addr: running.addr, http: http_client(&tls), tls, running: Some(running), dir }
    }

    /// Stops the daemon (unless a test already did) and starts a new one on the same data
    /// dir (new port).
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
        let config = test_config(self.dir.path());
        let running = quickmeet_daemon::start(config).await.unwrap();
        self.tls = client_tls(&running.ca_pem);
        self.http = http_client(&self.tls);
        self.addr = running.addr;
        self.running = Some(running);
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{}", self.addr.port(), path)
    }

    /// A request with an optional bearer token and JSON body; returns status and JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let json =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, json)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Signs up `name` (password "password1") and returns (token, user id).
    pub async fn user(&self, name: &str) -> (String, String) {
        let (s, v) = self
            .call(Method::POST, "/api/auth/signup", None, Some(json!({"username": name, "password": "password1"})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (v["token"].as_str().unwrap().to_string(), v["user"]["id"].as_str().unwrap().to_string())
    }

    /// An authenticated WebSocket client, past `ready` and `users:online-list`.
    pub async fn ws(&self, token: &str) -> Ws {
        let mut ws = self.ws_raw().await;
        ws.send_json(json!({"type": "auth", "data": {"token": token}})).await;
        let ready = ws.next_event().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        let list = ws.next_event().await;
        assert_eq!(list["type"], "users:online-list", "{list}");
        ws
    }

    /// A WebSocket connection that has not authenticated yet.
    pub async fn ws_raw(&self) -> Ws {
        let url = format!("wss://127.0.0.1:{}/ws", self.addr.port());
        let connector = tokio_tungstenite::Connector::Rustls(self.tls.clone());
        let (stream, _) =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector)).await.unwrap();
        Ws::new(stream)
    }
}

/// A test WebSocket client speaking the protocol.
pub struct Ws {
    pub stream: WsStream,
    pub next_ref: u64,
    /// Events that arrived while `request` waited for its ack, in order.
    backlog: std::collections::VecDeque<Value>,
}

/// How long a test waits for an event that should come.
pub const WAIT: Duration = Duration::from_secs(10);

impl Ws {
    pub fn new(stream: WsStream) -> Ws {
        Ws { stream, next_ref: 1, backlog: Default::default() }
    }

    pub async fn send_json(&mut self, v: Value) {
        self.stream.send(Message::Text(v.to_string().into())).await.unwrap();
    }

    /// The next protocol event (acks included), skipping pings.
    pub async fn next_event(&mut self) -> Value {
        if let Some(v) = self.backlog.pop_front() {
            return v;
        }
        self.read_event().await
    }

    async fn read_event(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next()).await.expect("timed out waiting for a frame");
            match msg.expect("socket closed").expect("socket error") {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next event of type `ty`, skipping others.
    pub async fn expect(&mut self, ty: &str) -> Value {
        loop {
            let e = self.next_event().await;
            if e["type"] == ty {
                return e;
            }
        }
    }

    /// Sends a request with a fresh `ref` and returns its ack, skipping other events.
    pub async fn request(&mut self, ty: &str, data: Value) -> Value {
        let r = self.next_ref;
        self.next_ref += 1;
        self.send_json(json!({"type": ty, "data": data, "ref": r})).await;
        loop {
            let e = self.read_event().await;
            if e["type"] == "ack" && e["ref"] == r {
                return e;
            }
            self.backlog.push_back(e);
        }
    }

    /// Asserts nothing of type `ty` arrives within `within`.
    pub async fn assert_no(&mut self, ty: &str, within: Duration) {
        for v in &self.backlog {
            assert_ne!(v["type"], ty, "unexpected {v}");
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert_ne!(v["type"], ty, "unexpected {v}");
                }
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("socket ended: {other:?}"),
            }
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next()).await.expect("timed out waiting for close") {
                Some(Ok(Message::Close(c))) => return c.map(|c| c.code.into()),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// Path of the quickmeetd binary cargo built for these tests.
pub fn daemon_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_quickmeetd"))
}

/// The real quickmeetd as a child process with its own temp data dir, for tests that kill
/// it with SIGKILL or measure its memory apart from the other tests in this process. Its
/// HTTPS port stays the same across restarts. Dropping it kills the process, so a failing
/// test never leaves a daemon behind.
pub struct ChildDaemon {
    child: Option<std::process::Child>,
    pub port: u16,
    /// HTTP/1.1 only; see [`ChildDaemon::client`] for HTTP/2.
    pub http: reqwest::Client,
    pub tls: Arc<rustls::ClientConfig>,
    /// Declared last: the data dir goes only after the process is dead.
    pub dir: tempfile::TempDir,
}

impl ChildDaemon {
    /// Starts quickmeetd on a free loopback port with a new data dir; waits for health.
    pub async fn start() -> ChildDaemon {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let (child, tls) = launch(dir.path(), port).await.unwrap_or_else(|e| panic!("quickmeetd did not start: {e}"));
        let http = reqwest::Client::builder().use_preconfigured_tls((*tls).clone()).build().unwrap();
        ChildDaemon { child: Some(child), port, http, tls, dir }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("quickmeetd is not running").id()
    }

    /// SIGKILL, as a power cut would: no shutdown code runs. Returns once the process is gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap(); // std sends SIGKILL
            child.wait().unwrap();
        }
    }

    /// Kills the daemon (when it still runs) and starts a new one on the same data dir and
    /// port; a new port only when another process took that one meanwhile.
    pub async fn restart(&mut self) {
        self.kill9();
        let (child, tls) = match launch(self.dir.path(), self.port).await {
            Ok(started) => started,
            Err(first) => {
                self.port = free_port();
                launch(self.dir.path(), self.port)
                    .await
                    .unwrap_or_else(|e| panic!("quickmeetd did not restart ({first}, then {e})"))
            }
        };
        self.http = reqwest::Client::builder().use_preconfigured_tls((*tls).clone()).build().unwrap();
        self.tls = tls;
        self.child = Some(child);
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// A new client trusting the daemon's CA, offering HTTP/2 when `h2`.
    pub fn client(&self, h2: bool) -> reqwest::Client {
        let mut tls = (*self.tls).clone();
        if h2 {
            tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap()
    }

    /// A field of /proc/<pid>/status, in KiB (`VmRSS:`, `VmHWM:`…).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// POSTs JSON without a token and returns the JSON answer.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.http.post(self.url(path)).json(&body).send().await.unwrap().json().await.unwrap()
    }

    /// Signs up `name` (password "password1") and returns (token, user id).
    pub async fn user(&self, name: &str) -> (String, String) {
        let v = self.post("/api/auth/signup", json!({"username": name, "password": "password1"})).await;
        let token = v["token"].as_str().unwrap_or_else(|| panic!("signup of {name}: {v}"));
        (token.to_string(), v["user"]["id"].as_str().unwrap().to_string())
    }

    /// An authenticated WebSocket client, past `users:online-list`.
    pub async fn ws(&self, token: &str) -> Ws {
        let url = format!("wss://127.0.0.1:{}/ws", self.port);
        let connector = tokio_tungstenite::Connector::Rustls(self.tls.clone());
        let (stream, _) =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector)).await.unwrap();
        let mut ws = Ws::new(stream);
        ws.send_json(json!({"type": "auth", "data": {"token": token}})).await;
        ws.expect("users:online-list").await;
        ws
    }
}

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Spawns quickmeetd on `port` over `dir` and waits until it answers `/api/health`; an
/// error (with the process reaped) when it exits first or never answers.
async fn launch(dir: &std::path::Path, port: u16) -> Result<(std::process::Child, Arc<rustls::ClientConfig>), String> {
    let mut child = std::process::Command::new(daemon_binary())
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--turn-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("it exited with {status}"));
        }
        if let Ok(ca) = std::fs::read_to_string(dir.join("tls/ca.pem")) {
            let tls = client_tls(&ca);
            let http = reqwest::Client::builder().use_preconfigured_tls((*tls).clone()).build().unwrap();
            if http.get(format!("https://127.0.0.1:{port}/api/health")).send().await.is_ok() {
                return Ok((child, tls));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    Err("it did not answer /api/health within 10 s".into())
}

/// A configuration on loopback ports chosen by the OS, TURN and the landing port
/// included; no mDNS, so no test announces itself on the LAN.
pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        turn_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        mdns_enabled: false,
        data_dir: dir.to_path_buf(),
        ..Config::default()
    }
}
