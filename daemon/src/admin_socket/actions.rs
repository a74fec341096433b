//! What each admin request does, in terms of the core services and the running daemon
//! (closing a disabled user's sockets, swapping the TLS certificate, streaming a backup).

use crate::AppState;
use quickmeet::accounts::UserRecord;
use quickmeet::admin::{
    AdminRequest, AdminResponse, CallCounts, CertReport, ErrorKind, GroupView, StatusReport, TurnReport, UserView,
};
use quickmeet::groups::Group;
use quickmeet::ids::{GroupId, UserId};
use quickmeet::{Error, Result};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// What the actions need besides the shared state.
#[derive(Clone)]
pub struct Ctx {
    pub state: AppState,
    pub https: SocketAddr,
    pub started: Instant,
}

/// Runs one request and answers it.
pub async fn handle(ctx: &Ctx, req: AdminRequest) -> AdminResponse {
    match run(ctx, req).await {
        Ok(r) => r,
        Err(e) => {
            if let Error::Internal(detail) = &e {
                tracing::error!(%detail, "admin request failed");
            }
            AdminResponse::from_error(&e)
        }
    }
}

async fn run(ctx: &Ctx, req: AdminRequest) -> Result<AdminResponse> {
    let st = &ctx.state;
    let accounts = &st.core.accounts;
    let groups = &st.core.groups;
    Ok(match req {
        AdminRequest::Status => AdminResponse::Status(status(ctx).await?),
        AdminRequest::UserAdd { username, password, display_name, role } => {
            let rec = accounts.create(&username, &password, display_name.as_deref(), role).await?;
            user(st, &rec)
        }
        AdminRequest::UserList => {
            let users = accounts.list().iter().map(|r| UserView::new(r, st.hub.is_online(&r.id))).collect();
            AdminResponse::Users { users }
        }
        AdminRequest::UserShow { username } => user(st, &find_user(st, &username)?),
        AdminRequest::UserPasswd { username, password } => {
            let rec = accounts.set_password(&find_user(st, &username)?.id, &password).await?;
            // Old tokens are dead; so are the sockets opened with them.
            st.hub.close_user(&rec.id);
            user(st, &rec)
        }
        AdminRequest::UserDisable { username } => {
            let rec = accounts.set_disabled(&find_user(st, &username)?.id, true).await?;
            st.hub.close_user(&rec.id);
            user(st, &rec)
        }
        AdminRequest::UserEnable { username } => {
            user(st, &accounts.set_disabled(&find_user(st, &username)?.id, false).await?)
        }
        AdminRequest::UserDelete { username } => {
            let rec = accounts.delete(&find_user(st, &username)?.id).await?;
            st.hub.close_user(&rec.id);
            user(st, &rec)
        }
        AdminRequest::UserSetRole { username, role } => {
            user(st, &accounts.set_role(&find_user(st, &username)?.id, role).await?)
        }
        AdminRequest::GroupCreate { name, admin, description, members } => {
            let admin = live_user(st, &admin)?;
            let members = members.iter().map(|m| live_user(st, m)).collect::<Result<Vec<UserId>>>()?;
            AdminResponse::Group(group(st, &groups.create(&admin, &name, description.as_deref(), &members).await?))
        }
        AdminRequest::GroupList => {
            AdminResponse::Groups { groups: groups.all().iter().map(|g| group(st, g)).collect() }
        }
        AdminRequest::GroupShow { group: g } => AdminResponse::Group(group(st, &find_group(st, &g)?)),
        AdminRequest::GroupAddMember { group: g, username } => {
            let id = find_group(st, &g)?.id;
            let u = live_user(st, &username)?;
            AdminResponse::Group(group(st, &groups.admin_add_member(&id, &u).await?))
        }
        AdminRequest::GroupRemoveMember { group: g, username } => {
            let id = find_group(st, &g)?.id;
            let u = find_user(st, &username)?.id;
            let after = groups.remove_member(&id, &u).await?;
            st.hub.deliver_calls(&st.core.calls.member_removed(&id, &u));
            AdminResponse::Group(group(st, &after))
        }
        AdminRequest::GroupDelete { group: g } => {
            let gone = groups.delete(&find_group(st, &g)?.id).await?;
            for m in &gone.members {
                st.hub.deliver_calls(&st.core.calls.member_removed(&gone.id, m));
            }
            AdminResponse::Done { message: format!("deleted group {} ({})", gone.name, gone.id) }
        }
        AdminRequest::CertShow => AdminResponse::Cert(quickmeet::certs::current(data_dir(st))?.into()),
        AdminRequest::CertRenew => AdminResponse::Cert(renew(ctx).await?),
        AdminRequest::CertImport { cert_pem, key_pem } => AdminResponse::Cert(import(st, cert_pem, key_pem).await?),
        AdminRequest::CertExportCa => {
            let path = quickmeet::certs::TlsPaths::new(data_dir(st)).ca_cert;
            AdminResponse::CaPem { pem: tokio::fs::read_to_string(path).await? }
        }
        AdminRequest::BackupCreate => AdminResponse::error(ErrorKind::Invalid, "backup-create is streamed"),
    })
}

fn data_dir(st: &AppState) -> &std::path::Path {
    &st.core.config.data_dir
}

fn user(st: &AppState, r: &UserRecord) -> AdminResponse {
    AdminResponse::User(UserView::new(r, st.hub.is_online(&r.id)))
}

