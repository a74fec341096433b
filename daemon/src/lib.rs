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
//! - [`admin_socket`]: the peer-credential-checked Unix socket the `quickmeet` CLI uses.
//! - [`lan`]: the plain-HTTP [`landing`] port (CA download, redirects) and [`mdns`]
//!   discovery; [`systemd`]: READY/WATCHDOG/STOPPING notifications and journald logging.

pub mod admin_socket;
pub mod assets;
pub mod http;
pub mod lan;
pub mod landing;
pub mod limits;
pub mod mdns;
pub mod server;
pub mod systemd;
pub mod tls;
pub mod turn;
pub mod ws;

use anyhow::Context;
use quickmeet::accounts::{User, UserRecord};
use quickmeet::config::Config;
use quickmeet::Core;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Shared state of every handler, no globals. One pointer: every request and every open
/// WebSocket holds a clone, so cloning must not copy the ~2 KB of handles behind it.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] points to.
pub struct Shared {
    pub core: Core,
    pub hub: ws::hub::Hub,
    pub shutdown: CancellationToken,
    pub certs: Arc<tls::CertResolver>,
    pub ice: Arc<http::ice::IceConfig>,
    /// The embedded TURN server, when it runs.
    pub turn: Option<Arc<turn::TurnService>>,
    /// The admin socket, bound by [`build_state`] and served by [`serve_state`].
    pub admin_socket: Arc<std::sync::Mutex<Option<admin_socket::AdminSocket>>>,
    /// Rate limits, connection caps and timeouts against abusive or slow clients.
    pub limits: Arc<limits::Limits>,
    /// Sends whose commit is done, waiting to be acked and delivered.
    pub committed: Arc<ws::committed::Committed>,
}

