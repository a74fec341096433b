//! The embedded TURN/STUN server (webrtc-rs `turn`) inside the daemon's runtime, so calls
//! work on a LAN with no internet, across subnets and through NATs. What the stock server
//! lacks is added around it:
//!
//! - authentication with short-lived TURN REST credentials of existing, enabled users;
//! - allocation quotas in total and per user (the allocation request is authenticated
//!   just before its relay socket is made, on the listener's one request loop, so the
//!   relay generator knows whose allocation it is creating);
//! - relay sockets that refuse to send to loopback, link-local, multicast and the
//!   daemon's own service ports (except to our own relay allocations, so two relayed
//!   peers always reach each other), cap bandwidth per allocation and count relayed bytes.

use async_trait::async_trait;
use quickmeet::accounts::Accounts;
use quickmeet::ids::UserId;
use quickmeet::turn_credentials::{parse_username, TurnCredentials};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use turn::auth::{generate_auth_key, AuthHandler};
use turn::relay::RelayAddressGenerator;
use turn::server::config::{ConnConfig, ServerConfig};
use webrtc_util::Conn;

/// The realm of our credentials.
pub const REALM: &str = "quickmeet";

/// Allocation and traffic figures for the admin.
#[derive(Default)]
pub struct TurnStats {
    relays: Mutex<HashMap<SocketAddr, UserId>>,
    relayed_bytes: AtomicU64,
    refused_packets: AtomicU64,
}

impl TurnStats {
    /// Allocations open now.
    pub fn allocations(&self) -> usize {
        self.relays.lock().expect("turn stats").len()
    }
    /// Bytes relayed in both directions since start.
    pub fn relayed_bytes(&self) -> u64 {
        self.relayed_bytes.load(Ordering::Relaxed)
    }
    /// Packets dropped by the destination filter or the bandwidth cap.
    pub fn refused_packets(&self) -> u64 {
        self.refused_packets.load(Ordering::Relaxed)
    }
    fn is_relay(&self, addr: &SocketAddr) -> bool {
        self.relays.lock().expect("turn stats").contains_key(addr)
    }
}

/// Limits applied to relaying.
#[derive(Clone)]
pub struct TurnLimits {
    pub max_allocations: usize,
    pub max_per_user: usize,
    pub bytes_per_sec: u64,
    /// Ports of the daemon's own services, refused as relay destinations on local addresses.
    pub protected_ports: Vec<u16>,
}

/// The running TURN server.
pub struct TurnService {
    server: turn::server::Server,
    pub addr: SocketAddr,
    pub stats: Arc<TurnStats>,
}

impl TurnService {
    /// Binds `listen` (UDP) and serves TURN and STUN on it, relaying on `relay_ip`.
    pub async fn start(
        listen: SocketAddr,
        relay_ip: IpAddr,
        creds: TurnCredentials,
        accounts: Accounts,
        limits: TurnLimits,
    ) -> anyhow::Result<TurnService> {
        let sock = UdpSocket::bind(listen).await?;
        let addr = sock.local_addr()?;
        let stats = Arc::new(TurnStats::default());
        let last_user = Arc::new(Mutex::new(None));
        let mut limits = limits;
        limits.protected_ports.push(addr.port());
        let local_ips: HashSet<IpAddr> =
            quickmeet::certs::local_names().iter().filter_map(|n| n.parse().ok()).chain([relay_ip]).collect();
        let generator = RelayGen {
            ip: relay_ip,
            stats: stats.clone(),
            last_user: last_user.clone(),
            limits,
            local_ips: Arc::new(local_ips),
        };
        let server = turn::server::Server::new(ServerConfig {
            conn_configs: vec![ConnConfig { conn: Arc::new(sock), relay_addr_generator: Box::new(generator) }],
            realm: REALM.to_string(),
            auth_handler: Arc::new(Auth { creds, accounts, last_user }),
            channel_bind_timeout: std::time::Duration::from_secs(600),
            alloc_close_notify: None,
        })
        .await?;
        tracing::info!(%addr, %relay_ip, "TURN/STUN listening");
        Ok(TurnService { server, addr, stats })
    }

    /// Stops serving and closes every allocation.
    pub async fn close(&self) {
        let _ = self.server.close().await;
    }
}

