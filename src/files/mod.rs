//! Shared files. This module owns the File object that file messages carry.

use crate::ids::{FileId, UserId};
use serde::{Deserialize, Serialize};

/// An uploaded file as clients see it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    pub id: FileId,
    /// Stored name, `<uuid>.<ext>`.
    pub filename: String,
    /// The name it was uploaded with, as metadata only.
    pub original_name: String,
    pub mime_type: String,
    pub size: u64,
    pub url: String,
    pub uploaded_by: UserId,
    pub created_at: String,
}
