//! `quickmeet status`.

use crate::client::{unexpected, Target};
use crate::output::{bytes, days_until, duration, fields, json};
use crate::{Cli, Io, Outcome};
use quickmeet::admin::{AdminRequest, AdminResponse};

/// Shows what the daemon is doing; exit 3 when it is not running.
pub fn run(cli: &Cli, io: &mut Io<'_>) -> Outcome {
    let target = Target::resolve(cli)?;
    let answer = target.request(AdminRequest::Status).map_err(|mut f| {
        if f.code == crate::exit::UNREACHABLE {
            f.message = format!("quickmeetd is not running ({})", f.message);
        }
        f
    })?;
    let s = match answer {
        AdminResponse::Status(s) => s,
        other => return Err(unexpected(other)),
    };
    if cli.json {
        return json(io.out, &s);
    }
    let cert = match &s.cert {
        Some(c) => {
            let days = days_until(&c.not_after).map(|d| format!(" ({d} days left)")).unwrap_or_default();
            format!("{}{days}{}", c.not_after, if c.imported { ", imported" } else { "" })
        }
        None => "unknown".into(),
    };
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
            ("certificate expires", cert),
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
