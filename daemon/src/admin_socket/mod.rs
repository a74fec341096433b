//! The admin socket: a Unix socket (mode 0660) where the `quickmeet` CLI sends one request
//! per connection. Who may talk to it is decided from the peer's credentials (SO_PEERCRED,
//! plus the supplementary groups from `/proc/<pid>/status`) before a byte is read: root, the
//! daemon's own user, members of the daemon's group, and members of the `admin-group` named
//! in the config (primary or supplementary, so an admin is granted access with
//! `usermod -aG <group>`).
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
    access: Access,
}

impl std::fmt::Debug for AdminSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSocket").field("path", &self.path).field("access", &self.access).finish()
    }
}

/// Binds the socket at `path` with mode 0660 for the peers `access` allows. A stale socket
/// file left by a crash is replaced; one that still answers means another daemon owns it.
pub fn bind(path: &Path, access: Access) -> anyhow::Result<AdminSocket> {
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
    if let Some(gid) = access.admin_gid {
        // The file mode lets the admin group reach the socket; the peer check then admits it.
        std::os::unix::fs::chown(path, None, Some(gid)).with_context(|| {
            format!(
                "giving {} to admin-group (gid {gid}): the daemon's user must be a member of that group",
                path.display()
            )
        })?;
    }
    Ok(AdminSocket { listener, path: path.to_path_buf(), started: Instant::now(), access })
}

/// Who may administer the daemon: root, the daemon's own user, its group, and the members
/// of the configured `admin-group`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub uid: u32,
    pub gid: u32,
    pub admin_gid: Option<u32>,
}

/// The credentials of a connected peer: SO_PEERCRED's uid and primary gid, plus the
/// supplementary groups of its process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Access {
    /// The daemon process's effective user and group, and the gid of `admin_group` (which
    /// must exist: a typo in the config must not silently lock the administrators out).
    pub fn current(admin_group: Option<&str>) -> anyhow::Result<Access> {
        let admin_gid = match admin_group {
            None => None,
            Some(name) => match nix::unistd::Group::from_name(name) {
                Ok(Some(g)) => Some(g.gid.as_raw()),
                Ok(None) => anyhow::bail!(
                    "admin-group {name:?} is not a group on this system; create it (groupadd {name}) or \
                     remove admin-group from the config"
                ),
                Err(e) => anyhow::bail!("cannot look up admin-group {name:?}: {e}"),
            },
        };
        Ok(Access { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw(), admin_gid })
    }

    /// Whether this peer may administer.
    pub fn allows(&self, peer: &Peer) -> bool {
        let member = |gid: u32| peer.gid == gid || peer.groups.contains(&gid);
        peer.uid == 0 || peer.uid == self.uid || member(self.gid) || self.admin_gid.is_some_and(member)
    }
}

/// The supplementary groups on the `Groups:` line of a `/proc/<pid>/status` file.
pub fn groups_from_status(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| g.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

/// The peer's credentials. SO_PEERCRED gives only the primary gid, so the supplementary
/// groups are read from the peer process's `/proc` entry; when that cannot be read (the
/// process is gone) the peer is judged on its uid and primary gid alone.
async fn peer_of(stream: &UnixStream) -> std::io::Result<Peer> {
    let cred = stream.peer_cred()?;
    let groups = match cred.pid() {
        Some(pid) => tokio::fs::read_to_string(format!("/proc/{pid}/status"))
            .await
            .map(|s| groups_from_status(&s))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Peer { uid: cred.uid(), gid: cred.gid(), groups })
}

/// Serves the socket until the daemon's shutdown token is cancelled, then waits briefly
/// for requests in flight and removes the socket file.
pub async fn serve(sock: AdminSocket, state: AppState, https: SocketAddr) {
    let access = sock.access;
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
            if let Err(e) = connection(stream, access, ctx).await {
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

async fn connection(mut stream: UnixStream, access: Access, ctx: actions::Ctx) -> std::io::Result<()> {
    // Decided before a byte of the request is read.
    let peer = peer_of(&stream).await?;
    if !access.allows(&peer) {
        tracing::warn!(uid = peer.uid, gid = peer.gid, groups = ?peer.groups, "admin socket: peer refused");
        let msg = "permission denied: run quickmeet as root (sudo), as the daemon's user, or as a member of \
                   its admin-group (see admin-group in the config)";
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

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer { uid, gid, groups: groups.to_vec() }
    }

    #[test]
    fn root_the_daemon_user_and_its_group_are_allowed_and_no_one_else() {
        let access = Access { uid: 990, gid: 985, admin_gid: None };
        assert!(access.allows(&peer(0, 0, &[])), "root");
        assert!(access.allows(&peer(990, 1, &[])), "the daemon's own user");
        assert!(access.allows(&peer(1000, 985, &[])), "primary group");
        assert!(access.allows(&peer(1000, 1000, &[27, 985])), "supplementary group");
        assert!(!access.allows(&peer(1000, 1000, &[27, 100])), "anyone else");
        assert!(!access.allows(&peer(65534, 65534, &[])), "nobody");
    }

    #[test]
    fn members_of_the_admin_group_are_allowed_by_primary_or_supplementary_group() {
        let access = Access { uid: 990, gid: 985, admin_gid: Some(1500) };
        assert!(access.allows(&peer(1000, 1500, &[])), "primary admin group");
        assert!(access.allows(&peer(1000, 1000, &[24, 1500])), "supplementary admin group");
        assert!(access.allows(&peer(1000, 985, &[])), "the daemon's group still counts");
        assert!(!access.allows(&peer(1000, 1000, &[24, 1501])), "another group");
        assert!(!access.allows(&peer(65534, 65534, &[65534])), "nobody");
    }

    #[test]
    fn supplementary_groups_are_read_from_proc_status() {
        let status = "Name:\tquickmeet\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n\
                      FDSize:\t64\nGroups:\t4 24 27 1500 \nNStgid:\t42\n";
        assert_eq!(groups_from_status(status), vec![4, 24, 27, 1500]);
        assert_eq!(groups_from_status("Name:\tx\nGroups:\t\n"), Vec::<u32>::new());
        assert_eq!(groups_from_status(""), Vec::<u32>::new());
        let mine = groups_from_status(&std::fs::read_to_string("/proc/self/status").unwrap());
        let expected: Vec<u32> = nix::unistd::getgroups().unwrap().into_iter().map(|g| g.as_raw()).collect();
        assert_eq!(mine, expected);
    }

    #[test]
    fn an_admin_group_that_does_not_exist_is_an_error_that_says_what_to_do() {
        let e = Access::current(Some("no-such-group-qm")).unwrap_err().to_string();
        assert!(e.contains("groupadd no-such-group-qm"), "{e}");
        let root = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(0)).unwrap().unwrap();
        assert_eq!(Access::current(Some(&root.name)).unwrap().admin_gid, Some(0));
        assert_eq!(Access::current(None).unwrap().admin_gid, None);
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_the_new_one_is_0660() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let access = Access::current(None).unwrap();
        let sock = bind(&path, access).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o660);
        assert!(bind(&path, access).unwrap_err().to_string().contains("already answers"));
        drop(sock);
    }

    #[tokio::test]
    async fn with_an_admin_group_the_socket_belongs_to_that_group() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let own = nix::unistd::getegid().as_raw();
        let access = Access { admin_gid: Some(own), ..Access::current(None).unwrap() };
        let _sock = bind(&path, access).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.gid(), meta.mode() & 0o777), (own, 0o660));
    }
}
