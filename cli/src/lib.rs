//! # quickmeet, the administration CLI
//!
//! Talks to a running `quickmeetd` over its admin Unix socket (one JSON request per
//! connection, see `quickmeet::admin`), and works directly on the data dir for what makes
//! sense offline (`status`, `user passwd`, `cert renew`, restoring a backup, checking a
//! config file; see `quickmeet::admin::offline`), refusing offline writes while the daemon
//! runs. One
//! module per noun: [`status`], [`user`], [`group`], [`cert`], [`backup`], [`config`];
//! [`client`] finds and speaks to the daemon, [`output`] prints tables or JSON.
//!
//! [`run`] is the whole program with its streams passed in, so tests drive it in-process
//! and read what it printed and the exit code it chose.

pub mod backup;
pub mod cert;
pub mod client;
pub mod config;
pub mod group;
pub mod output;
pub mod status;
pub mod user;

use clap::{CommandFactory, Parser, Subcommand};
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Exit codes scripts can rely on.
pub mod exit {
    pub const OK: i32 = 0;
    /// The request failed (bad value, conflict, damaged archive…).
    pub const ERROR: i32 = 1;
    /// The command line was wrong.
    pub const USAGE: i32 = 2;
    /// quickmeetd is not running or its socket cannot be reached (`status` says which).
    pub const UNREACHABLE: i32 = 3;
    /// The admin socket refused us.
    pub const DENIED: i32 = 4;
    /// The user, group or file named does not exist.
    pub const NOT_FOUND: i32 = 5;
}

/// A failed command: the exit code and what to tell the user (with what to do next).
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }
    pub fn error(message: impl Into<String>) -> Failure {
        Failure::new(exit::ERROR, message)
    }
}

/// What a command returns.
pub type Outcome = Result<(), Failure>;

/// The streams a command uses; the real ones in `main`, buffers in tests.
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub stdin: &'a mut dyn BufRead,
}

/// Administer a Quick Meet appliance (the quickmeetd daemon).
///
/// Most commands talk to the running daemon over its admin socket, which only root, the
/// daemon's user and group, and members of the config's admin-group may use. The daemon is
/// found from --socket, else --data-dir (DIR/admin.sock), else --config FILE, else
/// /etc/quickmeet/quickmeet.toml, else ./data.
///
/// With the daemon stopped, `status`, `user passwd`, `cert show|renew|export-ca` and
/// `backup restore` work directly on the data dir; offline writes are refused while it runs.
///
/// Exit codes: 0 ok, 1 error, 2 usage, 3 daemon not running, 4 permission denied, 5 not found.
///
/// Example: sudo quickmeet user add alice --role admin
#[derive(Parser, Debug)]
#[command(name = "quickmeet", version, about, long_about, propagate_version = true)]
pub struct Cli {
    /// Admin socket of the daemon
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Data dir of the daemon (its socket is DIR/admin.sock)
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The daemon's config file, to find its data dir and socket
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of tables, for scripts
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show whether the daemon runs and what it is doing.
    ///
    /// Version, uptime, addresses, certificate expiry, people online, connections, calls
    /// in progress, TURN relays and the size of the data dir. When quickmeetd is stopped it
    /// says so, shows what the data dir holds, and exits 3.
    ///
    /// Example: quickmeet status || sudo systemctl start quickmeetd
    Status,
    /// Manage accounts.
    #[command(subcommand)]
    User(user::UserCmd),
    /// Manage groups.
    #[command(subcommand)]
    Group(group::GroupCmd),
    /// Show, renew, export or import the HTTPS certificate.
    #[command(subcommand)]
    Cert(cert::CertCmd),
    /// Create, verify and restore backups.
    #[command(subcommand)]
    Backup(backup::BackupCmd),
    /// Check configuration files.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Print a shell completion script.
    ///
    /// Example: quickmeet completions bash > /usr/share/bash-completion/completions/quickmeet
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Write man pages for every command into DIR.
    ///
    /// Example: quickmeet man /usr/share/man/man1
    Man {
        /// Folder to write quickmeet.1, quickmeet-user.1, … into
        dir: PathBuf,
    },
}

