//! TLS for the HTTPS port: rustls with the ring provider, TLS 1.2 and 1.3 only. The server
//! certificate sits behind a resolver whose key can be swapped while the daemon runs, so a
//! renewed or imported certificate takes effect without a restart or dropped connections.

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The swappable server certificate.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// Loads the certificate chain and key from PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertResolver>> {
        Ok(Arc::new(CertResolver { current: RwLock::new(Arc::new(load(cert, key)?)) }))
    }

    /// Replaces the certificate for every new handshake; open connections are untouched.
    pub fn reload(&self, cert: &Path, key: &Path) -> anyhow::Result<()> {
        let ck = load(cert, key)?;
        *self.current.write().expect("cert lock") = Arc::new(ck);
        Ok(())
    }
}

/// Checks that a PEM certificate chain and PEM private key load and belong together, the
/// way [`CertResolver::reload`] will load them.
pub fn check_pair(cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("the certificate is not valid PEM")?;
    anyhow::ensure!(!chain.is_empty(), "no certificate found in the certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("the key is not a PEM private key")?;
    certified(chain, key).map(|_| ())
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("cert lock").clone())
    }
}

fn load(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    certified(chain, key)
}

fn certified(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> anyhow::Result<CertifiedKey> {
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .context("unsupported private key")?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().context("certificate and key do not match")?;
    Ok(ck)
}

/// A server config for HTTP/2 and HTTP/1.1 over TLS 1.2+.
pub fn server_config(resolver: Arc<CertResolver>) -> anyhow::Result<Arc<ServerConfig>> {
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

mod stream;
pub use stream::{accept, TlsStream};
