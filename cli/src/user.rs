//! `quickmeet user …`: accounts.

use crate::client::{unexpected, Daemon, Target};
use crate::output::{fields, json, say, table};
use crate::{exit, Cli, Failure, Io, Outcome};
use clap::{Subcommand, ValueEnum};
use quickmeet::accounts::Role;
use quickmeet::admin::{AdminRequest, AdminResponse, UserView};

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create an account (works even when registration is closed).
    ///
    /// The password is asked for twice without echo, or read from the first line of
    /// standard input with --password-stdin.
    ///
    /// Example: quickmeet user add alice --display-name "Alice Liddell" --role admin
    Add {
        /// Login name: 3–32 letters, digits, '_', '.' or '-'
        username: String,
        /// Name shown to others [default: the username]
        #[arg(long)]
        display_name: Option<String>,
        /// What the account may do
        #[arg(long, value_enum, default_value = "user")]
        role: RoleArg,
        /// Read the password from standard input instead of prompting
        #[arg(long)]
        password_stdin: bool,
    },
    /// List every account.
    ///
    /// Example: quickmeet user list --json
    List,
    /// Show one account.
    ///
    /// Example: quickmeet user show alice
    Show {
        /// The account's username (not case-sensitive)
        username: String,
    },
    /// Set a new password; the user's sessions end at once.
    ///
    /// Also works with quickmeetd stopped (e.g. to recover the only admin account): the
    /// password is then set directly in the data dir and takes effect when it starts.
    ///
    /// Example: echo 'new secret pw' | quickmeet user passwd alice --password-stdin
    Passwd {
        /// The account's username (not case-sensitive)
        username: String,
        /// Read the password from standard input instead of prompting
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: its sockets close and its tokens stop working at once.
    ///
    /// Example: quickmeet user disable mallory
    Disable {
        /// The account's username (not case-sensitive)
        username: String,
    },
    /// Enable a disabled account again (the user logs in anew).
    ///
    /// Example: quickmeet user enable mallory
    Enable {
        /// The account's username (not case-sensitive)
        username: String,
    },
    /// Delete an account; its messages stay, shown as from "deleted user".
    ///
    /// The username stays reserved so no one can take it over.
    ///
    /// Example: quickmeet user delete mallory
    Delete {
        /// The account's username (not case-sensitive)
        username: String,
    },
    /// Make an account an administrator or a normal user.
    ///
    /// Example: quickmeet user set-role alice admin
    SetRole {
        /// The account's username (not case-sensitive)
        username: String,
        /// The new role
        #[arg(value_enum)]
        role: RoleArg,
    },
}

/// Roles as typed on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    /// Chats and calls
    User,
    /// Also administers the appliance
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::User => Role::User,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// Reads a password: the first line of stdin, or twice from the terminal without echo.
pub fn read_password(io: &mut Io<'_>, from_stdin: bool, who: &str) -> Result<String, Failure> {
    if from_stdin {
        let mut line = String::new();
        io.stdin.read_line(&mut line).map_err(|e| Failure::error(format!("cannot read standard input: {e}")))?;
        let pw = line.trim_end_matches(['\n', '\r']).to_string();
        if pw.is_empty() {
            return Err(Failure::new(exit::USAGE, "no password on standard input"));
        }
        return Ok(pw);
    }
    let no_tty = |e: std::io::Error| {
        Failure::new(exit::USAGE, format!("cannot prompt for a password ({e}); pipe it in with --password-stdin"))
    };
    let first = rpassword::prompt_password(format!("New password for {who}: ")).map_err(no_tty)?;
    let again = rpassword::prompt_password("Repeat it: ").map_err(no_tty)?;
    if first != again {
        return Err(Failure::error("the passwords differ; nothing was changed, run the command again"));
    }
    Ok(first)
}

fn show(cli: &Cli, io: &mut Io<'_>, u: &UserView) -> Outcome {
    if cli.json {
        return json(io.out, u);
    }
    fields(
        io.out,
        &[
            ("username", u.username.clone()),
            ("display name", u.display_name.clone()),
            ("id", u.id.clone()),
            ("role", role(u.role).into()),
            ("state", state(u).into()),
            ("created", u.created_at.clone()),
            ("last seen", u.last_seen.clone().unwrap_or_else(|| "never".into())),
        ],
    )
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::User => "user",
    }
}