/// Runs the CLI with the process's real streams; returns the exit code.
pub fn run_std<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let (stdout, stderr, stdin) = (std::io::stdout(), std::io::stderr(), std::io::stdin());
    let (mut out, mut err, mut input) = (stdout.lock(), stderr.lock(), stdin.lock());
    run(args, &mut Io { out: &mut out, err: &mut err, stdin: &mut input })
}

/// Runs the CLI on `args` (the first is the program name); returns the exit code.
pub fn run<I, T>(args: I, io: &mut Io<'_>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            let text = e.render().ansi().to_string();
            let _ = if code == 0 { write!(io.out, "{text}") } else { write!(io.err, "{text}") };
            return code;
        }
    };
    match dispatch(&cli, io) {
        Ok(()) => exit::OK,
        Err(f) => {
            let _ = writeln!(io.err, "quickmeet: {}", f.message);
            f.code
        }
    }
}

fn dispatch(cli: &Cli, io: &mut Io<'_>) -> Outcome {
    match &cli.command {
        Command::Status => status::run(cli, io),
        Command::User(c) => user::run(cli, c, io),
        Command::Group(c) => group::run(cli, c, io),
        Command::Cert(c) => cert::run(cli, c, io),
        Command::Backup(c) => backup::run(cli, c, io),
        Command::Config(c) => config::run(cli, c, io),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "quickmeet", io.out);
            Ok(())
        }
        Command::Man { dir } => man_pages(cli, dir, io),
    }
}

