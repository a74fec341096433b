//! Finding the daemon and speaking to it: which data dir and socket (from the flags, the
//! daemon's config file, or the defaults quickmeetd itself uses), one request per
//! connection, and daemon errors turned into exit codes and advice. Also whether the
//! daemon runs at all, for the commands that work on the data dir when it is stopped.

use crate::{exit, Cli, Failure};
use quickmeet::admin::{AdminRequest, AdminResponse, Envelope, ErrorKind, MAX_RESPONSE_BYTES, PROTOCOL_VERSION};
use quickmeet::config::Config;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The config file the packaged daemon reads.
pub const SYSTEM_CONFIG: &str = "/etc/quickmeet/quickmeet.toml";

/// Where the daemon keeps its data and listens for admin requests.
#[derive(Clone, Debug)]
pub struct Target {
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    /// The daemon's configuration (its defaults without a config file): what its
    /// certificate must name.
    pub config: Config,
    /// How to start the daemon, for messages.
    pub start_hint: String,
}

/// Whether the daemon answers on its admin socket.
#[derive(Debug)]
pub enum Daemon {
    Answers,
    /// Nothing answers; why, for messages.
    Stopped(String),
}

impl Target {
    /// Resolves the target from the global flags.
    pub fn resolve(cli: &Cli) -> Result<Target, Failure> {
        let config_file = match (&cli.config, &cli.data_dir) {
            (Some(f), _) => Some(f.clone()),
            (None, None) if Path::new(SYSTEM_CONFIG).exists() => Some(PathBuf::from(SYSTEM_CONFIG)),
            _ => None,
        };
        let config = match &config_file {
            Some(f) => load_config(f)?,
            None => Config::default(),
        };
        let data_dir = cli.data_dir.clone().unwrap_or_else(|| config.data_dir.clone());
        let socket = match (&cli.socket, &cli.data_dir) {
            (Some(s), _) => s.clone(),
            (None, Some(d)) if cli.config.is_none() => d.join("admin.sock"),
            _ => config.admin_socket.clone().unwrap_or_else(|| data_dir.join("admin.sock")),
        };
        let start_hint = if config_file.as_deref() == Some(Path::new(SYSTEM_CONFIG)) {
            "sudo systemctl start quickmeetd".to_string()
        } else {
            format!("quickmeetd --data-dir {}", data_dir.display())
        };
        Ok(Target { data_dir, socket, config, start_hint })
    }

