//! What the daemon offers the LAN besides the HTTPS port: the plain-HTTP landing port
//! ([`crate::landing`]) and the mDNS advertisement ([`crate::mdns`]). Bound before the
//! daemon reports READY, served beside the HTTPS server, withdrawn on shutdown.

use crate::{landing, mdns, Prepared};
use anyhow::Context;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The bound landing port and the running advertisement, not yet served.
pub struct Lan {
    landing: Option<(TcpListener, axum::Router)>,
    /// Where the landing port listens, when it is enabled.
    pub http_addr: Option<SocketAddr>,
    mdns: Option<mdns::Advertiser>,
}

impl Lan {
    /// Binds the landing port (an error when it cannot be bound: the admin asked for it)
    /// and starts the mDNS advertisement (only a warning when the network has no
    /// multicast: the appliance stays reachable by address).
    pub async fn bind(prepared: &Prepared, https: SocketAddr) -> anyhow::Result<Lan> {
        let cfg = &prepared.core.config;
        let mdns_host = cfg.mdns_enabled.then(|| format!("{}.local", cfg.mdns_name));
        let mut lan = Lan { landing: None, http_addr: None, mdns: None };
        if cfg.http_enabled {
            let listener = TcpListener::bind(cfg.http_listen)
                .await
                .with_context(|| format!("binding the landing port {} (http-listen)", cfg.http_listen))?;
            lan.http_addr = Some(listener.local_addr()?);
            let app = landing::router(landing::Landing {
                https_port: https.port(),
                ca_pem: prepared.ca_pem.clone(),
                mdns_host,
            });
            lan.landing = Some((listener, app));
        }
        if cfg.mdns_enabled {
            match mdns::Advertiser::start(&cfg.mdns_name, https) {
                Ok(a) => lan.mdns = a,
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "mDNS advertisement unavailable"),
            }
        }
        Ok(lan)
    }

    /// Serves the landing port until `shutdown`, then withdraws the advertisement.
    pub async fn serve(self, shutdown: CancellationToken) {
        if let Some((listener, app)) = self.landing {
            landing::serve(listener, app, shutdown).await;
        } else {
            shutdown.cancelled().await;
        }
        if let Some(m) = self.mdns {
            let _ = tokio::task::spawn_blocking(move || m.stop()).await;
        }
    }
}
