//! The appliance's own certificate authority. First start creates a local CA and a server
//! certificate signed by it that names the host name, `<host>.local`, `localhost`,
//! `127.0.0.1`, `::1` and every interface address. Both live in `<data-dir>/tls/` (keys
//! mode 0600) and are reused; the server certificate is re-issued (same CA, so devices keep
//! trusting it) when an address or name is no longer covered or expiry is near.

mod import;

pub use import::{current, inspect, install_imported, matches_name, Inspected};

use crate::error::{Error, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Days a server certificate is valid (within what browsers accept for private CAs).
const SERVER_DAYS: i64 = 397;
/// Re-issue when fewer days than this remain.
const RENEW_DAYS: i64 = 30;
const CA_DAYS: i64 = 3650;

/// What is known about the current server certificate, kept beside it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    /// Every DNS name and IP address the certificate covers.
    pub names: Vec<String>,
    /// Expiry, RFC 3339.
    pub not_after: String,
    /// SHA-256 fingerprint of the server certificate (DER), colon-separated hex.
    pub fingerprint: String,
    /// SHA-256 fingerprint of the CA certificate.
    pub ca_fingerprint: String,
    /// Supplied by an administrator (`quickmeet cert import`) rather than issued by the
    /// local CA: kept as it is until it nears expiry or `cert renew` replaces it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
}

/// Paths of the PEM files in `<data-dir>/tls/`.
#[derive(Clone, Debug)]
pub struct TlsPaths {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub info: PathBuf,
}

impl TlsPaths {
    /// The layout under a data dir.
    pub fn new(data_dir: &Path) -> TlsPaths {
        let dir = data_dir.join("tls");
        TlsPaths {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            info: dir.join("server.json"),
            dir,
        }
    }
}

/// The names this machine should be reachable by right now.
pub fn local_names() -> Vec<String> {
    let mut names = BTreeSet::new();
    names.insert("localhost".to_string());
    names.insert("127.0.0.1".to_string());
    names.insert("::1".to_string());
    if let Ok(h) = nix::unistd::gethostname() {
        if let Some(h) = h.to_str().filter(|h| !h.is_empty()) {
            let short = h.split('.').next().unwrap_or(h).to_ascii_lowercase();
            names.insert(h.to_ascii_lowercase());
            names.insert(format!("{short}.local"));
        }
    }
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(sa) = a.address else { continue };
            let ip: Option<IpAddr> = if let Some(v4) = sa.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                sa.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            };
            if let Some(ip) = ip {
                // Link-local v6 addresses need a zone id, which certificates cannot carry.
                if let IpAddr::V6(v6) = ip {
                    if v6.segments()[0] & 0xffc0 == 0xfe80 {
                        continue;
                    }
                }
                names.insert(ip.to_string());
            }
        }
    }
    names.into_iter().collect()
}

/// The names a server certificate for a daemon with `config` listening on `listen` should
/// cover: every local name and address, the listen address when it is a specific one, and
/// `<mdns-name>.local` when mDNS is on. The daemon and the offline `quickmeet cert renew`
/// agree on this, so a certificate renewed offline is the one the next start serves.
pub fn names_for(config: &crate::config::Config, listen: std::net::SocketAddr) -> Vec<String> {
    let mut names = local_names();
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    if config.mdns_enabled {
        names.push(format!("{}.local", config.mdns_name.to_ascii_lowercase()));
    }
    names.sort();
    names.dedup();
    names
}

/// SHA-256 of DER bytes as `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

pub(crate) fn write_private(path: &Path, data: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(data.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub(crate) fn write_public(path: &Path, data: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub(crate) fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).map_err(|e| Error::Internal(format!("bad PEM: {e}")))
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    p.distinguished_name.push(DnType::CommonName, format!("Quick Meet local CA {host}").trim().to_string());
    p.distinguished_name.push(DnType::OrganizationName, "Quick Meet");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(CA_DAYS);
    p
}

/// Makes sure a CA and a server certificate covering `wanted` exist; returns their info.
/// `force` re-issues the server certificate even when the current one is fine.
pub fn ensure(data_dir: &Path, wanted: &[String], force: bool) -> Result<CertInfo> {
    let paths = TlsPaths::new(data_dir);
    std::fs::create_dir_all(&paths.dir)?;
    let (ca_pem, ca_key) = if paths.ca_cert.exists() && paths.ca_key.exists() {
        (std::fs::read_to_string(&paths.ca_cert)?, KeyPair::from_pem(&std::fs::read_to_string(&paths.ca_key)?)?)
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params().self_signed(&key)?;
        write_private(&paths.ca_key, &key.serialize_pem())?;
        write_public(&paths.ca_cert, &cert.pem())?;
        tracing::info!("created a new local certificate authority");
        (cert.pem(), key)
    };
    let ca_fp = fingerprint(&pem_to_der(&ca_pem)?);
    let current: Option<CertInfo> = std::fs::read(&paths.info).ok().and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(info) = current.filter(|_| !force && paths.cert.exists() && paths.key.exists()) {
        let covered: BTreeSet<&String> = info.names.iter().collect();
        let fresh = OffsetDateTime::parse(&info.not_after, &time::format_description::well_known::Rfc3339)
            .map(|t| t - OffsetDateTime::now_utc() > Duration::days(RENEW_DAYS))
            .unwrap_or(false);
        let missing: Vec<&String> = wanted.iter().filter(|n| !covered.contains(n)).collect();
        if fresh && (info.imported || (missing.is_empty() && info.ca_fingerprint == ca_fp)) {
            return Ok(info);
        }
        tracing::info!(?missing, fresh, "re-issuing the server certificate");
    }
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let mut names: BTreeSet<String> = wanted.iter().cloned().collect();
    names.insert("localhost".into());
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, names.iter().find(|n| n.parse::<IpAddr>().is_err()).cloned().unwrap_or_default());
    p.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
        })
        .collect::<std::result::Result<_, rcgen::Error>>()?;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(SERVER_DAYS);
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    let info = CertInfo {
        names: names.into_iter().collect(),
        not_after: crate::clock::format_rfc3339(p.not_after),
        fingerprint: fingerprint(cert.der()),
        ca_fingerprint: ca_fp,
        imported: false,
    };
    write_private(&paths.key, &key.serialize_pem())?;
    write_public(&paths.cert, &format!("{}{}", cert.pem(), ca_pem))?;
    write_public(&paths.info, &serde_json::to_string_pretty(&info)?)?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn first_start_creates_private_keys_and_a_reusable_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let names = local_names();
        assert!(names.contains(&"127.0.0.1".to_string()) && names.contains(&"localhost".to_string()));
        let a = ensure(dir.path(), &names, false).unwrap();
        let p = TlsPaths::new(dir.path());
        for key in [&p.ca_key, &p.key] {
            assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let b = ensure(dir.path(), &names, false).unwrap();
        assert_eq!(a, b, "an unchanged machine reuses its certificate");
    }

    #[test]
    fn a_new_address_reissues_the_server_certificate_under_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure(dir.path(), &["127.0.0.1".to_string()], false).unwrap();
        let b = ensure(dir.path(), &["127.0.0.1".to_string(), "10.9.8.7".to_string()], false).unwrap();
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_eq!(a.ca_fingerprint, b.ca_fingerprint);
        assert!(b.names.contains(&"10.9.8.7".to_string()));
    }
}
