//! `quickmeetd`: parses flags, sets up logging and runs the daemon until SIGTERM/Ctrl-C.

use anyhow::Context;
use clap::Parser;
use quickmeet::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// See `systemd::tune_allocator` for why, and how it is set up.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sets the allocator's options before anything allocates (a constructor, run by the
/// dynamic loader ahead of the Rust runtime).
#[used]
#[unsafe(link_section = ".init_array")]
static ALLOCATOR_SETUP: extern "C" fn() = quickmeet_daemon::systemd::tune_allocator;

/// The Quick Meet daemon: chat, files and calls for the local network over HTTPS.
///
/// With no flags at all it serves https://0.0.0.0:8443/ with data in ./data.
///
/// Example: quickmeetd --listen 0.0.0.0:443 --data-dir /var/lib/quickmeet
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address and port of the HTTPS listener [default: 0.0.0.0:8443]
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Folder for the database, files and certificates [default: ./data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// UDP address of the embedded TURN/STUN server [default: 0.0.0.0:3478]
    #[arg(long, value_name = "ADDR:PORT")]
    turn_listen: Option<SocketAddr>,
    /// Address and port of the plain-HTTP landing port (CA download) [default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    http_listen: Option<SocketAddr>,
    /// TOML file with any of the settings (flags win over it)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    quickmeet_daemon::systemd::init_logging();
    let notifier = quickmeet_daemon::systemd::Notifier::from_env();
    let args = Args::parse();
    let open_files = quickmeet_daemon::systemd::raise_open_files_limit();
    tracing::info!(open_files, "open-files limit {open_files}");
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(t) = args.turn_listen {
        config.turn_listen = t;
    }
    if let Some(h) = args.http_listen {
        config.http_listen = h;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let tls = quickmeet::certs::TlsPaths::new(&config.data_dir);
        let prepared = tokio::task::spawn_blocking(move || quickmeet_daemon::prepare(config, addr)).await??;
        let shutdown = CancellationToken::new();
        tokio::spawn(signal_shutdown(shutdown.clone()));
        tokio::spawn(reload_on_hangup(prepared.certs.clone(), tls, shutdown.clone()));
        quickmeet_daemon::run(prepared, listener, shutdown, notifier).await
    })
}

/// SIGHUP reloads the server certificate and key from the data dir (after an admin put new
/// files there): new handshakes use them, open connections stay up.
async fn reload_on_hangup(
    certs: std::sync::Arc<quickmeet_daemon::tls::CertResolver>,
    tls: quickmeet::certs::TlsPaths,
    shutdown: CancellationToken,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = hup.recv() => match certs.reload(&tls.cert, &tls.key) {
                Ok(()) => tracing::info!("SIGHUP: server certificate reloaded"),
                Err(e) => tracing::error!(error = %format!("{e:#}"), "SIGHUP: certificate reload failed; keeping the current one"),
            },
        }
    }
}

async fn signal_shutdown(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
    token.cancel();
}
