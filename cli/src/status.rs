//! `quickmeet status`: what the running daemon is doing, or, when it is stopped, what its
//! data dir holds (and exit 3, so scripts can tell).

use crate::client::{unexpected, Daemon, Target};
use crate::output::{bytes, days_until, duration, fields, json};
use crate::{exit, Cli, Failure, Io, Outcome};
use quickmeet::admin::offline::{inspect, Database, DirReport};
use quickmeet::admin::{AdminRequest, AdminResponse, CertReport, StatusReport};
use serde::Serialize;

/// Shows what the daemon is doing; exit 3 when it is not running.
pub fn run(cli: &Cli, io: &mut Io<'_>) -> Outcome {
    let target = Target::resolve(cli)?;
    match target.daemon()? {
        Daemon::Answers => match target.request(AdminRequest::Status)? {
            AdminResponse::Status(s) => running(cli, io, &target, &s),
            other => Err(unexpected(other)),
        },
        Daemon::Stopped(why) => stopped(cli, io, &target, &why),
    }
}

fn cert_line(cert: Option<&CertReport>) -> String {
    match cert {
        Some(c) => {
            let days = days_until(&c.not_after).map(|d| format!(" ({d} days left)")).unwrap_or_default();
            format!("{}{days}{}", c.not_after, if c.imported { ", imported" } else { "" })
        }
        None => "unknown".into(),
    }
}

fn running(cli: &Cli, io: &mut Io<'_>, target: &Target, s: &StatusReport) -> Outcome {
    if cli.json {
        return json(io.out, s);
    }
    let turn = match &s.turn {
        Some(t) => format!("{} — {} allocations, {} relayed", t.listen, t.allocations, bytes(t.relayed_bytes)),
        None => "not running (disabled or external)".into(),
    };
    fields(
        io.out,
        &[
            ("quickmeetd", format!("running, version {}, pid {}", s.version, s.pid)),
            ("uptime", duration(s.uptime_secs)),
            ("https", format!("https://{}/", s.https)),
            ("certificate expires", cert_line(s.cert.as_ref())),
            ("users", format!("{} ({} online)", s.users, s.users_online)),
            ("connections", s.connections.to_string()),
            (
                "calls",
                format!(
                    "{} one-to-one, {} group calls with {} people",
                    s.calls.one_to_one, s.calls.group_calls, s.calls.in_group_calls
                ),
            ),
            ("turn", turn),
            ("data dir", format!("{} ({})", s.data_dir, bytes(s.data_dir_bytes))),
            ("admin socket", target.socket.display().to_string()),
        ],
    )
}

/// The `--json` shape of a stopped daemon: the data dir's facts and where we looked.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stopped<'a> {
    #[serde(flatten)]
    report: &'a DirReport,
    admin_socket: String,
}

/// Prints what the data dir tells, then fails with exit 3 and how to start the daemon.
fn stopped(cli: &Cli, io: &mut Io<'_>, target: &Target, why: &str) -> Outcome {
    let r = inspect(&target.data_dir);
    let socket = target.socket.display().to_string();
    if cli.json {
        json(io.out, &Stopped { report: &r, admin_socket: socket.clone() })?;
    } else {
        let dir = match r.exists {
            true => format!("{} ({})", r.data_dir, bytes(r.data_dir_bytes)),
            false => format!("{} (does not exist)", r.data_dir),
        };
        let database = match r.database {
            Database::Absent => "none yet (quickmeetd creates it when it first starts)".to_string(),
            Database::InUse => "in use by another process".to_string(),
            Database::Unreadable => format!("cannot be read: {}", r.problem.as_deref().unwrap_or("unknown")),
            Database::Readable => format!(
                "{} users, {} groups, {} messages, {} files",
                r.users.unwrap_or(0),
                r.groups.unwrap_or(0),
                r.messages.unwrap_or(0),
                r.files.unwrap_or(0)
            ),
        };
        fields(
            io.out,
            &[
                ("quickmeetd", format!("not running ({why})")),
                ("data dir", dir),
                ("database", database),
                ("certificate expires", cert_line(r.cert.as_ref())),
                ("admin socket", socket.clone()),
            ],
        )?;
    }
    let message = match r.database {
        Database::InUse => format!(
            "quickmeetd seems to be running (its database is in use) but does not answer on {socket}; point to \
             its admin socket with --socket PATH (admin-socket in its config)"
        ),
        _ => format!("quickmeetd is not running; start it with `{}`", target.start_hint),
    };
    Err(Failure::new(exit::UNREACHABLE, message))
}
