//! # quickmeetd
//!
//! The Quick Meet daemon: HTTPS API ([`http`]), WebSocket gateway ([`ws`]) and browser UI
//! ([`assets`]) on one port, over the domain core in the `quickmeet` crate. A tour:
//!
//! - [`run`] serves a configuration on an already-bound listener until a shutdown token
//!   is cancelled; [`start`] binds and runs it in the background (what tests use, on
//!   `127.0.0.1:0`); the `quickmeetd` binary only parses flags and calls [`run`].
//! - [`tls`]: rustls (ring) with a hot-swappable certificate; [`server`]: the accept loop.
//! - [`http`]: one `router()` per domain, errors mapped once in `http::error`.
//! - [`ws`]: the session loop and the [`ws::hub::Hub`] of connections and presence.

pub mod assets;
pub mod http;
pub mod server;
pub mod tls;
pub mod ws;

use anyhow::Context;
use quickmeet::accounts::{User, UserRecord};
use quickmeet::config::Config;
use quickmeet::Core;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Shared state of every handler: a `Clone` of `Arc` handles, no globals.
#[derive(Clone)]
pub struct AppState {
    pub core: Core,
    pub hub: ws::hub::Hub,
    pub shutdown: CancellationToken,
    pub certs: Arc<tls::CertResolver>,
}

impl AppState {
    /// The public view of an account with live presence.
    pub fn public_user(&self, rec: &UserRecord) -> User {
        rec.public(self.hub.is_online(&rec.id))
    }
}

/// Certificate details logged at start.
pub struct Prepared {
    pub core: Core,
    pub cert: quickmeet::certs::CertInfo,
    pub ca_pem: String,
    pub certs: Arc<tls::CertResolver>,
}

/// Opens the data dir and makes sure a certificate covering `listen` and every local
/// address exists.
pub fn prepare(config: Config, listen: SocketAddr) -> anyhow::Result<Prepared> {
    let data_dir = config.data_dir.clone();
    let core = Core::open(config).context("opening the data dir")?;
    let mut names = quickmeet::certs::local_names();
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.sort();
    names.dedup();
    let cert = quickmeet::certs::ensure(&data_dir, &names, false).context("preparing the TLS certificate")?;
    let paths = quickmeet::certs::TlsPaths::new(&data_dir);
    let certs = tls::CertResolver::from_files(&paths.cert, &paths.key)?;
    let ca_pem = std::fs::read_to_string(&paths.ca_cert)?;
    Ok(Prepared { core, cert, ca_pem, certs })
}

/// Serves until `shutdown` is cancelled, then closes every connection and waits for the
/// message writer to commit what it holds.
pub async fn run(prepared: Prepared, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Prepared { core, cert, certs, .. } = prepared;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, fingerprint = %cert.fingerprint, ca_fingerprint = %cert.ca_fingerprint, "quickmeetd listening on https://{addr}/");
    let hub = ws::hub::Hub::new(core.clone());
    let state = AppState { core: core.clone(), hub, shutdown: shutdown.clone(), certs: certs.clone() };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(certs)?);
    server::serve(listener, acceptor, http::app(state), shutdown).await;
    core.chat.close().await;
    tracing::info!("quickmeetd stopped");
    Ok(())
}

/// A daemon running in the background of this process.
pub struct Running {
    pub addr: SocketAddr,
    /// The CA that signed the server certificate, for clients to trust.
    pub ca_pem: String,
    pub core: Core,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Binds `config.listen` and runs the daemon in a background task.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let prepared = tokio::task::spawn_blocking(move || prepare(config, addr)).await??;
    let ca_pem = prepared.ca_pem.clone();
    let core = prepared.core.clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(prepared, listener, shutdown.clone()));
    Ok(Running { addr, ca_pem, core, shutdown, task })
}

impl Running {
    /// Shuts down gracefully and waits until the data dir is released.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let Running { task, core, .. } = self;
        drop(core);
        task.await?
    }
}
