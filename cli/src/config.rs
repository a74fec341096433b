//! `quickmeet config …`: configuration files.

use crate::client::SYSTEM_CONFIG;
use crate::output::{json, say};
use crate::{exit, Cli, Failure, Io, Outcome};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Check a config file: unknown keys and bad values, each with its line.
    ///
    /// Checks FILE, else --config, else /etc/quickmeet/quickmeet.toml. Exits 1 when the
    /// file has problems. Works with the daemon stopped.
    ///
    /// Example: quickmeet config check /etc/quickmeet/quickmeet.toml
    Check {
        /// The file to check [default: --config, else /etc/quickmeet/quickmeet.toml]
        file: Option<PathBuf>,
    },
}

pub fn run(cli: &Cli, cmd: &ConfigCmd, io: &mut Io<'_>) -> Outcome {
    let ConfigCmd::Check { file } = cmd;
    let file = file.clone().or_else(|| cli.config.clone()).unwrap_or_else(|| PathBuf::from(SYSTEM_CONFIG));
    let text = std::fs::read_to_string(&file).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound { exit::NOT_FOUND } else { exit::ERROR };
        Failure::new(code, format!("cannot read {}: {e}", file.display()))
    })?;
    let (_, problems) = quickmeet::config::check(&text);
    if cli.json {
        json(io.out, &serde_json::json!({ "file": file, "ok": problems.is_empty(), "problems": problems }))?;
    } else if problems.is_empty() {
        say(io.out, format!("{}: ok", file.display()))?;
    } else {
        for p in &problems {
            say(io.out, format!("{}:{}: {}", file.display(), p.line, p.message))?;
        }
    }
    match problems.len() {
        0 => Ok(()),
        n => Err(Failure::error(format!(
            "{n} problem{} in {}; the README's Configuration section lists every key",
            if n == 1 { "" } else { "s" },
            file.display()
        ))),
    }
}
