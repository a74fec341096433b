//! Daemon configuration. Every key has a default that works with no file at all (HTTPS on
//! `0.0.0.0:8443`, data in `./data`); a TOML file given with `--config` may set any key, and
//! command-line flags override the file. Keys are spelled as the flags are (`data-dir`).
//! Unknown keys are errors that name the key, so a typo never silently does nothing.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Who may create accounts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone who reaches the appliance may sign up (the original behaviour).
    #[default]
    Open,
    /// Only administrators create accounts; signup answers 403.
    Closed,
}

const MIB: u64 = 1024 * 1024;

/// The whole configuration, as read from TOML.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    /// Address and port of the HTTPS listener.
    pub listen: SocketAddr,
    /// Folder holding the database, files and certificates.
    pub data_dir: PathBuf,
    /// Who may sign up.
    pub registration: Registration,
    /// How long a login token stays valid, in hours.
    pub token_ttl_hours: u64,
    /// Largest request body for JSON routes, in bytes.
    pub max_json_body: usize,
    /// Outbound WebSocket frames queued per connection before it is judged too slow and closed.
    pub ws_outbound_queue: usize,
    /// Maximum participants in one mesh group call.
    pub max_group_call: usize,
    /// Largest file one upload may carry, in bytes.
    pub max_upload_bytes: u64,
    /// Bytes of files each user may keep stored.
    pub user_quota_bytes: u64,
    /// Seconds an unanswered call rings before it ends for both sides.
    pub ring_timeout_secs: u64,
    /// Whether to run the embedded TURN/STUN server.
    pub turn_enabled: bool,
    /// UDP address of the embedded TURN/STUN server.
    pub turn_listen: SocketAddr,
    /// Address advertised for relayed candidates (default: the TURN listen address when it
    /// is specific, else the machine's first private LAN address).
    pub turn_relay_ip: Option<IpAddr>,
    /// External TURN server URLs (coturn with `use-auth-secret`); when set, the embedded
    /// server does not run and clients are pointed there.
    pub turn_external_urls: Vec<String>,
    /// File holding the external TURN server's shared secret.
    pub turn_external_secret_file: Option<PathBuf>,
    /// Most relay allocations at once, in total.
    pub turn_max_allocations: usize,
    /// Most relay allocations at once per user.
    pub turn_max_allocations_per_user: usize,
    /// Relay bandwidth cap per allocation and direction, in kbit/s.
    pub turn_bandwidth_kbps: u64,
    /// Lifetime of the TURN credentials handed out by `/api/ice-servers`, in seconds.
    pub turn_credential_ttl_secs: u64,
    /// Unix socket of the admin CLI (default: `admin.sock` in the data dir).
    pub admin_socket: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            data_dir: PathBuf::from("./data"),
            registration: Registration::Open,
            token_ttl_hours: 24 * 7,
            max_json_body: 64 * 1024,
            ws_outbound_queue: 512,
            max_group_call: 6,
            max_upload_bytes: 50 * MIB,
            user_quota_bytes: 2 * 1024 * MIB,
            ring_timeout_secs: 45,
            turn_enabled: true,
            turn_listen: SocketAddr::from(([0, 0, 0, 0], 3478)),
            turn_relay_ip: None,
            turn_external_urls: Vec::new(),
            turn_external_secret_file: None,
            turn_max_allocations: 256,
            turn_max_allocations_per_user: 12,
            turn_bandwidth_kbps: 10_000,
            turn_credential_ttl_secs: 3600,
            admin_socket: None,
        }
    }
}

impl Config {
    /// Parses TOML text; errors name the offending key and its line.
    pub fn from_toml(text: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| Error::Invalid("invalid_config", e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid("invalid_config", format!("cannot read {}: {e}", path.display())))?;
        Config::from_toml(&text)
    }

    /// Where the admin socket is: `admin-socket`, else `<data-dir>/admin.sock`.
    pub fn admin_socket_path(&self) -> PathBuf {
        self.admin_socket.clone().unwrap_or_else(|| self.data_dir.join("admin.sock"))
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Invalid("invalid_config", m.to_string()));
        if self.token_ttl_hours == 0 || self.token_ttl_hours > 24 * 365 {
            return bad("token-ttl-hours must be between 1 and 8760");
        }
        if self.max_json_body < 1024 {
            return bad("max-json-body must be at least 1024 bytes");
        }
        if self.ws_outbound_queue < 16 {
            return bad("ws-outbound-queue must be at least 16");
        }
        if !(2..=32).contains(&self.max_group_call) {
            return bad("max-group-call must be between 2 and 32");
        }
        if !(1024..=1024 * MIB).contains(&self.max_upload_bytes) {
            return bad("max-upload-bytes must be between 1024 and 1073741824 (1 GiB)");
        }
        if self.user_quota_bytes < self.max_upload_bytes {
            return bad("user-quota-bytes must be at least max-upload-bytes");
        }
        if !(1..=600).contains(&self.ring_timeout_secs) {
            return bad("ring-timeout-secs must be between 1 and 600");
        }
        if self.turn_max_allocations == 0 || self.turn_max_allocations_per_user == 0 {
            return bad("turn-max-allocations and turn-max-allocations-per-user must be at least 1");
        }
        if self.turn_bandwidth_kbps < 64 {
            return bad("turn-bandwidth-kbps must be at least 64");
        }
        if !(60..=86_400).contains(&self.turn_credential_ttl_secs) {
            return bad("turn-credential-ttl-secs must be between 60 and 86400");
        }
        for url in &self.turn_external_urls {
            if !(url.starts_with("turn:") || url.starts_with("turns:") || url.starts_with("stun:")) {
                return bad("turn-external-urls entries must start with turn:, turns: or stun:");
            }
        }
        if !self.turn_external_urls.is_empty() && self.turn_external_secret_file.is_none() {
            return bad("turn-external-urls needs turn-external-secret-file (the coturn static-auth-secret)");
        }
        Ok(())
    }
}