fn find_user(st: &AppState, username: &str) -> Result<UserRecord> {
    st.core.accounts.find(username).ok_or(Error::NotFound("user"))
}

/// A user that exists and is not deleted, for making someone a group member or admin.
fn live_user(st: &AppState, username: &str) -> Result<UserId> {
    match st.core.accounts.find(username) {
        Some(r) if !r.deleted => Ok(r.id),
        _ => Err(Error::Invalid("unknown_user", format!("there is no user named {username}"))),
    }
}

/// A group by id, or by name when exactly one group has it.
fn find_group(st: &AppState, query: &str) -> Result<Group> {
    if let Ok(g) = st.core.groups.get(&GroupId(query.to_string())) {
        return Ok(g);
    }
    let mut named: Vec<Group> =
        st.core.groups.all().into_iter().filter(|g| g.name.eq_ignore_ascii_case(query.trim())).collect();
    match named.len() {
        0 => Err(Error::NotFound("group")),
        1 => Ok(named.remove(0)),
        _ => Err(Error::Conflict(
            "ambiguous_group",
            format!(
                "{} groups are named {query}; use an id: {}",
                named.len(),
                named.iter().map(|g| g.id.to_string()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn group(st: &AppState, g: &Group) -> GroupView {
    let name = |id: &UserId| st.core.accounts.get(id).map_or_else(|| id.to_string(), |r| r.username);
    GroupView {
        id: g.id.to_string(),
        name: g.name.clone(),
        description: g.description.clone(),
        admin: name(&g.admin),
        members: g.members.iter().map(name).collect(),
        created_at: g.created_at.clone(),
    }
}

async fn status(ctx: &Ctx) -> Result<StatusReport> {
    let st = &ctx.state;
    let dir = data_dir(st).to_path_buf();
    let (size, cert) = tokio::task::spawn_blocking(move || {
        (quickmeet::admin::offline::dir_size(&dir), quickmeet::certs::current(&dir).ok())
    })
    .await?;
    let (one, groups, people) = st.core.calls.counts();
    Ok(StatusReport {
        version: quickmeet::VERSION.to_string(),
        pid: std::process::id(),
        uptime_secs: ctx.started.elapsed().as_secs(),
        https: ctx.https.to_string(),
        cert: cert.map(CertReport::from),
        users: st.core.accounts.list().iter().filter(|r| !r.deleted).count(),
        users_online: st.hub.online_users().len(),
        connections: st.hub.connection_count(),
        calls: CallCounts { one_to_one: one, group_calls: groups, in_group_calls: people },
        turn: st.turn.as_ref().map(|t| TurnReport {
            listen: t.addr.to_string(),
            allocations: t.stats.allocations(),
            relayed_bytes: t.stats.relayed_bytes(),
        }),
        data_dir: data_dir(st).display().to_string(),
        data_dir_bytes: size,
    })
}

fn internal(e: anyhow::Error) -> Error {
    Error::Internal(format!("{e:#}"))
}

/// Re-issues the server certificate from the local CA and swaps it in: new handshakes get
/// it at once, open connections keep theirs.
async fn renew(ctx: &Ctx) -> Result<CertReport> {
    let dir = data_dir(&ctx.state).to_path_buf();
    let names = quickmeet::certs::names_for(&ctx.state.core.config, ctx.https);
    let info = tokio::task::spawn_blocking(move || quickmeet::certs::ensure(&dir, &names, true)).await??;
    reload(&ctx.state)?;
    tracing::info!(fingerprint = %info.fingerprint, "server certificate renewed by the administrator");
    Ok(info.into())
}

async fn import(st: &AppState, cert_pem: String, key_pem: String) -> Result<CertReport> {
    crate::tls::check_pair(&cert_pem, &key_pem).map_err(|e| Error::Invalid("invalid_certificate", format!("{e:#}")))?;
    let dir = data_dir(st).to_path_buf();
    let now = quickmeet::clock::unix_now() as i64;
    let info = tokio::task::spawn_blocking(move || quickmeet::certs::install_imported(&dir, &cert_pem, &key_pem, now))
        .await??;
    reload(st)?;
    tracing::info!(fingerprint = %info.fingerprint, "imported server certificate installed");
    Ok(info.into())
}

fn reload(st: &AppState) -> Result<()> {
    let paths = quickmeet::certs::TlsPaths::new(data_dir(st));
    st.certs.reload(&paths.cert, &paths.key).map_err(internal)
}

/// Streams a consistent backup: a `backup-follows` line, then the archive to EOF. The CLI
/// verifies what it received, so a failure half-way shows up as a damaged archive there.
pub async fn backup(mut stream: UnixStream, ctx: Ctx) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(&AdminResponse::BackupFollows).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.flush().await?;
    let std_stream = stream.into_std()?;
    std_stream.set_nonblocking(false)?;
    // A reader that stops reading must not pin the read snapshot forever.
    std_stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let store = ctx.state.core.store.clone();
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(256 * 1024, &std_stream);
        quickmeet::backup::create(&store, out)
    })
    .await
    .map_err(std::io::Error::other)?;
    match result {
        Ok(m) => tracing::info!(
            users = m.counts.users,
            messages = m.counts.messages,
            files = m.entries.len(),
            ms = started.elapsed().as_millis() as u64,
            "backup streamed to the admin CLI"
        ),
        Err(e) => tracing::warn!(error = %e, "backup failed"),
    }
    Ok(())
}
