//! LAN discovery: advertises `<mdns-name>.local` (A/AAAA records) and an `_https._tcp`
//! service on the HTTPS port over multicast DNS, so people can type
//! `https://quickmeet.local/` instead of an address. The server certificate names
//! `<mdns-name>.local` too (see [`quickmeet::certs::names_for`]).

use anyhow::Context;
use mdns_sd::{ServiceDaemon, ServiceInfo};
use std::net::SocketAddr;

/// The DNS-SD service type browsers and discovery apps look for.
pub const SERVICE_TYPE: &str = "_https._tcp.local.";

/// A running advertisement; [`Advertiser::stop`] says goodbye so caches forget it at once.
pub struct Advertiser {
    daemon: ServiceDaemon,
    fullname: String,
}

/// The host name advertised for `name`: `quickmeet` → `quickmeet.local.`.
pub fn host_name(name: &str) -> String {
    format!("{name}.local.")
}

/// What is advertised for `name` serving HTTPS on `https`. A specific listen address is
/// advertised as it is; an unspecified one (`0.0.0.0`) lets mdns-sd publish every
/// interface address and follow them as they change.
pub fn service_info(name: &str, https: SocketAddr) -> anyhow::Result<ServiceInfo> {
    let properties = [("path", "/")];
    let host = host_name(name);
    let info = if https.ip().is_unspecified() {
        ServiceInfo::new(SERVICE_TYPE, name, &host, "", https.port(), &properties[..])?.enable_addr_auto()
    } else {
        ServiceInfo::new(SERVICE_TYPE, name, &host, https.ip(), https.port(), &properties[..])?
    };
    Ok(info)
}

impl Advertiser {
    /// Starts advertising. A loopback-only daemon is not advertised: other devices could
    /// not reach it, and a test must never announce itself on the LAN.
    pub fn start(name: &str, https: SocketAddr) -> anyhow::Result<Option<Advertiser>> {
        if https.ip().is_loopback() {
            tracing::info!(%https, "not advertising over mDNS: the HTTPS listener is loopback-only");
            return Ok(None);
        }
        let info = service_info(name, https)?;
        let fullname = info.get_fullname().to_string();
        let daemon = ServiceDaemon::new().context("starting the mDNS responder")?;
        daemon.register(info).context("registering the mDNS service")?;
        tracing::info!(host = %host_name(name), port = https.port(), "advertising over mDNS");
        Ok(Some(Advertiser { daemon, fullname }))
    }

    /// Withdraws the service (goodbye packets) and stops the responder thread.
    pub fn stop(self) {
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(std::time::Duration::from_secs(1));
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = done.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_is_https_on_the_listen_port_under_the_configured_name() {
        let info = service_info("front-desk", "0.0.0.0:443".parse().unwrap()).unwrap();
        assert_eq!(info.get_type(), "_https._tcp.local.");
        assert_eq!(info.get_fullname(), "front-desk._https._tcp.local.");
        assert_eq!(info.get_hostname(), "front-desk.local.");
        assert_eq!(info.get_port(), 443);
        assert_eq!(info.get_property_val_str("path"), Some("/"));
        assert!(info.is_addr_auto(), "an unspecified listen address follows the interfaces");
        assert!(info.get_addresses_v4().is_empty());
    }

    #[test]
    fn a_specific_listen_address_is_advertised_as_it_is() {
        let info = service_info("quickmeet", "192.168.1.10:8443".parse().unwrap()).unwrap();
        assert!(!info.is_addr_auto());
        let v4: Vec<String> = info.get_addresses_v4().iter().map(|a| a.to_string()).collect();
        assert_eq!(v4, vec!["192.168.1.10".to_string()]);
        assert_eq!(info.get_port(), 8443);
    }

    #[test]
    fn a_loopback_daemon_is_never_advertised() {
        assert!(Advertiser::start("quickmeet", "127.0.0.1:8443".parse().unwrap()).unwrap().is_none());
    }
}