    /// Connects to the admin socket.
    pub fn connect(&self) -> Result<UnixStream, Failure> {
        UnixStream::connect(&self.socket).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => Failure::new(
                exit::DENIED,
                format!(
                    "permission denied on {}: run quickmeet as root (sudo) or as a member of the daemon's group",
                    self.socket.display()
                ),
            ),
            _ => Failure::new(
                exit::UNREACHABLE,
                format!(
                    "cannot reach the daemon at {} ({e}): is quickmeetd running? start it with `{}`, or point \
                     to it with --socket PATH or --data-dir DIR",
                    self.socket.display(),
                    self.start_hint
                ),
            ),
        })
    }

    /// Whether a daemon answers on the socket; a socket we may not use is an error.
    pub fn daemon(&self) -> Result<Daemon, Failure> {
        match self.connect() {
            Ok(_) => Ok(Daemon::Answers),
            Err(f) if f.code == exit::UNREACHABLE => {
                Ok(Daemon::Stopped(format!("no answer on {}", self.socket.display())))
            }
            Err(f) => Err(f),
        }
    }

    /// The failure for an offline command on this data dir, with what to do next.
    pub fn offline_failure(&self, e: quickmeet::Error) -> Failure {
        let dir = self.data_dir.display();
        match e {
            quickmeet::Error::Conflict("daemon_running", _) => Failure::error(format!(
                "quickmeetd is running (it holds {dir}/quickmeet.redb) but does not answer on {}; use the \
                 online command, pointing to its admin socket with --socket PATH (admin-socket in its config)",
                self.socket.display()
            )),
            quickmeet::Error::NotFound("database") => Failure::new(
                exit::NOT_FOUND,
                format!(
                    "{dir} holds no Quick Meet database: is --data-dir right? (quickmeetd creates it when it \
                     first starts)"
                ),
            ),
            quickmeet::Error::NotFound(what) => {
                Failure::new(exit::NOT_FOUND, format!("{what} not found in {dir} (usernames ignore case)"))
            }
            other => Failure::error(other.to_string()),
        }
    }

    /// Sends `req` and returns the daemon's successful answer; errors become failures.
    pub fn request(&self, req: AdminRequest) -> Result<AdminResponse, Failure> {
        let (resp, _) = self.request_stream(req)?;
        Ok(resp)
    }

    /// Sends `req` and returns the answer plus the connection, positioned after the
    /// answer's line (for the archive that follows `backup-follows`).
    pub fn request_stream(&self, req: AdminRequest) -> Result<(AdminResponse, BufReader<UnixStream>), Failure> {
        let mut stream = self.connect()?;
        let io_fail = |e: std::io::Error| Failure::error(format!("talking to quickmeetd failed: {e}"));
        stream.set_write_timeout(Some(Duration::from_secs(10))).map_err(io_fail)?;
        stream.set_read_timeout(Some(Duration::from_secs(150))).map_err(io_fail)?;
        let mut line = serde_json::to_vec(&Envelope { version: PROTOCOL_VERSION, request: req })
            .map_err(|e| Failure::error(e.to_string()))?;
        line.push(b'\n');
        // A refused peer gets its answer before the daemon reads anything, and the write
        // may then fail: the answer is still worth reading.
        let _ = stream.write_all(&line);
        let mut reader = BufReader::new(stream);
        let mut answer = Vec::new();
        (&mut reader).take(MAX_RESPONSE_BYTES as u64).read_until(b'\n', &mut answer).map_err(io_fail)?;
        if answer.is_empty() {
            return Err(Failure::error("quickmeetd closed the connection without answering; see its log"));
        }
        let resp: AdminResponse = serde_json::from_slice(&answer)
            .map_err(|e| Failure::error(format!("unexpected answer from quickmeetd ({e}); is it the same version?")))?;
        match resp {
            AdminResponse::Error { kind, message } => Err(Failure::new(code_of(kind), advise(kind, message))),
            ok => Ok((ok, reader)),
        }
    }
}

/// Reads the daemon's config file; a file we may not read says to use sudo.
fn load_config(f: &Path) -> Result<Config, Failure> {
    if let Err(e) = std::fs::File::open(f) {
        let (code, hint) = match e.kind() {
            std::io::ErrorKind::PermissionDenied => (exit::DENIED, "run quickmeet with sudo, or pass --data-dir DIR"),
            std::io::ErrorKind::NotFound => (exit::NOT_FOUND, "pass the daemon's config with --config FILE"),
            _ => (exit::ERROR, "pass --data-dir DIR or --socket PATH instead"),
        };
        return Err(Failure::new(code, format!("cannot read {}: {e}; {hint}", f.display())));
    }
    Config::load(f).map_err(|e| Failure::error(format!("{e}; check it with: quickmeet config check {}", f.display())))
}

/// The exit code for a daemon error.
pub fn code_of(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::NotFound => exit::NOT_FOUND,
        ErrorKind::PermissionDenied => exit::DENIED,
        _ => exit::ERROR,
    }
}

fn advise(kind: ErrorKind, message: String) -> String {
    match kind {
        ErrorKind::NotFound if message.starts_with("user") => {
            format!("{message}; `quickmeet user list` shows every account")
        }
        ErrorKind::NotFound if message.starts_with("group") => {
            format!("{message}; `quickmeet group list` shows every group")
        }
        _ => message,
    }
}

/// The response was not the kind this command expects.
pub fn unexpected(r: AdminResponse) -> Failure {
    Failure::error(format!("unexpected answer from quickmeetd: {r:?}"))
}