impl Shared {
    /// The public view of an account with live presence.
    pub fn public_user(&self, rec: &UserRecord) -> User {
        let mut user = rec.public(self.hub.is_online(&rec.id));
        if !rec.deleted {
            if let Some(seen) = self.hub.pending_last_seen(&rec.id) {
                user.last_seen = Some(seen);
            }
        }
        user
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
    let names = quickmeet::certs::names_for(&core.config, listen);
    let cert = quickmeet::certs::ensure(&data_dir, &names, false).context("preparing the TLS certificate")?;
    let paths = quickmeet::certs::TlsPaths::new(&data_dir);
    let certs = tls::CertResolver::from_files(&paths.cert, &paths.key)?;
    let ca_pem = std::fs::read_to_string(&paths.ca_cert)?;
    Ok(Prepared { core, cert, ca_pem, certs })
}

/// Builds the shared state: the hub, the TURN server (or external TURN credentials).
pub async fn build_state(
    prepared: &Prepared,
    https: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<AppState> {
    let core = prepared.core.clone();
    let hub = ws::hub::Hub::new(core.clone());
    let (ice, turn) = start_turn(&core, https).await?;
    let access = admin_socket::Access::current(core.config.admin_group.as_deref())?;
    let admin = admin_socket::bind(&core.config.admin_socket_path(), access)?;
    let admin_socket = Arc::new(std::sync::Mutex::new(Some(admin)));
    let limits = Arc::new(limits::Limits::new(&core.config));
    let committed = Arc::new(ws::committed::Committed::default());
    let c = committed.clone();
    core.chat.set_after_commit(Arc::new(move || c.commit_done()));
    let shared = Shared {
        core,
        hub,
        shutdown: shutdown.clone(),
        certs: prepared.certs.clone(),
        ice: Arc::new(ice),
        turn,
        admin_socket,
        limits,
        committed: committed.clone(),
    };
    let state = Arc::new(shared);
    tokio::spawn(ws::committed::run(Arc::downgrade(&state), committed, shutdown));
    Ok(AppState(state))
}

/// Serves `state` until its shutdown token is cancelled, then closes every connection,
/// waits for the sessions' last presence writes, stops TURN and waits for the message
/// writer to commit what it holds.
pub async fn serve_state(state: AppState, listener: TcpListener) -> anyhow::Result<()> {
    let tls = tls::server_config(state.certs.clone())?;
    let (core, turn, shutdown) = (state.core.clone(), state.turn.clone(), state.shutdown.clone());
    let https = listener.local_addr()?;
    let admin = state.admin_socket.lock().expect("admin socket slot").take();
    let admin = admin.map(|sock| tokio::spawn(admin_socket::serve(sock, state.clone(), https)));
    let (limits, hub) = (state.limits.clone(), state.hub.clone());
    server::serve(listener, tls, http::app(state), limits, shutdown).await;
    // WebSocket sessions close on the same token; their last `lastSeen` writes go to the
    // store, which must not be released under them.
    hub.settle(std::time::Duration::from_secs(2)).await;
    if let Some(task) = admin {
        let _ = task.await;
    }
    if let Some(t) = turn {
        t.close().await;
    }
    core.chat.close().await;
    tracing::info!("quickmeetd stopped");
    Ok(())
}

/// Serves until `shutdown` is cancelled, telling `notifier` (systemd) READY once the
/// HTTPS, TURN, admin and landing listeners are all bound, and STOPPING when it ends.
pub async fn run(
    prepared: Prepared,
    listener: TcpListener,
    shutdown: CancellationToken,
    notifier: systemd::Notifier,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let cert = &prepared.cert;
    tracing::info!(%addr, fingerprint = %cert.fingerprint, ca_fingerprint = %cert.ca_fingerprint, "quickmeetd listening on https://{addr}/");
    notifier.status("starting: TURN, admin socket and landing port");
    let state = build_state(&prepared, addr, shutdown.clone()).await?;
    let lan = lan::Lan::bind(&prepared, addr).await?;
    let mut status = format!("serving https://{addr}/");
    if let Some(http) = lan.http_addr {
        status.push_str(&format!(", CA and install guide at http://{http}/install-ca"));
        tracing::info!(%http, "devices can fetch the CA from http://{http}/install-ca");
    }
    if let Some(turn) = &state.turn {
        status.push_str(&format!(", TURN on udp {}", turn.addr));
    }
    notifier.ready(&status);
    let supervisor = tokio::spawn(notifier.supervise(shutdown.clone()));
    let lan = tokio::spawn(lan.serve(shutdown));
    let served = serve_state(state, listener).await;
    let _ = lan.await;
    let _ = supervisor.await;
    served
}

/// Starts the embedded TURN server, or prepares credentials for an external one.
async fn start_turn(
    core: &Core,
    https: SocketAddr,
) -> anyhow::Result<(http::ice::IceConfig, Option<Arc<turn::TurnService>>)> {
    use http::ice::{IceConfig, IceTarget};
    use quickmeet::turn_credentials::TurnCredentials;
    let cfg = &core.config;
    let ttl_secs = cfg.turn_credential_ttl_secs;
    if !cfg.turn_external_urls.is_empty() {
        let path = cfg.turn_external_secret_file.as_ref().context("turn-external-secret-file is required")?;
        let secret = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let creds = TurnCredentials::new(secret.trim().as_bytes().to_vec());
        let target = IceTarget::External { urls: cfg.turn_external_urls.clone() };
        return Ok((IceConfig { target, creds, ttl_secs }, None));
    }
    let secret = quickmeet::store::load_or_create_secret(&cfg.data_dir, "turn.key", 32)?;
    let creds = TurnCredentials::new(secret);
    if !cfg.turn_enabled {
        return Ok((IceConfig { target: IceTarget::None, creds, ttl_secs }, None));
    }
    let relay_ip = cfg.turn_relay_ip.unwrap_or_else(|| turn::default_relay_ip(cfg.turn_listen));
    let limits = turn::TurnLimits {
        max_allocations: cfg.turn_max_allocations,
        max_per_user: cfg.turn_max_allocations_per_user,
        bytes_per_sec: cfg.turn_bandwidth_kbps * 1000 / 8,
        protected_ports: vec![https.port()],
    };
    let service = turn::TurnService::start(cfg.turn_listen, relay_ip, creds.clone(), core.accounts.clone(), limits)
        .await
        .with_context(|| format!("starting TURN on {}", cfg.turn_listen))?;
    let target = IceTarget::Embedded { port: service.addr.port() };
    Ok((IceConfig { target, creds, ttl_secs }, Some(Arc::new(service))))
}

/// A daemon running in the background of this process.
pub struct Running {
    pub addr: SocketAddr,
    /// Where the plain-HTTP landing port listens, when enabled.
    pub http_addr: Option<SocketAddr>,
    /// The CA that signed the server certificate, for clients to trust.
    pub ca_pem: String,
    pub state: AppState,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Binds `config.listen` and runs the daemon in a background task.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let prepared = tokio::task::spawn_blocking(move || prepare(config, addr)).await??;
    let ca_pem = prepared.ca_pem.clone();
    let shutdown = CancellationToken::new();
    let state = build_state(&prepared, addr, shutdown.clone()).await?;
    let lan = lan::Lan::bind(&prepared, addr).await?;
    let http_addr = lan.http_addr;
    let lan = tokio::spawn(lan.serve(shutdown.clone()));
    let served = serve_state(state.clone(), listener);
    let task = tokio::spawn(async move {
        let r = served.await;
        let _ = lan.await;
        r
    });
    Ok(Running { addr, http_addr, ca_pem, state, shutdown, task })
}

impl Running {
    /// Shuts down gracefully and waits until the data dir is released.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let Running { task, state, .. } = self;
        drop(state);
        task.await?
    }
}
