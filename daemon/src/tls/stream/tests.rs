use super::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_rustls::client::TlsStream as ClientStream;

/// A server config with a fresh certificate, and a client config trusting its CA.
fn configs(versions: &[&'static rustls::SupportedProtocolVersion]) -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
    let dir = tempfile::tempdir().unwrap();
    quickmeet::certs::ensure(dir.path(), &["localhost".into()], false).unwrap();
    let paths = quickmeet::certs::TlsPaths::new(dir.path());
    let server =
        super::super::server_config(super::super::CertResolver::from_files(&paths.cert, &paths.key).unwrap()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&paths.ca_cert).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server, Arc::new(client))
}

/// A handshake across a pipe of `capacity` bytes, so reads and writes come in pieces.
async fn pair(
    capacity: usize,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (TlsStream<DuplexStream>, ClientStream<DuplexStream>) {
    let (server_cfg, client_cfg) = configs(versions);
    let (a, b) = duplex(capacity);
    let connector = tokio_rustls::TlsConnector::from(client_cfg);
    let client = connector.connect(ServerName::try_from("localhost").unwrap(), b);
    let (server, client) = tokio::join!(accept(server_cfg, a), client);
    (server.unwrap(), client.unwrap())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

async fn echo(mut server: TlsStream<DuplexStream>, len: usize) -> TlsStream<DuplexStream> {
    let mut buf = vec![0; 5000];
    let mut seen = 0;
    while seen < len {
        let n = server.read(&mut buf).await.unwrap();
        assert!(n > 0, "the client closed early");
        server.write_all(&buf[..n]).await.unwrap();
        server.flush().await.unwrap();
        seen += n;
    }
    server
}

async fn send_and_check(client: &mut ClientStream<DuplexStream>, data: &[u8]) {
    let (mut r, mut w) = tokio::io::split(client);
    let write = async {
        w.write_all(data).await.unwrap();
        w.flush().await.unwrap();
    };
    let read = async {
        let mut back = vec![0; data.len()];
        r.read_exact(&mut back).await.unwrap();
        back
    };
    let ((), back) = tokio::join!(write, read);
    assert!(back == data, "the echo differs from what was sent");
}

#[tokio::test]
async fn a_megabyte_crosses_a_narrow_pipe_both_ways_intact_over_tls_1_3_and_1_2() {
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let (server, mut client) = pair(977, versions).await;
        let data = pattern(1 << 20, 7);
        let server = tokio::spawn(echo(server, data.len()));
        send_and_check(&mut client, &data).await;
        server.await.unwrap();
    }
}

#[tokio::test]
async fn an_idle_stream_holds_no_buffers_between_messages() {
    let (mut server, mut client) = pair(64 * 1024, &[&rustls::version::TLS13]).await;
    client.write_all(&pattern(40_000, 1)).await.unwrap();
    client.flush().await.unwrap();
    let mut got = vec![0; 40_000];
    server.read_exact(&mut got).await.unwrap();
    server.write_all(&pattern(30_000, 2)).await.unwrap();
    server.flush().await.unwrap();
    let mut back = vec![0; 30_000];
    client.read_exact(&mut back).await.unwrap();
    assert_eq!(back, pattern(30_000, 2));

    // Parked in a read with nothing to read, as an idle WebSocket is.
    let mut one = [0u8; 1];
    assert!(tokio::time::timeout(Duration::from_millis(20), server.read(&mut one)).await.is_err());
    assert_eq!(
        (server.incoming.capacity(), server.q.plaintext.capacity(), server.q.outgoing.capacity()),
        (0, 0, 0),
        "an idle stream keeps buffers"
    );
}

#[tokio::test]
async fn data_still_flows_after_the_client_updates_its_keys() {
    let (server, mut client) = pair(4096, &[&rustls::version::TLS13]).await;
    let server = tokio::spawn(echo(server, 3 * 10_000));
    send_and_check(&mut client, &pattern(10_000, 3)).await;
    // A KeyUpdate asking the server to update its keys too.
    client.get_mut().1.refresh_traffic_keys().unwrap();
    send_and_check(&mut client, &pattern(10_000, 4)).await;
    send_and_check(&mut client, &pattern(10_000, 5)).await;
    server.await.unwrap();
}

#[tokio::test]
async fn shutdown_sends_close_notify_and_a_closing_client_reads_as_end_of_file() {
    let (mut server, mut client) = pair(4096, &[&rustls::version::TLS13]).await;
    server.shutdown().await.unwrap();
    let mut buf = Vec::new();
    // tokio-rustls reports a close without close_notify as an error.
    assert_eq!(client.read_to_end(&mut buf).await.unwrap(), 0);
    assert!(server.write_all(b"late").await.is_err(), "a write after shutdown was taken");

    let (mut server, mut client) = pair(4096, &[&rustls::version::TLS13]).await;
    client.shutdown().await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(server.read_to_end(&mut buf).await.unwrap(), 0);
}

#[tokio::test]
async fn a_peer_speaking_plain_http_fails_the_handshake_with_an_alert() {
    let (server_cfg, _) = configs(&[&rustls::version::TLS13]);
    let (a, mut b) = duplex(4096);
    let server = tokio::spawn(accept(server_cfg, a));
    b.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let err = server.await.unwrap().err().expect("a plain HTTP request passed the handshake");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let mut reply = Vec::new();
    b.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply.first(), Some(&21), "no TLS alert record came back: {reply:?}");
}

#[tokio::test]
async fn a_peer_closing_mid_record_is_an_error_not_end_of_file() {
    let (mut server, mut client) = pair(4096, &[&rustls::version::TLS13]).await;
    // The header of a 100-byte application data record, and only 10 of its bytes.
    let raw = client.get_mut().0;
    raw.write_all(&[23, 3, 3, 0, 100]).await.unwrap();
    raw.write_all(&[0; 10]).await.unwrap();
    raw.shutdown().await.unwrap();
    let mut buf = Vec::new();
    let err = server.read_to_end(&mut buf).await.expect_err("a cut record read as end of file");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
}

use std::time::Duration;
