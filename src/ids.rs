//! Newtype identifiers. All are opaque, time-ordered strings (UUIDv7) on the wire; the
//! types keep a user id from being passed where a group id is meant.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                $name(uuid::Uuid::now_v7().to_string())
            }
            /// The id as it appears on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }
    };
}

id_type!(
    /// Identifies an account.
    UserId
);
id_type!(
    /// Identifies a group.
    GroupId
);
id_type!(
    /// Identifies a stored message.
    MessageId
);
id_type!(
    /// Identifies an uploaded file.
    FileId
);
id_type!(
    /// Identifies a 1-to-1 call, chosen by the caller.
    CallId
);

/// Ids coming from clients are bounded before they are looked up anywhere.
pub const MAX_ID_LEN: usize = 64;

/// Rejects ids that cannot be ours (too long, or with characters we never generate), so
/// they never reach the store.
pub fn plausible_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
