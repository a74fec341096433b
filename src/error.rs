//! The one error type of the core. Each variant says what went wrong in terms a client
//! can act on; the daemon maps variants to HTTP statuses and WebSocket error codes in one
//! place. Infrastructure failures are kept as `Internal` and never shown to clients.

/// Everything the core can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or a value is out of range (HTTP 400).
    #[error("{1}")]
    Invalid(&'static str, String),
    /// No valid credentials (HTTP 401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated but not allowed (HTTP 403).
    #[error("{1}")]
    Forbidden(&'static str, String),
    /// The thing does not exist, or the caller may not know that it does (HTTP 404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness or state conflict, e.g. a taken username (HTTP 409).
    #[error("{1}")]
    Conflict(&'static str, String),
    /// A size limit was exceeded (HTTP 413).
    #[error("{1}")]
    TooLarge(&'static str, String),
    /// The content type is not on the whitelist (HTTP 415).
    #[error("{0}")]
    UnsupportedType(String),
    /// The server is shutting down or overloaded (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The disk holding the data dir is full: nothing new can be stored until an
    /// administrator frees space, after which writes resume by themselves; reads keep
    /// working (HTTP 507).
    #[error(
        "the appliance's disk is full; nothing new can be stored until an administrator frees space, then writes resume by themselves"
    )]
    StorageFull,
    /// Anything else: logged in full, shown to clients as a generic failure (HTTP 500).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias used throughout the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for a 400 with the generic `invalid_input` code.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid("invalid_input", msg.into())
    }

    /// The snake_case code clients see in `{"error":{"code"}}`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(code, _) => code,
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(code, _) => code,
            Error::NotFound(_) => "not_found",
            Error::Conflict(code, _) => code,
            Error::TooLarge(code, _) => code,
            Error::UnsupportedType(_) => "unsupported_type",
            Error::Unavailable(_) => "unavailable",
            Error::StorageFull => "storage_full",
            Error::Internal(_) => "internal",
        }
    }

    /// The message clients see: never contains internal detail.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "internal server error".to_string(),
            other => other.to_string(),
        }
    }
}

/// What clients are told while the store recovers from an I/O error during a commit
/// (typically the disk filling up): redb's handle refuses writes until the store reopens the
/// database, which the next write does by itself once the disk has room (see `store`).
pub const POISONED: &str =
    "storage is recovering from a disk error (is the disk full?); retry in a moment: writes resume by themselves once there is free space";

/// Whether an infrastructure error is the disk running out of space (ENOSPC, EDQUOT),
/// anywhere in its chain of causes.
pub fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded) {
                return true;
            }
        }
        cur = err.source();
    }
    // redb keeps the I/O error only in its message.
    let text = e.to_string();
    text.contains("No space left on device") || text.contains("Disk quota exceeded")
}

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                if is_disk_full(&e) {
                    return Error::StorageFull;
                }
                if e.to_string().contains("Previous I/O error") {
                    return Error::Unavailable(POISONED.into());
                }
                Error::Internal(e.to_string())
            }
        }
    )*};
}

internal_from!(
    std::io::Error,
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    serde_json::Error,
    rcgen::Error,
    tokio::task::JoinError
);