/// One man page per command and subcommand, named like `quickmeet-user-add.1`.
fn man_pages(cli: &Cli, dir: &std::path::Path, io: &mut Io<'_>) -> Outcome {
    fn write(cmd: clap::Command, name: String, dir: &std::path::Path, n: &mut usize) -> std::io::Result<()> {
        let cmd = cmd.name(name.clone());
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.1")), page)?;
        *n += 1;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            write(sub.clone(), format!("{name}-{}", sub.get_name()), dir, n)?;
        }
        Ok(())
    }
    let mut n = 0;
    std::fs::create_dir_all(dir)
        .and_then(|_| write(Cli::command().disable_help_subcommand(true), "quickmeet".into(), dir, &mut n))
        .map_err(|e| Failure::error(format!("cannot write man pages to {}: {e}", dir.display())))?;
    if cli.json {
        return output::json(io.out, &serde_json::json!({ "dir": dir, "pages": n }));
    }
    output::say(io.out, format!("wrote {n} man pages to {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_capture(args: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut stdin = std::io::empty();
        let code = run(
            std::iter::once("quickmeet").chain(args.iter().copied()),
            &mut Io { out: &mut out, err: &mut err, stdin: &mut stdin },
        );
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_usage_error_exits_2_and_help_exits_0() {
        assert_eq!(run_capture(&["user", "frobnicate"]).0, exit::USAGE);
        let (code, out, _) = run_capture(&["user", "add", "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Example:"), "{out}");
    }

    #[test]
    fn every_visible_command_has_an_example_in_its_help() {
        fn check(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
                let name = format!("{path} {}", sub.get_name());
                if sub.has_subcommands() {
                    check(sub, &name);
                } else {
                    let help = sub.get_long_about().or(sub.get_about()).map(|s| s.to_string()).unwrap_or_default();
                    assert!(help.contains("Example:"), "{name} has no example");
                }
            }
        }
        check(&Cli::command(), "quickmeet");
    }

    #[test]
    fn every_argument_is_explained_in_the_help() {
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments().filter(|a| !["help", "version"].contains(&a.get_id().as_str())) {
                assert!(arg.get_help().is_some(), "{path} {} has no help text", arg.get_id());
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), "quickmeet");
    }

    fn dir_arg(dir: &tempfile::TempDir) -> &str {
        dir.path().to_str().unwrap()
    }

    #[test]
    fn status_of_a_stopped_daemon_shows_the_data_dir_and_exits_3() {
        let dir = tempfile::tempdir().unwrap();
        let (code, out, err) = run_capture(&["--data-dir", dir_arg(&dir), "status"]);
        assert_eq!(code, exit::UNREACHABLE, "{err}");
        assert!(out.contains("not running") && out.contains("none yet"), "{out}");
        assert!(err.contains("quickmeetd is not running; start it with `quickmeetd --data-dir"), "{err}");
        let (code, out, _) = run_capture(&["--json", "--data-dir", dir_arg(&dir), "status"]);
        assert_eq!(code, exit::UNREACHABLE);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!((v["running"].as_bool(), v["database"].as_str()), (Some(false), Some("absent")), "{v}");
        assert!(v["adminSocket"].as_str().unwrap().ends_with("admin.sock"), "{v}");
    }

    #[test]
    fn offline_writes_on_a_dir_without_a_database_say_to_check_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (code, _, err) = run_capture(&["--data-dir", dir_arg(&dir), "user", "passwd", "alice", "--password-stdin"]);
        assert_eq!(code, exit::NOT_FOUND, "{err}");
        assert!(err.contains("is --data-dir right?"), "{err}");
        assert_eq!(run_capture(&["--data-dir", dir_arg(&dir), "cert", "renew"]).0, exit::NOT_FOUND);
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing was created");
    }

    #[test]
    fn cert_renew_offline_names_what_the_daemons_config_asks_for() {
        let dir = tempfile::tempdir().unwrap();
        drop(quickmeet::store::Store::open(dir.path()).unwrap());
        let names = |args: &[&str]| {
            let (code, out, err) = run_capture(args);
            assert_eq!(code, 0, "{err}");
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            v["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect::<Vec<_>>()
        };
        // With --data-dir alone, the daemon's defaults: mDNS on as quickmeet.local.
        let default = names(&["--json", "--data-dir", dir_arg(&dir), "cert", "renew"]);
        assert!(default.contains(&"quickmeet.local".to_string()), "{default:?}");
        let config = dir.path().join("quickmeet.toml");
        let toml = format!("data-dir = {:?}\nlisten = \"10.9.8.7:8443\"\nmdns-name = \"ward-3\"\n", dir.path());
        std::fs::write(&config, toml).unwrap();
        let configured = names(&["--json", "--config", config.to_str().unwrap(), "cert", "renew"]);
        for name in ["ward-3.local", "10.9.8.7"] {
            assert!(configured.contains(&name.to_string()), "{name} not in {configured:?}");
        }
    }

    #[test]
    fn an_unreadable_or_missing_config_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let (code, _, err) = run_capture(&["--config", missing.to_str().unwrap(), "user", "list"]);
        assert_eq!(code, exit::NOT_FOUND, "{err}");
        assert!(err.contains("--config FILE"), "{err}");
    }

    #[test]
    fn a_missing_daemon_exits_3_and_says_how_to_start_it() {
        let dir = tempfile::tempdir().unwrap();
        let (code, _, err) = run_capture(&["--data-dir", dir.path().to_str().unwrap(), "user", "list"]);
        assert_eq!(code, exit::UNREACHABLE, "{err}");
        assert!(err.contains("is quickmeetd running?") && err.contains("start it with"), "{err}");
    }

    #[test]
    fn completions_and_man_pages_are_generated() {
        let (code, out, _) = run_capture(&["completions", "bash"]);
        assert_eq!(code, 0);
        assert!(out.contains("quickmeet") && out.contains("set-role"));
        let dir = tempfile::tempdir().unwrap();
        let (code, out, _) = run_capture(&["--json", "man", dir.path().to_str().unwrap()]);
        assert_eq!(code, 0);
        assert!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["pages"].as_u64().unwrap() > 20, "{out}");
        for page in ["quickmeet.1", "quickmeet-user-add.1", "quickmeet-backup-restore.1"] {
            assert!(dir.path().join(page).exists(), "{page}");
        }
    }
}
