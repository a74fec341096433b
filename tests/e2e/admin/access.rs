//! Who may use the admin socket, checked with real processes of other users: CI runs as
//! root, so the test forks a child of itself that drops to `nobody` (with chosen
//! supplementary groups) and runs the CLI against the daemon from there.

use super::cli;
use crate::util::TestDaemon;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

/// Run by the tests below in a child process dropped to `nobody`; does nothing otherwise.
#[test]
fn peer_probe_child() {
    if let Ok(socket) = std::env::var("QM_PROBE_SOCKET") {
        let code = quickmeet_cli::run_std(["quickmeet", "--socket", &socket, "user", "list"]);
        std::process::exit(code);
    }
}

/// Runs `quickmeet --socket SOCKET user list` as uid/gid `nobody` with `groups` as its
/// supplementary groups; returns its exit code and stderr.
async fn probe_as_nobody(socket: PathBuf, groups: Vec<u32>) -> (Option<i32>, String) {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    use std::os::unix::process::CommandExt;
    let out = tokio::task::spawn_blocking(move || {
        let gids: Vec<Gid> = groups.into_iter().map(Gid::from_raw).collect();
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["admin::access::peer_probe_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("QM_PROBE_SOCKET", &socket);
        // Supplementary groups must be set before giving up root, which std's uid() does
        // first; so the child drops privileges itself, with plain system calls only.
        // SAFETY: setgroups, setgid and setuid are async-signal-safe and `gids` was
        // allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                setgroups(&gids)?;
                setgid(Gid::from_raw(65534))?;
                setuid(Uid::from_raw(65534))?;
                Ok(())
            });
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A group other than root's and nobody's, as a stand-in for an administrators' group.
fn some_system_group() -> nix::unistd::Group {
    ["users", "staff", "adm", "daemon"]
        .iter()
        .find_map(|n| nix::unistd::Group::from_name(n).ok().flatten())
        .expect("one of the usual system groups exists")
}

#[tokio::test]
async fn a_process_of_another_user_is_refused_by_the_admin_socket() {
    let d = TestDaemon::start().await;
    let socket = d.dir.path().join("admin.sock");
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o660);
    if !nix::unistd::geteuid().is_root() {
        // Only root can start a process as someone else; the rule itself is unit-tested
        // in admin_socket::tests. Our own uid must be allowed.
        assert_eq!(cli(d.dir.path(), &["user", "list"], "").await.0, 0);
        return;
    }
    // Open the file modes so that only the peer-credential check stands in the way.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, err) = probe_as_nobody(socket, Vec::new()).await;
    assert_eq!(code, Some(4), "{err}");
    // The daemon's refusal (not the file mode): it answered before reading the request.
    assert!(err.contains("permission denied: run quickmeet as root"), "{err}");
}

#[tokio::test]
async fn members_of_the_admin_group_may_administer_and_own_the_socket_by_group() {
    let group = some_system_group();
    let name = group.name.clone();
    let d = TestDaemon::start_with(|c| c.admin_group = Some(name)).await;
    let socket = d.dir.path().join("admin.sock");
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, group.gid.as_raw()), "mode 0660, group {}", group.name);
    if !nix::unistd::geteuid().is_root() {
        assert_eq!(cli(d.dir.path(), &["user", "list"], "").await.0, 0);
        return;
    }
    d.user("alice").await;
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A supplementary member gets through both the file mode and the peer check.
    let (code, err) = probe_as_nobody(socket.clone(), vec![group.gid.as_raw()]).await;
    assert_eq!(code, Some(0), "{err}");
    // Anyone else is stopped (here by the 0660 mode already).
    let (code, err) = probe_as_nobody(socket, Vec::new()).await;
    assert_eq!(code, Some(4), "{err}");
}
