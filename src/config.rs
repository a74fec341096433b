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
    /// Whether to run the plain-HTTP landing port (CA download, install guide, redirects).
    pub http_enabled: bool,
    /// Address and port of the plain-HTTP landing port.
    pub http_listen: SocketAddr,
    /// Whether to advertise `<mdns-name>.local` and `_https._tcp` over multicast DNS.
    pub mdns_enabled: bool,
    /// Host name advertised over mDNS (without `.local`); the certificate names it too.
    pub mdns_name: String,
    /// Who may sign up.
    pub registration: Registration,
    /// How long a login token stays valid, in hours.
    pub token_ttl_hours: u64,
    /// Largest request body for JSON routes, in bytes.
    pub max_json_body: usize,
    /// Outbound WebSocket frames queued per connection before it is judged too slow and
    /// closed: when it holds this many and its session has taken none for a second, or
    /// when it holds sixteen times this many (a commit's frames arrive together).
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
    /// System group whose members may use the admin socket, besides root and the daemon's
    /// own user and group.
    pub admin_group: Option<String>,
    /// Signups and failed logins per client IP and minute; past it 429 with a growing backoff.
    pub rate_auth_per_minute: u32,
    /// Authenticated API requests per user and minute (uploads count separately).
    pub rate_api_per_minute: u32,
    /// Uploads per user and minute.
    pub rate_upload_per_minute: u32,
    /// Chat frames (sends, read marks, sync) per WebSocket connection and minute.
    pub rate_ws_messages_per_minute: u32,
    /// `typing:*` frames per WebSocket connection and minute.
    pub rate_ws_typing_per_minute: u32,
    /// Call signaling frames per WebSocket connection and minute.
    pub rate_ws_signaling_per_minute: u32,
    /// New TCP connections per client IP and minute.
    pub rate_connections_per_minute: u32,
    /// Open TCP connections per client IP at once.
    pub max_connections_per_ip: usize,
    /// Open WebSocket connections per user at once.
    pub max_ws_per_user: usize,
    /// Seconds a client gets to finish the TLS handshake.
    pub timeout_handshake_secs: u64,
    /// Seconds a client gets to send a request's headers.
    pub timeout_header_secs: u64,
    /// Seconds a request body may stall between two chunks.
    pub timeout_body_secs: u64,
    /// Seconds a connection may stay silent in both directions (idle keep-alive).
    pub timeout_idle_secs: u64,
    /// Slowest average speed an upload may keep once its grace period is over, in bytes per
    /// second of waiting for the body; 0 turns the floor off. Without it, a client sending a
    /// byte just before each body stall times out would hold an upload slot forever.
    pub upload_min_bytes_per_sec: u64,
    /// Seconds an upload may take, however slow, before its average speed is held to
    /// `upload-min-bytes-per-sec`.
    pub upload_min_rate_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            data_dir: PathBuf::from("./data"),
            http_enabled: true,
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            mdns_enabled: true,
            mdns_name: "quickmeet".to_string(),
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
            admin_group: None,
            rate_auth_per_minute: 10,
            rate_api_per_minute: 600,
            rate_upload_per_minute: 60,
            rate_ws_messages_per_minute: 600,
            rate_ws_typing_per_minute: 120,
            rate_ws_signaling_per_minute: 1200,
            rate_connections_per_minute: 300,
            max_connections_per_ip: 256,
            max_ws_per_user: 16,
            timeout_handshake_secs: 10,
            timeout_header_secs: 15,
            timeout_body_secs: 30,
            timeout_idle_secs: 75,
            upload_min_bytes_per_sec: 16 * 1024,
            upload_min_rate_grace_secs: 10,
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
        if !valid_dns_label(&self.mdns_name) {
            return bad(
                "mdns-name must be one DNS label: 1 to 63 letters, digits or '-', not starting or ending with '-'",
            );
        }
        if self.http_enabled && self.http_listen == self.listen && self.listen.port() != 0 {
            return bad("http-listen must differ from listen");
        }
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
        if let Some(g) = &self.admin_group {
            let ok =
                !g.is_empty() && g.len() <= 32 && g.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !ok || g.starts_with('-') {
                return bad("admin-group must be the name of a system group, like \"quickmeet-admins\"");
            }
        }
        if !self.turn_external_urls.is_empty() && self.turn_external_secret_file.is_none() {
            return bad("turn-external-urls needs turn-external-secret-file (the coturn static-auth-secret)");
        }
        self.validate_limits()
    }

    /// The abuse limits: every rate at least 1 a minute and at most 1,000,000, every
    /// timeout between 1 s and 10 minutes.
    fn validate_limits(&self) -> Result<()> {
        let rates = [
            ("rate-auth-per-minute", self.rate_auth_per_minute),
            ("rate-api-per-minute", self.rate_api_per_minute),
            ("rate-upload-per-minute", self.rate_upload_per_minute),
            ("rate-ws-messages-per-minute", self.rate_ws_messages_per_minute),
            ("rate-ws-typing-per-minute", self.rate_ws_typing_per_minute),
            ("rate-ws-signaling-per-minute", self.rate_ws_signaling_per_minute),
            ("rate-connections-per-minute", self.rate_connections_per_minute),
        ];
        for (key, v) in rates {
            if !(1..=1_000_000).contains(&v) {
                return Err(Error::Invalid("invalid_config", format!("{key} must be between 1 and 1000000")));
            }
        }
        for (key, v) in
            [("max-connections-per-ip", self.max_connections_per_ip), ("max-ws-per-user", self.max_ws_per_user)]
        {
            if !(1..=100_000).contains(&v) {
                return Err(Error::Invalid("invalid_config", format!("{key} must be between 1 and 100000")));
            }
        }
        let timeouts = [
            ("timeout-handshake-secs", self.timeout_handshake_secs),
            ("timeout-header-secs", self.timeout_header_secs),
            ("timeout-body-secs", self.timeout_body_secs),
            ("timeout-idle-secs", self.timeout_idle_secs),
            ("upload-min-rate-grace-secs", self.upload_min_rate_grace_secs),
        ];
        for (key, v) in timeouts {
            if !(1..=600).contains(&v) {
                return Err(Error::Invalid("invalid_config", format!("{key} must be between 1 and 600")));
            }
        }
        if self.upload_min_bytes_per_sec > 1024 * MIB {
            return Err(Error::Invalid(
                "invalid_config",
                "upload-min-bytes-per-sec must be at most 1073741824 (1 GiB/s); 0 turns the floor off".into(),
            ));
        }
        Ok(())
    }
}