/// One thing wrong in a config file, with its 1-based line (0 when no line applies).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

/// Checks a config file's text and reports every problem found, each with its line. The
/// parser stops at the first error, so each reported line is blanked (keeping the line
/// numbers) and the text checked again, until it passes or nothing more can be learnt.
pub fn check(text: &str) -> (Option<Config>, Vec<Problem>) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut problems = Vec::new();
    let sorted = |mut p: Vec<Problem>| {
        p.sort_by_key(|p| p.line);
        p
    };
    for _ in 0..50 {
        let current = lines.join("\n");
        let (line, message) = match toml::from_str::<Config>(&current) {
            Ok(cfg) => match cfg.validate() {
                Ok(()) if problems.is_empty() => return (Some(cfg), problems),
                Ok(()) => return (None, sorted(problems)),
                Err(e) => {
                    let message = e.to_string();
                    let key = message.split_whitespace().next().unwrap_or_default();
                    (key_line(&lines, key), message)
                }
            },
            Err(e) => {
                let line = e.span().map(|s| current[..s.start.min(current.len())].matches('\n').count() + 1);
                (line.unwrap_or(0), e.message().trim().to_string())
            }
        };
        problems.push(Problem { line, message });
        match line.checked_sub(1).and_then(|i| lines.get_mut(i)) {
            Some(l) if !l.trim().is_empty() => l.clear(),
            _ => break,
        }
    }
    (None, sorted(problems))
}

/// The 1-based line where top-level `key` is set, or 0.
fn key_line(lines: &[String], key: &str) -> usize {
    lines
        .iter()
        .position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim().trim_matches('"') == key))
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_working_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.listen.port(), 8443);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let e = Config::from_toml("listen = \"127.0.0.1:1\"\nlisten-port = 3\n").unwrap_err();
        assert!(e.to_string().contains("listen-port"), "{e}");
    }

    #[test]
    fn upload_limits_default_to_50_mib_per_file_and_2_gib_per_user() {
        let c = Config::from_toml("").unwrap();
        assert_eq!((c.max_upload_bytes, c.user_quota_bytes), (50 * MIB, 2048 * MIB));
        let c = Config::from_toml("max-upload-bytes = 2048\nuser-quota-bytes = 4096\n").unwrap();
        assert_eq!((c.max_upload_bytes, c.user_quota_bytes), (2048, 4096));
    }

    #[test]
    fn upload_limits_that_make_no_sense_are_refused() {
        for bad in ["max-upload-bytes = 10", "max-upload-bytes = 2000000000000", "user-quota-bytes = 1024"] {
            let e = Config::from_toml(bad).unwrap_err().to_string();
            assert!(e.contains("-bytes"), "{bad}: {e}");
        }
    }

    #[test]
    fn keys_are_spelled_like_flags() {
        let c = Config::from_toml("data-dir = \"/tmp/x\"\nregistration = \"closed\"\n").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.registration, Registration::Closed);
    }

    #[test]
    fn check_reports_every_unknown_key_and_bad_value_with_its_line() {
        let text =
            "listen = \"127.0.0.1:1\"\nlisten-port = 3\n\ntoken-ttl-hours = 0\nregistration = \"maybe\"\nbogus = 1\n";
        let (cfg, problems) = check(text);
        assert!(cfg.is_none());
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![2, 4, 5, 6], "{problems:?}");
        assert!(problems[0].message.contains("listen-port"), "{problems:?}");
        assert!(problems[1].message.contains("token-ttl-hours"), "{problems:?}");
        assert!(problems[2].message.contains("maybe"), "{problems:?}");
    }

    #[test]
    fn check_accepts_a_good_file_and_an_empty_one() {
        assert!(check("").1.is_empty());
        let (cfg, problems) = check("admin-socket = \"/run/quickmeet/admin.sock\"\n");
        assert!(problems.is_empty());
        assert_eq!(cfg.unwrap().admin_socket_path(), PathBuf::from("/run/quickmeet/admin.sock"));
        assert_eq!(Config::default().admin_socket_path(), PathBuf::from("./data/admin.sock"));
    }
}