/// The address to advertise for relays when none is configured: the listen address if
/// specific, else the first private (then any) non-loopback IPv4 address, else loopback.
pub fn default_relay_ip(listen: SocketAddr) -> IpAddr {
    if !listen.ip().is_unspecified() {
        return listen.ip();
    }
    let v4: Vec<std::net::Ipv4Addr> = quickmeet::certs::local_names()
        .iter()
        .filter_map(|n| n.parse().ok())
        .filter(|ip: &std::net::Ipv4Addr| !ip.is_loopback() && !ip.is_link_local())
        .collect();
    v4.iter()
        .find(|ip| ip.is_private())
        .or(v4.first())
        .map(|ip| IpAddr::V4(*ip))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

struct Auth {
    creds: TurnCredentials,
    accounts: Accounts,
    last_user: Arc<Mutex<Option<UserId>>>,
}

impl AuthHandler for Auth {
    fn auth_handle(&self, username: &str, realm: &str, src: SocketAddr) -> Result<Vec<u8>, turn::Error> {
        let refused = || turn::Error::Other("credentials refused".into());
        let (_, user) = parse_username(username, quickmeet::clock::unix_now()).ok_or_else(refused)?;
        if !self.accounts.exists(&user) {
            return Err(refused());
        }
        tracing::trace!(%src, %user, "TURN request authenticated");
        *self.last_user.lock().expect("turn auth") = Some(user);
        Ok(generate_auth_key(username, realm, &self.creds.password(username)))
    }
}

struct RelayGen {
    ip: IpAddr,
    stats: Arc<TurnStats>,
    last_user: Arc<Mutex<Option<UserId>>>,
    limits: TurnLimits,
    local_ips: Arc<HashSet<IpAddr>>,
}

#[async_trait]
impl RelayAddressGenerator for RelayGen {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }

    async fn allocate_conn(
        &self,
        _use_ipv4: bool,
        _port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let user = self.last_user.lock().expect("turn auth").clone().ok_or(turn::Error::ErrNoAllocationFound)?;
        {
            let relays = self.stats.relays.lock().expect("turn stats");
            if relays.len() >= self.limits.max_allocations
                || relays.values().filter(|u| **u == user).count() >= self.limits.max_per_user
            {
                tracing::warn!(%user, "TURN allocation refused: quota reached");
                return Err(turn::Error::Other("allocation quota exceeded".into()));
            }
        }
        let sock = UdpSocket::bind((self.ip, 0)).await.map_err(|e| turn::Error::Other(e.to_string()))?;
        let addr = sock.local_addr().map_err(|e| turn::Error::Other(e.to_string()))?;
        self.stats.relays.lock().expect("turn stats").insert(addr, user);
        let conn = RelayConn {
            sock,
            addr,
            stats: self.stats.clone(),
            limits: self.limits.clone(),
            local_ips: self.local_ips.clone(),
            closed: AtomicBool::new(false),
            close_notify: Notify::new(),
            inbound: Bucket::new(self.limits.bytes_per_sec),
            outbound: Bucket::new(self.limits.bytes_per_sec),
        };
        Ok((Arc::new(conn), addr))
    }
}

/// A token bucket of bytes, one second deep.
struct Bucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(bytes_per_sec: u64) -> Bucket {
        Bucket { rate: bytes_per_sec as f64, state: Mutex::new((bytes_per_sec as f64, Instant::now())) }
    }

    fn take(&self, n: usize) -> bool {
        let mut s = self.state.lock().expect("bucket");
        let now = Instant::now();
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.rate);
        s.1 = now;
        if s.0 >= n as f64 {
            s.0 -= n as f64;
            true
        } else {
            false
        }
    }
}

struct RelayConn {
    sock: UdpSocket,
    addr: SocketAddr,
    stats: Arc<TurnStats>,
    limits: TurnLimits,
    local_ips: Arc<HashSet<IpAddr>>,
    closed: AtomicBool,
    close_notify: Notify,
    inbound: Bucket,
    outbound: Bucket,
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl RelayConn {
    /// Whether relaying to `target` is allowed.
    fn allowed(&self, target: &SocketAddr) -> bool {
        if self.stats.is_relay(target) {
            return true;
        }
        let ip = canonical(target.ip());
        let forbidden_range = match ip {
            IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()
            }
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        };
        let own_service = self.local_ips.contains(&ip) && self.limits.protected_ports.contains(&target.port());
        !(forbidden_range || own_service || target.port() == 0)
    }

    fn refuse(&self) {
        self.stats.refused_packets.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl Conn for RelayConn {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(webrtc_util::Error::Other("relay sockets are not connected".into()))
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(webrtc_util::Error::Other("relay closed".into()));
            }
            let (n, from) = tokio::select! {
                r = self.sock.recv_from(buf) => r?,
                _ = self.close_notify.notified() => continue,
            };
            if !self.inbound.take(n) {
                self.refuse();
                continue;
            }
            self.stats.relayed_bytes.fetch_add(n as u64, Ordering::Relaxed);
            return Ok((n, from));
        }
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("relay sockets need a destination".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.allowed(&target) || !self.outbound.take(buf.len()) {
            // Dropped like any lost datagram; the peer's ICE will not use this path.
            self.refuse();
            return Ok(buf.len());
        }
        self.stats.relayed_bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(self.sock.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.addr)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.stats.relays.lock().expect("turn stats").remove(&self.addr);
            self.close_notify.notify_waiters();
        }
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

impl Drop for RelayConn {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.stats.relays.lock().expect("turn stats").remove(&self.addr);
        }
    }
}
