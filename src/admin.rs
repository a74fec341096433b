//! The admin socket's protocol, shared by `quickmeetd` and the `quickmeet` CLI: the client
//! connects to the Unix socket, writes one [`Envelope`] as a line of JSON and reads one
//! [`AdminResponse`] line back. `backup-create` is the one exception: after a
//! [`AdminResponse::BackupFollows`] line the connection carries the archive bytes to EOF.
//! Users are named by username and groups by id or name, as an administrator types them.
//! [`offline`] is what the CLI does instead when the daemon is stopped.

pub mod offline;

use crate::accounts::{Role, UserRecord};
use crate::error::Error;
use serde::{Deserialize, Serialize};

/// Bumped when a request or response changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest request line the daemon reads (a certificate import is the largest request).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Largest response line the CLI reads.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// What the client sends: the protocol version it speaks and its request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope {
    pub version: u32,
    pub request: AdminRequest,
}

/// One administrative action.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AdminRequest {
    Status,
    UserAdd { username: String, password: String, display_name: Option<String>, role: Role },
    UserList,
    UserShow { username: String },
    UserPasswd { username: String, password: String },
    UserDisable { username: String },
    UserEnable { username: String },
    UserDelete { username: String },
    UserSetRole { username: String, role: Role },
    GroupCreate { name: String, admin: String, description: Option<String>, members: Vec<String> },
    GroupList,
    GroupShow { group: String },
    GroupAddMember { group: String, username: String },
    GroupRemoveMember { group: String, username: String },
    GroupDelete { group: String },
    CertShow,
    CertRenew,
    CertImport { cert_pem: String, key_pem: String },
    CertExportCa,
    BackupCreate,
}

/// The daemon's answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AdminResponse {
    Status(StatusReport),
    User(UserView),
    Users {
        users: Vec<UserView>,
    },
    Group(GroupView),
    Groups {
        groups: Vec<GroupView>,
    },
    Cert(CertReport),
    CaPem {
        pem: String,
    },
    Done {
        message: String,
    },
    /// The archive follows on the connection, up to EOF.
    BackupFollows,
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// Why a request failed; the CLI turns it into its exit code.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    Invalid,
    NotFound,
    Conflict,
    PermissionDenied,
    Unavailable,
    Internal,
    Version,
}

impl AdminResponse {
    /// The answer for a failed request. Internal detail stays in the daemon's log.
    pub fn from_error(e: &Error) -> AdminResponse {
        let kind = match e {
            Error::Invalid(..) | Error::TooLarge(..) | Error::UnsupportedType(_) => ErrorKind::Invalid,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict(..) => ErrorKind::Conflict,
            Error::Unauthenticated(_) | Error::Forbidden(..) => ErrorKind::PermissionDenied,
            Error::Unavailable(_) | Error::StorageFull => ErrorKind::Unavailable,
            Error::Internal(_) => ErrorKind::Internal,
        };
        let message = match e {
            Error::Internal(_) => "internal error; the daemon's log has the details (journalctl -u quickmeetd)".into(),
            other => other.to_string(),
        };
        AdminResponse::Error { kind, message }
    }

    /// Shorthand for an error answer.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> AdminResponse {
        AdminResponse::Error { kind, message: message.into() }
    }
}

/// An account as the administrator sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    pub deleted: bool,
    pub online: bool,
    pub created_at: String,
    pub last_seen: Option<String>,
}

impl UserView {
    /// The view of a record, with presence supplied by the daemon.
    pub fn new(r: &UserRecord, online: bool) -> UserView {
        UserView {
            id: r.id.to_string(),
            username: r.username.clone(),
            display_name: r.display_name.clone(),
            role: r.role,
            disabled: r.disabled,
            deleted: r.deleted,
            online,
            created_at: r.created_at.clone(),
            last_seen: r.last_seen.clone(),
        }
    }
}

/// A group with its people named by username.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub admin: String,
    pub members: Vec<String>,
    pub created_at: String,
}

/// The server certificate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CertReport {
    pub names: Vec<String>,
    pub not_after: String,
    pub fingerprint: String,
    pub ca_fingerprint: String,
    pub imported: bool,
}

impl From<crate::certs::CertInfo> for CertReport {
    fn from(c: crate::certs::CertInfo) -> Self {
        CertReport {
            names: c.names,
            not_after: c.not_after,
            fingerprint: c.fingerprint,
            ca_fingerprint: c.ca_fingerprint,
            imported: c.imported,
        }
    }
}

/// Calls in progress.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CallCounts {
    pub one_to_one: usize,
    pub group_calls: usize,
    pub in_group_calls: usize,
}

/// The embedded TURN server's figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TurnReport {
    pub listen: String,
    pub allocations: usize,
    pub relayed_bytes: u64,
}

/// What `quickmeet status` shows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub https: String,
    pub cert: Option<CertReport>,
    pub users: usize,
    pub users_online: usize,
    pub connections: usize,
    pub calls: CallCounts,
    pub turn: Option<TurnReport>,
    pub data_dir: String,
    pub data_dir_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_kebab_case_json() {
        let e = Envelope {
            version: PROTOCOL_VERSION,
            request: AdminRequest::UserSetRole { username: "a".into(), role: Role::Admin },
        };
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(s, r#"{"version":1,"request":{"op":"user-set-role","username":"a","role":"admin"}}"#);
        assert_eq!(serde_json::from_str::<Envelope>(&s).unwrap(), e);
        assert!(serde_json::from_str::<Envelope>(r#"{"version":1,"request":{"op":"user-show","user":"a"}}"#).is_err());
    }

    #[test]
    fn internal_errors_do_not_leak_detail() {
        let r = AdminResponse::from_error(&Error::Internal("disk /secret failed".into()));
        let s = serde_json::to_string(&r).unwrap();
        assert!(!s.contains("/secret") && s.contains(r#""kind":"internal""#), "{s}");
        let r = AdminResponse::from_error(&Error::NotFound("user"));
        assert_eq!(r, AdminResponse::error(ErrorKind::NotFound, "user not found"));
    }
}
