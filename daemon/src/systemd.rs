//! Living under systemd: `sd_notify` messages (READY once every listener is bound, STATUS
//! lines, WATCHDOG pings, STOPPING on shutdown) and logging to journald with structured
//! fields when stderr is connected to the journal.
//!
//! Messages are formatted by the pure-Rust `sd-notify` crate but sent by a [`Notifier`]
//! that holds the socket address read once at start, instead of reading `NOTIFY_SOCKET`
//! on every call: tests then aim a notifier at their own socket without touching the
//! process environment, which other tests share.

use sd_notify::NotifyState;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where the service manager listens, or nowhere (not started by systemd).
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    socket: Option<PathBuf>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` (when `WATCHDOG_PID` is ours or unset).
    pub fn from_env() -> Notifier {
        Notifier {
            socket: std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()).map(PathBuf::from),
            watchdog: sd_notify::watchdog_enabled().filter(|d| !d.is_zero()),
        }
    }

    /// Sends to `socket`, with a watchdog interval of `watchdog` (what tests use).
    pub fn to_socket(socket: impl Into<PathBuf>, watchdog: Option<Duration>) -> Notifier {
        Notifier { socket: Some(socket.into()), watchdog }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// Sends one datagram with `states`. Failures are logged, never fatal: a daemon must
    /// not die because its supervisor went away.
    pub fn notify(&self, states: &[NotifyState<'_>]) {
        let Some(path) = &self.socket else { return };
        let msg: String = states.iter().map(|s| format!("{s}\n")).collect();
        if let Err(e) = send(path, msg.as_bytes()) {
            tracing::warn!(socket = %path.display(), error = %e, "cannot notify the service manager");
        }
    }

    /// Tells systemd that start-up is done: call only once every listener is bound.
    pub fn ready(&self, status: &str) {
        self.notify(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A free-form status line for `systemctl status`.
    pub fn status(&self, status: &str) {
        self.notify(&[NotifyState::Status(status)]);
    }

    /// Tells systemd that shutdown has begun.
    pub fn stopping(&self) {
        self.notify(&[NotifyState::Stopping, NotifyState::Status("stopping: closing connections")]);
    }

    /// How often to ping the watchdog: half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3)
    /// recommends, so one late tick does not get the service killed.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.socket.is_some()).map(|d| d / 2)
    }

    /// Pings the watchdog every half interval until `shutdown`, then sends STOPPING. The
    /// pings come from a task on the daemon's own runtime, so a wedged runtime (every
    /// worker blocked) stops them and systemd restarts the service.
    pub async fn supervise(self, shutdown: CancellationToken) {
        let mut tick = self.watchdog_interval().map(tokio::time::interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = async { tick.as_mut().expect("guarded").tick().await }, if tick.is_some() => {
                    self.notify(&[NotifyState::Watchdog]);
                }
            }
        }
        self.stopping();
    }
}

/// Sends `msg` to a path socket or, for a leading `@`, to an abstract one.
fn send(path: &std::path::Path, msg: &[u8]) -> std::io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_os_str().as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(path)?,
    };
    sock.send_to_addr(msg, &addr)
}

/// Whether stderr is the journal's stream (`JOURNAL_STREAM` is `dev:inode` of it), the
/// test systemd.exec(5) recommends before logging natively.
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else { return false };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino),
        Err(_) => false,
    }
}

/// Sets up logging: native journald records (fields such as `ADDR`, `FINGERPRINT`
/// searchable with `journalctl FINGERPRINT=…`) when run by systemd, else human-readable
/// lines on stderr. `RUST_LOG` filters both.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter =
        || tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,quickmeet=info".into());
    if stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer.with_syslog_identifier("quickmeetd".to_string());
                tracing_subscriber::registry().with(filter()).with(layer).init();
                return;
            }
            Err(e) => eprintln!("quickmeetd: journald unavailable ({e}); logging to stderr"),
        }
    }
    tracing_subscriber::fmt().with_env_filter(filter()).init();
}

/// Raises the soft open-files limit to the hard limit: every WebSocket is a descriptor, and
/// the common soft default of 1,024 would cap the appliance far below what it serves (the
/// unit sets `LimitNOFILE=65536`; a hand-started daemon gets whatever the shell's hard
/// limit allows). Returns the limit in force afterwards.
pub fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return 0 };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// `mi_option_arena_eager_commit` in mimalloc v2's `mi_option_e` (mimalloc.h).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// How the allocator is set up. `quickmeetd` allocates through mimalloc (v2), which took
/// durable chat from 31–32% to 41–44% of the bare relay over glibc's malloc
/// (docs/performance.md): glibc's per-arena locks and chunk bookkeeping were ~18% of the
/// daemon's CPU, most of it messages allocated on one thread and freed on another. By
/// default mimalloc commits its arenas up front on Linux, and memory it frees there is only
/// reset (`MADV_FREE`), which the kernel keeps counting as resident: a 4 × 50 MiB upload
/// grew RSS by 11–14 MiB. With arenas committed on demand, freed memory is decommitted and
/// the growth was 6.3–7.9 MiB (the target is 8).
///
/// mimalloc reserves its first arena at the first allocation, before `main` runs, so this
/// runs from `.init_array` (see `ALLOCATOR_SETUP`), ahead of any Rust code.
pub extern "C" fn tune_allocator() {
    // SAFETY: sets one integer option; mimalloc reads it when it reserves an arena.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickmeet::config::Config;
    use std::time::Instant;

    /// Reads datagrams until one contains `READY=1`; returns every message seen.
    fn until_ready(sock: &UnixDatagram) -> Vec<String> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                let ready = msg.lines().any(|l| l == "READY=1");
                seen.push(msg);
                if ready {
                    return seen;
                }
            }
        }
        panic!("no READY=1 within a minute; got {seen:?}");
    }

    #[test]
    fn ready_arrives_only_after_every_listener_is_bound_and_stopping_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let notify_path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&notify_path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        // Free ports, so the test knows where TURN and the landing port will be.
        let turn_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let http_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let admin = dir.path().join("admin.sock");
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            turn_listen: format!("127.0.0.1:{turn_port}").parse().unwrap(),
            http_listen: format!("127.0.0.1:{http_port}").parse().unwrap(),
            mdns_enabled: false,
            admin_socket: Some(admin.clone()),
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let shutdown = CancellationToken::new();
        let notifier = Notifier::to_socket(&notify_path, Some(Duration::from_millis(200)));
        let (https, daemon) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
            let https = listener.local_addr().unwrap();
            let prepared = tokio::task::spawn_blocking(move || crate::prepare(config, https)).await.unwrap().unwrap();
            (https, tokio::spawn(crate::run(prepared, listener, shutdown.clone(), notifier)))
        });

        let before = until_ready(&sock);
        // At the moment READY arrives, every listener must already be there.
        std::net::TcpStream::connect(https).expect("HTTPS listener bound before READY");
        std::net::TcpStream::connect(("127.0.0.1", http_port)).expect("landing port bound before READY");
        std::os::unix::net::UnixStream::connect(&admin).expect("admin socket bound before READY");
        let turn_taken = std::net::UdpSocket::bind(("127.0.0.1", turn_port));
        assert!(turn_taken.is_err(), "TURN port bound before READY");
        for msg in &before[..before.len() - 1] {
            assert!(msg.lines().all(|l| l.starts_with("STATUS=")), "only STATUS lines before READY: {msg:?}");
        }
        let ready = before.last().unwrap();
        assert!(ready.contains(&format!("STATUS=serving https://{https}/")), "{ready}");

        // The watchdog is pinged at half the interval while the daemon runs.
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut watchdog = false;
        while !watchdog && Instant::now() < deadline {
            watchdog = sock.recv(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"WATCHDOG=1"));
        }
        assert!(watchdog, "no WATCHDOG=1 ping");

        shutdown.cancel();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stopping = false;
        while !stopping && Instant::now() < deadline {
            stopping = sock.recv(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"STOPPING=1"));
        }
        assert!(stopping, "no STOPPING=1 on shutdown");
        rt.block_on(daemon).unwrap().unwrap();
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_no_watchdog_runs() {
        let n = Notifier::disabled();
        assert_eq!(n.watchdog_interval(), None);
        n.ready("nothing listens");
        let n = Notifier::to_socket("/nonexistent/notify", Some(Duration::from_secs(30)));
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(15)));
        n.status("a missing socket is logged, not fatal");
    }
}
