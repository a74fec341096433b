//! The baseline: a bare tokio-tungstenite relay over the same TLS certificate, with no
//! authentication, no persistence and no JSON handling beyond a target index. Chat and
//! fan-out figures are also reported as a ratio to it, measured in the same run.

use crate::stats::Samples;
use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

type Peers = Arc<Mutex<HashMap<u32, mpsc::UnboundedSender<Message>>>>;

/// A running relay.
pub struct Relay {
    pub port: u16,
    tls: Arc<rustls::ClientConfig>,
    task: tokio::task::JoinHandle<()>,
}

fn server_tls(data_dir: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(data_dir.join("tls/server.pem"))?.collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(data_dir.join("tls/server.key"))?;
    Ok(Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?,
    ))
}

/// Starts a relay using the certificate of a daemon's data dir. Protocol: the first
/// frame is the client's numeric id; every later frame is `"<targets>|<payload>"` where
/// targets are comma-separated ids; each target gets the payload, the sender gets "ack".
pub async fn start(data_dir: &Path, client_tls: Arc<rustls::ClientConfig>) -> anyhow::Result<Relay> {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls(data_dir)?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let peers: Peers = Arc::default();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, peers) = (acceptor.clone(), peers.clone());
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let cfg = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
                let Ok(ws) = tokio_tungstenite::accept_async_with_config(tls, Some(cfg)).await else { return };
                let (mut sink, mut stream) = ws.split();
                let Some(Ok(Message::Text(id))) = stream.next().await else { return };
                let Ok(id) = id.parse::<u32>() else { return };
                let (tx, mut rx) = mpsc::unbounded_channel();
                peers.lock().unwrap().insert(id, tx.clone());
                tokio::spawn(async move {
                    while let Some(m) = rx.recv().await {
                        if sink.send(m).await.is_err() {
                            break;
                        }
                    }
                });
                while let Some(Ok(Message::Text(t))) = stream.next().await {
                    let Some((targets, payload)) = t.split_once('|') else { continue };
                    let frame = Message::Text(payload.to_string().into());
                    {
                        let p = peers.lock().unwrap();
                        for target in targets.split(',').filter_map(|s| s.parse::<u32>().ok()) {
                            if let Some(c) = p.get(&target) {
                                let _ = c.send(frame.clone());
                            }
                        }
                    }
                    let _ = tx.send(Message::Text("ack".into()));
                }
                peers.lock().unwrap().remove(&id);
            });
        }
    });
    Ok(Relay { port, tls: client_tls, task })
}

use crate::client::Ws;

impl Relay {
    pub async fn connect(&self, id: u32) -> anyhow::Result<Ws> {
        let url = format!("wss://127.0.0.1:{}/", self.port);
        let connector = tokio_tungstenite::Connector::Rustls(self.tls.clone());
        let cfg = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let (mut ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(url, Some(cfg), true, Some(connector)).await?;
        ws.send(Message::Text(id.to_string().into())).await?;
        Ok(ws)
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// Chat through the relay: `pairs` senders, closed loop with `window`; returns
/// (messages, elapsed, ack latencies).
pub async fn chat(
    relay: &Relay,
    pairs: usize,
    per_sender: usize,
    window: usize,
) -> anyhow::Result<(usize, Duration, Samples)> {
    let mut conns = Vec::new();
    for i in 0..pairs as u32 {
        conns.push((relay.connect(2 * i).await?, relay.connect(2 * i + 1).await?, 2 * i + 1));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (mut s, mut r, to) in conns {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_sender);
            let mut inflight = std::collections::VecDeque::new();
            let mut sent = 0;
            while lat.len() < per_sender {
                while sent < per_sender && inflight.len() < window {
                    let body = format!("{to}|{{\"type\":\"message:receive\",\"data\":{{\"n\":{sent}}}}}");
                    inflight.push_back(Instant::now());
                    s.send(Message::Text(body.into())).await?;
                    sent += 1;
                }
                match tokio::time::timeout(Duration::from_secs(30), s.next()).await.context("relay ack timeout")? {
                    Some(Ok(Message::Text(t))) if t.as_str() == "ack" => {
                        if let Some(at) = inflight.pop_front() {
                            lat.push(at.elapsed());
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => anyhow::bail!("relay closed"),
                }
            }
            Ok::<_, anyhow::Error>(lat)
        }));
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < per_sender {
                match r.next().await {
                    Some(Ok(Message::Text(_))) => got += 1,
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            Ok(Vec::new())
        }));
    }
    let mut samples = Samples::default();
    let mut count = 0;
    for t in tasks {
        let l = t.await??;
        count += l.len();
        samples.extend(l);
    }
    Ok((count, start.elapsed(), samples))
}