fn state(u: &UserView) -> &'static str {
    match (u.deleted, u.disabled, u.online) {
        (true, _, _) => "deleted",
        (_, true, _) => "disabled",
        (_, _, true) => "online",
        _ => "offline",
    }
}

/// `user passwd` with the daemon stopped: straight into the data dir, whose database lock
/// is taken before prompting (so a daemon that runs after all is noticed first).
fn passwd_offline(cli: &Cli, io: &mut Io<'_>, target: &Target, username: &str, from_stdin: bool) -> Outcome {
    let dir = quickmeet::admin::offline::Offline::open(&target.data_dir).map_err(|e| target.offline_failure(e))?;
    let password = read_password(io, from_stdin, username)?;
    let rec = dir.set_password(username, &password).map_err(|e| target.offline_failure(e))?;
    let u = UserView::new(&rec, false);
    if cli.json {
        return json(io.out, &u);
    }
    say(
        io.out,
        format!(
            "{} has a new password (set in {} while quickmeetd is stopped; old sessions are refused when it starts)",
            u.username,
            target.data_dir.display()
        ),
    )
}

pub fn run(cli: &Cli, cmd: &UserCmd, io: &mut Io<'_>) -> Outcome {
    let target = Target::resolve(cli)?;
    let req = match cmd {
        UserCmd::Add { username, display_name, role, password_stdin } => {
            target.connect()?; // fail before prompting when the daemon is not there
            let password = read_password(io, *password_stdin, username)?;
            let (display_name, role) = (display_name.clone(), (*role).into());
            AdminRequest::UserAdd { username: username.clone(), password, display_name, role }
        }
        UserCmd::List => AdminRequest::UserList,
        UserCmd::Show { username } => AdminRequest::UserShow { username: username.clone() },
        UserCmd::Passwd { username, password_stdin } => {
            if let Daemon::Stopped(_) = target.daemon()? {
                return passwd_offline(cli, io, &target, username, *password_stdin);
            }
            let password = read_password(io, *password_stdin, username)?;
            AdminRequest::UserPasswd { username: username.clone(), password }
        }
        UserCmd::Disable { username } => AdminRequest::UserDisable { username: username.clone() },
        UserCmd::Enable { username } => AdminRequest::UserEnable { username: username.clone() },
        UserCmd::Delete { username } => AdminRequest::UserDelete { username: username.clone() },
        UserCmd::SetRole { username, role } => {
            AdminRequest::UserSetRole { username: username.clone(), role: (*role).into() }
        }
    };
    match (cmd, target.request(req)?) {
        (_, AdminResponse::Users { users }) => {
            if cli.json {
                return json(io.out, &users);
            }
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    let last = u.last_seen.clone().unwrap_or_else(|| "never".into());
                    vec![u.username.clone(), u.display_name.clone(), role(u.role).into(), state(u).into(), last]
                })
                .collect();
            table(io.out, &["USERNAME", "DISPLAY NAME", "ROLE", "STATE", "LAST SEEN"], &rows)
        }
        (UserCmd::Show { .. }, AdminResponse::User(u)) => show(cli, io, &u),
        (_, AdminResponse::User(u)) if cli.json => json(io.out, &u),
        (_, AdminResponse::User(u)) => {
            let what = match cmd {
                UserCmd::Add { .. } => "created",
                UserCmd::Passwd { .. } => "has a new password; their sessions were closed",
                UserCmd::Disable { .. } => "is disabled; their sessions were closed",
                UserCmd::Enable { .. } => "is enabled",
                UserCmd::Delete { .. } => "is deleted; their messages remain as \"deleted user\"",
                _ => "is now",
            };
            match cmd {
                UserCmd::SetRole { .. } => say(io.out, format!("{} is now {}", u.username, role(u.role))),
                _ => say(io.out, format!("{} {what}", u.username)),
            }
        }
        (_, other) => Err(unexpected(other)),
    }
}