/// A single DNS label as mDNS host names need: `quickmeet`, `front-desk-2`.
fn valid_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
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
    fn abuse_limits_have_defaults_and_refuse_zero() {
        let c = Config::from_toml("").unwrap();
        assert_eq!((c.rate_auth_per_minute, c.max_ws_per_user, c.timeout_handshake_secs), (10, 16, 10));
        let c = Config::from_toml("rate-auth-per-minute = 1000\ntimeout-idle-secs = 5\n").unwrap();
        assert_eq!((c.rate_auth_per_minute, c.timeout_idle_secs), (1000, 5));
        for bad in
            ["rate-api-per-minute = 0", "max-ws-per-user = 0", "timeout-body-secs = 0", "timeout-idle-secs = 9999"]
        {
            let e = Config::from_toml(bad).unwrap_err().to_string();
            assert!(e.contains(bad.split(' ').next().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn the_upload_speed_floor_defaults_to_16_kib_per_second_after_10_seconds_and_0_turns_it_off() {
        let c = Config::from_toml("").unwrap();
        assert_eq!((c.upload_min_bytes_per_sec, c.upload_min_rate_grace_secs), (16 * 1024, 10));
        let c = Config::from_toml("upload-min-bytes-per-sec = 0\nupload-min-rate-grace-secs = 1\n").unwrap();
        assert_eq!((c.upload_min_bytes_per_sec, c.upload_min_rate_grace_secs), (0, 1));
        for bad in ["upload-min-rate-grace-secs = 0", "upload-min-bytes-per-sec = 2000000000"] {
            let e = Config::from_toml(bad).unwrap_err().to_string();
            assert!(e.contains(bad.split(' ').next().unwrap()), "{bad}: {e}");
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

    #[test]
    fn admin_group_is_a_group_name() {
        assert_eq!(
            Config::from_toml("admin-group = \"lan-admins\"").unwrap().admin_group.as_deref(),
            Some("lan-admins")
        );
        assert_eq!(Config::default().admin_group, None);
        for bad in ["admin-group = \"\"", "admin-group = \"wheel staff\"", "admin-group = \"-x\""] {
            let e = Config::from_toml(bad).unwrap_err().to_string();
            assert!(e.contains("admin-group"), "{bad}: {e}");
        }
        let (_, problems) = check("listen = \"127.0.0.1:1\"\nadmin-group = \"a b\"\n");
        assert_eq!(problems.iter().map(|p| p.line).collect::<Vec<_>>(), vec![2], "{problems:?}");
    }

    #[test]
    fn mdns_name_must_be_one_dns_label() {
        assert_eq!(Config::from_toml("mdns-name = \"front-desk-2\"").unwrap().mdns_name, "front-desk-2");
        for bad in ["", "-x", "x-", "a.b", "a b", &"x".repeat(64)] {
            let e = Config::from_toml(&format!("mdns-name = \"{bad}\"")).unwrap_err().to_string();
            assert!(e.contains("mdns-name"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_landing_port_defaults_to_8080_and_must_not_clash_with_https() {
        let c = Config::default();
        assert!(c.http_enabled && c.mdns_enabled);
        assert_eq!(c.http_listen.port(), 8080);
        assert!(Config::from_toml("listen = \"0.0.0.0:80\"\nhttp-listen = \"0.0.0.0:80\"").is_err());
        assert!(
            Config::from_toml("listen = \"0.0.0.0:80\"\nhttp-listen = \"0.0.0.0:80\"\nhttp-enabled = false").is_ok()
        );
    }

    /// The key names serde knows, read from its "unknown field, expected one of …" error.
    fn every_key() -> Vec<String> {
        let e = toml::from_str::<Config>("no-such-key = 1").unwrap_err().to_string();
        let list = e.split("expected one of").nth(1).expect("serde lists the known keys");
        list.split('`').skip(1).step_by(2).map(str::to_string).collect()
    }

    /// `packaging/quickmeet.toml` becomes `/etc/quickmeet/quickmeet.toml`: it must mention
    /// every key, and each `# key = value` line must be the real default, so uncommenting
    /// one changes nothing (lines ending in `# example` are examples, not defaults).
    #[test]
    fn the_packaged_config_documents_every_key_with_its_default() {
        let text = include_str!("../packaging/quickmeet.toml");
        let keys = every_key();
        assert!(keys.len() > 20, "{keys:?}");
        for key in &keys {
            let active = format!("\n{key} = ");
            let commented = format!("\n# {key} = ");
            assert!(text.contains(&active) || text.contains(&commented), "packaging/quickmeet.toml lacks {key}");
        }
        let packaged = Config::from_toml(text).unwrap();
        assert_eq!(packaged.listen.port(), 443);
        assert_eq!(packaged.data_dir, PathBuf::from("/var/lib/quickmeet"));
        assert_eq!(packaged.admin_socket_path(), PathBuf::from("/run/quickmeet/admin.sock"));
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if !l.ends_with("# example") && keys.iter().any(|k| rest.starts_with(&format!("{k} = "))) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let all = Config::from_toml(&uncommented).unwrap();
        let defaults = Config {
            listen: packaged.listen,
            data_dir: packaged.data_dir.clone(),
            admin_socket: packaged.admin_socket.clone(),
            ..Config::default()
        };
        assert_eq!(format!("{all:?}"), format!("{defaults:?}"), "a commented value differs from its default");
    }
}
