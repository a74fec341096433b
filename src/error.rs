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

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
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
