//! Daemon configuration. Every key has a default that works with no file at all (HTTPS on
//! `0.0.0.0:8443`, data in `./data`); a TOML file given with `--config` may set any key, and
//! command-line flags override the file. Keys are spelled as the flags are (`data-dir`).
//! Unknown keys are errors that name the key, so a typo never silently does nothing.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::net::SocketAddr;
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
        Ok(())
    }
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
    fn keys_are_spelled_like_flags() {
        let c = Config::from_toml("data-dir = \"/tmp/x\"\nregistration = \"closed\"\n").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.registration, Registration::Closed);
    }
}
