//! Reading certificates back: what the current one covers and until when, and checking an
//! administrator-supplied certificate before it replaces ours (it must be valid now and
//! name this host). Whether its key matches is checked by the daemon's TLS stack, which
//! is the one that has to load it.

use super::{fingerprint, pem_to_der, write_private, write_public, CertInfo, TlsPaths};
use crate::error::{Error, Result};
use std::net::IpAddr;
use std::path::Path;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// What a certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspected {
    /// DNS names and IP addresses of its subject alternative names.
    pub names: Vec<String>,
    /// Start and end of validity, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the DER, colon-separated hex.
    pub fingerprint: String,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Invalid("invalid_certificate", msg.into())
}

/// Parses the first certificate of a PEM chain.
pub fn inspect(cert_pem: &str) -> Result<Inspected> {
    let first = cert_pem
        .split_inclusive("-----END CERTIFICATE-----")
        .next()
        .filter(|p| p.contains("-----BEGIN CERTIFICATE-----"))
        .ok_or_else(|| bad("no PEM certificate found (expected -----BEGIN CERTIFICATE-----)"))?;
    let der = pem_to_der(first.trim()).map_err(|_| bad("the certificate is not valid PEM"))?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| bad(format!("the certificate does not parse: {e}")))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => names.push(IpAddr::from(<[u8; 4]>::try_from(*b).expect("4 bytes")).to_string()),
                    16 => names.push(IpAddr::from(<[u8; 16]>::try_from(*b).expect("16 bytes")).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let v = cert.validity();
    Ok(Inspected {
        names,
        not_before: v.not_before.timestamp(),
        not_after: v.not_after.timestamp(),
        fingerprint: fingerprint(&der),
    })
}

/// Whether certificate name `pattern` (possibly `*.example.com`) covers `host`.
pub fn matches_name(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match p.strip_prefix("*.") {
        Some(rest) => h.split_once('.').is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => p == h,
    }
}

/// The host names an imported certificate must cover one of: the host name as the system
/// knows it, its short form and `<short>.local`.
fn host_names() -> Vec<String> {
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    let host = host.to_ascii_lowercase();
    let short = host.split('.').next().unwrap_or_default().to_string();
    let mut v = vec![host, short.clone(), format!("{short}.local")];
    v.retain(|n| !n.is_empty() && n != ".local");
    v.dedup();
    v
}

/// Checks an administrator-supplied certificate against the clock and this host, then
/// writes it (and its key) as the server certificate. The caller has checked that the key
/// matches and reloads the TLS stack afterwards.
pub fn install_imported(data_dir: &Path, cert_pem: &str, key_pem: &str, now: i64) -> Result<CertInfo> {
    let c = inspect(cert_pem)?;
    if c.not_after <= now {
        return Err(bad("the certificate has expired; ask its issuer for a new one"));
    }
    if c.not_before > now {
        return Err(bad("the certificate is not valid yet; check this machine's clock"));
    }
    let hosts = host_names();
    if !c.names.iter().any(|n| hosts.iter().any(|h| matches_name(n, h))) {
        return Err(bad(format!(
            "the certificate names {:?} but none covers this host ({}); issue it for one of those names",
            c.names,
            hosts.join(", ")
        )));
    }
    let paths = TlsPaths::new(data_dir);
    std::fs::create_dir_all(&paths.dir)?;
    let ca_fingerprint = match std::fs::read_to_string(&paths.ca_cert) {
        Ok(pem) => fingerprint(&pem_to_der(&pem)?),
        Err(_) => String::new(),
    };
    let not_after = time::OffsetDateTime::from_unix_timestamp(c.not_after).map_err(|e| bad(e.to_string()))?;
    let info = CertInfo {
        names: c.names,
        not_after: crate::clock::format_rfc3339(not_after),
        fingerprint: c.fingerprint,
        ca_fingerprint,
        imported: true,
    };
    write_private(&paths.key, key_pem)?;
    write_public(&paths.cert, cert_pem)?;
    write_public(&paths.info, &serde_json::to_string_pretty(&info)?)?;
    Ok(info)
}

/// The current server certificate as recorded beside it.
pub fn current(data_dir: &Path) -> Result<CertInfo> {
    let paths = TlsPaths::new(data_dir);
    let bytes = std::fs::read(&paths.info).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound("certificate"),
        _ => Error::from(e),
    })?;
    Ok(serde_json::from_slice(&bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn self_signed(names: &[&str], days: (i64, i64)) -> (String, String) {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::days(days.0);
        p.not_after = now + time::Duration::days(days.1);
        let key = KeyPair::generate().unwrap();
        (p.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn wildcards_cover_exactly_one_label() {
        assert!(matches_name("*.lan", "box.lan"));
        assert!(!matches_name("*.lan", "a.box.lan"));
        assert!(!matches_name("*.lan", "lan"));
        assert!(matches_name("Box.LAN", "box.lan"));
    }

    #[test]
    fn an_issued_certificate_reads_back_with_its_names_and_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let info = super::super::ensure(dir.path(), &["127.0.0.1".into(), "box.lan".into()], false).unwrap();
        let pem = std::fs::read_to_string(TlsPaths::new(dir.path()).cert).unwrap();
        let i = inspect(&pem).unwrap();
        assert_eq!(i.fingerprint, info.fingerprint);
        assert!(i.names.contains(&"127.0.0.1".to_string()) && i.names.contains(&"box.lan".to_string()));
        assert_eq!(current(dir.path()).unwrap(), info);
    }

    #[test]
    fn an_import_must_be_current_and_name_this_host() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::clock::unix_now() as i64;
        let host = host_names().remove(0);
        let (pem, key) = self_signed(&["elsewhere.example"], (-1, 30));
        let e = install_imported(dir.path(), &pem, &key, now).unwrap_err().to_string();
        assert!(e.contains("none covers this host"), "{e}");
        let (pem, key) = self_signed(&[&host], (-30, -1));
        assert!(install_imported(dir.path(), &pem, &key, now).unwrap_err().to_string().contains("expired"));
        let (pem, key) = self_signed(&[&host], (1, 30));
        assert!(install_imported(dir.path(), &pem, &key, now).unwrap_err().to_string().contains("not valid yet"));
        assert!(install_imported(dir.path(), "junk", &key, now).is_err());
        let (pem, key) = self_signed(&[&host], (-1, 60));
        let info = install_imported(dir.path(), &pem, &key, now).unwrap();
        assert!(info.imported);
        // A restart keeps the imported certificate even though it lacks the LAN addresses.
        let again = super::super::ensure(dir.path(), &["10.1.2.3".into()], false).unwrap();
        assert_eq!(again.fingerprint, info.fingerprint);
        // An explicit renewal goes back to the local CA.
        let renewed = super::super::ensure(dir.path(), &["10.1.2.3".into()], true).unwrap();
        assert!(!renewed.imported && renewed.fingerprint != info.fingerprint);
    }
}
