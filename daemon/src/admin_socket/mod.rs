//! The admin socket: a Unix socket (mode 0660) where the `quickmeet` CLI sends one request
//! per connection. Who may talk to it is decided from the peer's credentials (SO_PEERCRED)
//! before a byte is read: root, the daemon's own user, and members of the daemon's group
//! (primary or supplementary, so an admin is granted access with `usermod -aG quickmeet`).
//! Requests are bounded in size and time; the socket file is removed when the daemon stops.

mod actions;

use crate::AppState;
use anyhow::Context;
use quickmeet::admin::{AdminRequest, AdminResponse, Envelope, ErrorKind, MAX_REQUEST_BYTES, PROTOCOL_VERSION};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// Longest a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a request (other than a backup) may take to answer.
const HANDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A bound admin socket, not yet serving.
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
    started: Instant,
}

impl std::fmt::Debug for AdminSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSocket").field("path", &self.path).finish()
    }
}

/// Binds the socket at `path` with mode 0660. A stale socket file left by a crash is
/// replaced; one that still answers means another daemon owns it.
pub fn bind(path: &Path) -> anyhow::Result<AdminSocket> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("another quickmeetd already answers on {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing the stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("binding the admin socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(AdminSocket { listener, path: path.to_path_buf(), started: Instant::now() })
}

/// Who the daemon is, for deciding who may administer it.
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// The daemon process's effective user and group.
    pub fn current() -> Owner {
        Owner { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() }
    }

    /// Whether a peer with this uid, primary gid and supplementary groups may administer.
    pub fn allows(&self, uid: u32, gid: u32, groups: &[u32]) -> bool {
        uid == 0 || uid == self.uid || gid == self.gid || groups.contains(&self.gid)
    }
}

/// The supplementary groups of `uid` from the user database.
fn groups_of(uid: u32, gid: u32) -> Vec<u32> {
    use nix::unistd::{getgrouplist, Gid, Uid, User};
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else { return Vec::new() };
    let Ok(name) = std::ffi::CString::new(user.name) else { return Vec::new() };
    getgrouplist(&name, Gid::from_raw(gid)).map(|g| g.into_iter().map(Gid::as_raw).collect()).unwrap_or_default()
}

/// Decides from SO_PEERCRED whether the peer may use the socket.
async fn peer_allowed(stream: &UnixStream, owner: Owner) -> Result<(), String> {
    let cred = stream.peer_cred().map_err(|e| format!("cannot read peer credentials: {e}"))?;
    let (uid, gid) = (cred.uid(), cred.gid());
    if owner.allows(uid, gid, &[]) {
        return Ok(());
    }
    let groups = tokio::task::spawn_blocking(move || groups_of(uid, gid)).await.unwrap_or_default();
    if owner.allows(uid, gid, &groups) {
        return Ok(());
    }
    Err(format!("uid {uid} may not administer quickmeetd"))
}

/// Serves the socket until the daemon's shutdown token is cancelled, then waits briefly
/// for requests in flight and removes the socket file.
pub async fn serve(sock: AdminSocket, state: AppState, https: SocketAddr) {
    let owner = Owner::current();
    let ctx = actions::Ctx { state: state.clone(), https, started: sock.started };
    let mut tasks = JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = state.shutdown.cancelled() => break,
            accepted = sock.listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while tasks.try_join_next().is_some() {}
        let ctx = ctx.clone();
        tasks.spawn(async move {
            if let Err(e) = connection(stream, owner, ctx).await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
    drop(sock.listener);
    let _ = std::fs::remove_file(&sock.path);
    if tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!("admin requests still running at shutdown were abandoned");
        tasks.abort_all();
    }
}

async fn reply(stream: &mut UnixStream, r: &AdminResponse) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.flush().await
}

async fn connection(mut stream: UnixStream, owner: Owner, ctx: actions::Ctx) -> std::io::Result<()> {
    if let Err(why) = peer_allowed(&stream, owner).await {
        tracing::warn!(%why, "admin socket: peer refused");
        let msg = "permission denied: run quickmeet as root (sudo) or as a member of the daemon's group";
        return reply(&mut stream, &AdminResponse::error(ErrorKind::PermissionDenied, msg)).await;
    }
    let mut line = Vec::new();
    let read = {
        let mut limited = BufReader::new((&mut stream).take(MAX_REQUEST_BYTES as u64 + 1));
        tokio::time::timeout(READ_TIMEOUT, limited.read_until(b'\n', &mut line)).await
    };
    let envelope = match read {
        Err(_) => return reply(&mut stream, &AdminResponse::error(ErrorKind::Invalid, "request timed out")).await,
        Ok(r) => {
            r?;
            if line.len() > MAX_REQUEST_BYTES {
                let r = AdminResponse::error(ErrorKind::Invalid, "request too large");
                return reply(&mut stream, &r).await;
            }
            let version = serde_json::from_slice::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("version").and_then(|v| v.as_u64()));
            match serde_json::from_slice::<Envelope>(&line) {
                Ok(e) if e.version == PROTOCOL_VERSION => e,
                _ if version.is_some_and(|v| v != PROTOCOL_VERSION as u64) => {
                    let msg = format!(
                        "this quickmeetd speaks admin protocol {PROTOCOL_VERSION}, the CLI {}; use the quickmeet CLI of the same release",
                        version.unwrap_or_default()
                    );
                    return reply(&mut stream, &AdminResponse::error(ErrorKind::Version, msg)).await;
                }
                Ok(_) | Err(_) => {
                    let r = AdminResponse::error(ErrorKind::Invalid, "malformed request");
                    return reply(&mut stream, &r).await;
                }
            }
        }
    };
    if let AdminRequest::BackupCreate = envelope.request {
        return actions::backup(stream, ctx).await;
    }
    // Only the operation's name is logged: requests may carry passwords and keys.
    let op = serde_json::to_value(&envelope.request).ok().and_then(|v| v["op"].as_str().map(str::to_string));
    let op = op.unwrap_or_default();
    let response = match tokio::time::timeout(HANDLE_TIMEOUT, actions::handle(&ctx, envelope.request)).await {
        Ok(r) => r,
        Err(_) => AdminResponse::error(ErrorKind::Unavailable, "the daemon took too long to answer; see its log"),
    };
    if let AdminResponse::Error { kind, message } = &response {
        tracing::info!(?kind, %message, %op, "admin request refused");
    }
    reply(&mut stream, &response).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_the_daemon_user_and_its_group_are_allowed_and_no_one_else() {
        let owner = Owner { uid: 990, gid: 985 };
        assert!(owner.allows(0, 0, &[]), "root");
        assert!(owner.allows(990, 1, &[]), "the daemon's own user");
        assert!(owner.allows(1000, 985, &[]), "primary group");
        assert!(owner.allows(1000, 1000, &[27, 985]), "supplementary group");
        assert!(!owner.allows(1000, 1000, &[27, 100]), "anyone else");
        assert!(!owner.allows(65534, 65534, &[]), "nobody");
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_the_new_one_is_0660() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let sock = bind(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o660);
        assert!(bind(&path).unwrap_err().to_string().contains("already answers"));
        drop(sock);
    }
}
