//! Shared files: uploads streamed to disk, types decided from content, per-user quotas,
//! who may download or delete, and the File object that file messages carry.
//!
//! Access follows the conversations: a file can be read by its uploader and by anyone who
//! is party to a message carrying it (both users of a DM, the current members of a group).
//! Everyone else is told it does not exist. Only the uploader or an administrator deletes
//! one; messages that carried it then show `removed: true` instead of breaking.

pub(crate) mod data;
pub mod detect;
pub mod names;
mod pace;
mod upload;

pub use pace::Pace;
pub use upload::{Checked, Upload};

use crate::accounts::{Role, UserRecord};
use crate::chat::FileResolver;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::groups::Groups;
use crate::ids::{FileId, GroupId, UserId};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use upload::{Reservation, TempPath, Usage};

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
    /// True once the uploader or an administrator deleted it: the other fields stay as
    /// they were, and `url` answers 404.
    #[serde(default)]
    pub removed: bool,
}

/// The most parts one `upload-multiple` request may carry.
pub const MAX_FILES_PER_REQUEST: usize = 10;

/// An open file ready to be sent to a client that may read it.
pub struct Download {
    pub info: FileInfo,
    pub file: tokio::fs::File,
    /// Size on disk now.
    pub len: u64,
}

/// The files service; cheap to clone.
#[derive(Clone)]
pub struct Files {
    store: Store,
    groups: Groups,
    dir: Arc<PathBuf>,
    tmp: Arc<PathBuf>,
    max_upload: u64,
    quota: u64,
    usage: Usage,
}

impl Files {
    /// Opens `<data-dir>/files/`, takes back uploads a crash interrupted mid-commit, clears
    /// unfinished ones and reports (never deletes) files and metadata that do not match.
    pub fn open(store: Store, groups: Groups, config: &Config) -> Result<Files> {
        let dir = config.data_dir.join("files");
        let tmp = dir.join(".tmp");
        std::fs::create_dir_all(&tmp)?;
        finish_interrupted_commits(&store, &dir, &tmp)?;
        clear_temp(&tmp)?;
        let usage = check_consistency(&store, &dir)?;
        Ok(Files {
            store,
            groups,
            dir: Arc::new(dir),
            tmp: Arc::new(tmp),
            max_upload: config.max_upload_bytes,
            quota: config.user_quota_bytes,
            usage: Arc::new(Mutex::new(usage)),
        })
    }

    /// The largest file accepted, in bytes.
    pub fn max_upload(&self) -> u64 {
        self.max_upload
    }

    /// Where stored files live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes `user` has stored (and is uploading right now).
    pub fn used_by(&self, user: &UserId) -> u64 {
        self.usage.lock().expect("usage lock").get(user).copied().unwrap_or(0)
    }

    /// Starts receiving a file from `user` into a temp file.
    pub async fn begin(&self, user: &UserId, original_name: Option<&str>) -> Result<Upload> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.tmp.join(format!("{}.part", uuid::Uuid::new_v4()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true).mode(0o600);
        let file = tokio::fs::OpenOptions::from(opts).open(&path).await?.into_std().await;
        Ok(Upload {
            files: self.clone(),
            user: user.clone(),
            original_name: names::sanitize_original_name(original_name.unwrap_or("")),
            file: upload::TempWriter::new(file),
            tmp: TempPath::new(path),
            size: 0,
            reservation: Reservation::new(self.usage.clone(), user.clone(), self.quota),
        })
    }

    /// Moves checked uploads into place and records them, all or none.
    pub async fn commit_all(&self, checked: Vec<Checked>) -> Result<Vec<FileInfo>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.commit_blocking(checked)).await?
    }

    /// Before a file moves into `files/`, an empty `<name>.pending` marker in `.tmp` says its
    /// commit has begun; the markers go once the metadata is committed. Start-up removes the
    /// file of any marker whose metadata never came ([`finish_interrupted_commits`]), so a
    /// crash mid-commit leaves neither a half-recorded upload nor an orphan file, while a file
    /// is still always in place before its metadata (which is what a backup relies on).
    fn commit_blocking(&self, mut checked: Vec<Checked>) -> Result<Vec<FileInfo>> {
        let now = crate::clock::now_rfc3339();
        let mut infos = Vec::with_capacity(checked.len());
        let mut markers = Vec::with_capacity(checked.len());
        for c in &checked {
            let id = FileId::generate();
            let filename = format!("{id}.{}", c.detected.ext);
            let marker = self.tmp.join(format!("{filename}{PENDING}"));
            std::fs::File::create(&marker)?;
            markers.push(TempPath::new(marker));
            infos.push(FileInfo {
                url: format!("/api/files/download/{filename}"),
                id,
                filename,
                original_name: c.original_name.clone(),
                mime_type: c.detected.mime.to_string(),
                size: c.size,
                uploaded_by: c.user.clone(),
                created_at: now.clone(),
                removed: false,
            });
        }
        std::fs::File::open(self.tmp.as_path())?.sync_all()?;
        let mut placed: Vec<PathBuf> = Vec::new();
        let outcome = (|| -> Result<()> {
            for (c, info) in checked.iter_mut().zip(&infos) {
                let dest = self.dir.join(&info.filename);
                std::fs::rename(c.tmp.path(), &dest)?;
                c.tmp.disarm();
                placed.push(dest);
            }
            std::fs::File::open(self.dir.as_path())?.sync_all()?;
            data::insert_all(&self.store, &infos)
        })();
        if let Err(e) = outcome {
            for p in placed {
                let _ = std::fs::remove_file(p);
            }
            return Err(e);
        }
        drop(markers);
        for c in checked.iter_mut() {
            c.reservation.keep();
        }
        Ok(infos)
    }

    /// Opens a stored file for `user`, who must be allowed to read it; 404 otherwise.
    pub async fn open_for(&self, user: &UserId, filename: &str) -> Result<Download> {
        let info = self.lookup(filename)?;
        if !self.may_read(user, &info)? {
            return Err(Error::NotFound("file"));
        }
        let path = self.dir.join(&info.filename);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %info.filename, "file has metadata but is missing on disk");
                return Err(Error::NotFound("file"));
            }
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata().await?.len();
        Ok(Download { info, file, len })
    }

    /// Deletes a file: its uploader or an administrator only (403 for other parties, 404
    /// for everyone else). The metadata stays, marked removed, for the messages that
    /// carried it.
    pub async fn delete(&self, by: &UserRecord, filename: &str) -> Result<()> {
        let info = self.lookup(filename)?;
        if info.uploaded_by != by.id && by.role != Role::Admin {
            return Err(if self.may_read(&by.id, &info)? {
                Error::Forbidden("not_uploader", "only the uploader or an administrator can delete this file".into())
            } else {
                Error::NotFound("file")
            });
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            if !data::mark_removed(&this.store, info.id.as_str())? {
                return Err(Error::NotFound("file"));
            }
            if let Err(e) = std::fs::remove_file(this.dir.join(&info.filename)) {
                tracing::warn!(file = %info.filename, error = %e, "deleted file could not be removed from disk");
            }
            let mut usage = this.usage.lock().expect("usage lock");
            if let Some(used) = usage.get_mut(&info.uploaded_by) {
                *used = used.saturating_sub(info.size);
            }
            Ok(())
        })
        .await?
    }

    /// The hook chat uses to turn a `fileId` into the file, for a sender who may share it.
    pub fn resolver(&self) -> FileResolver {
        let this = self.clone();
        Arc::new(move |user: &UserId, id: &FileId| this.resolve_for_send(user, id))
    }

    fn resolve_for_send(&self, user: &UserId, id: &FileId) -> Result<FileInfo> {
        if !crate::ids::plausible_id(id.as_str()) {
            return Err(Error::NotFound("file"));
        }
        let info = data::get(&self.store, id.as_str())?.filter(|f| !f.removed).ok_or(Error::NotFound("file"))?;
        if self.may_read(user, &info)? {
            Ok(info)
        } else {
            Err(Error::NotFound("file"))
        }
    }

    /// A live file by stored name; the name is validated before anything else.
    fn lookup(&self, filename: &str) -> Result<FileInfo> {
        let (id, _) = names::parse_stored_name(filename).ok_or(Error::NotFound("file"))?;
        data::get(&self.store, id)?.filter(|f| !f.removed && f.filename == filename).ok_or(Error::NotFound("file"))
    }

    /// Uploader, a DM party or a current group member where the file was posted.
    fn may_read(&self, user: &UserId, info: &FileInfo) -> Result<bool> {
        if &info.uploaded_by == user {
            return Ok(true);
        }
        for conv in data::conversations(&self.store, info.id.as_str())? {
            let party = match crate::chat::data::parse_conv(&conv) {
                Some(crate::chat::data::Conv::Dm(a, b)) => a == user.as_str() || b == user.as_str(),
                Some(crate::chat::data::Conv::Group(g)) => self.groups.is_member(&GroupId::from(g), user),
                None => false,
            };
            if party {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Suffix of the markers of commits in progress, in `files/.tmp`.
const PENDING: &str = ".pending";

/// Takes back the commits a crash or a kill interrupted: a marker whose file has no metadata
/// means the upload was moved into place but never recorded (nor acknowledged), so its file
/// is removed. A marker whose metadata exists is just stale. [`clear_temp`] removes both.
fn finish_interrupted_commits(store: &Store, dir: &Path, tmp: &Path) -> Result<()> {
    for entry in std::fs::read_dir(tmp)? {
        let marker = entry?.file_name();
        let Some(filename) = marker.to_str().and_then(|m| m.strip_suffix(PENDING)) else { continue };
        let Some((id, _)) = names::parse_stored_name(filename) else { continue };
        if data::get(store, id)?.is_some() {
            continue;
        }
        match std::fs::remove_file(dir.join(filename)) {
            Ok(()) => tracing::info!(file = %filename, "removed an upload whose commit a crash interrupted"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %filename, error = %e, "cannot remove an upload whose commit was interrupted")
            }
        }
    }
    Ok(())
}

/// Removes whatever unfinished uploads a crash or a kill left behind.
fn clear_temp(tmp: &Path) -> Result<()> {
    let mut n = 0;
    for entry in std::fs::read_dir(tmp)? {
        let path = entry?.path();
        match std::fs::remove_file(&path) {
            Ok(()) => n += 1,
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove a leftover in files/.tmp"),
        }
    }
    if n > 0 {
        tracing::info!(count = n, "removed unfinished uploads");
    }
    Ok(())
}

/// Compares metadata with the files on disk. Mismatches are logged for the administrator,
/// never repaired by deleting data; the one exception is finishing a deletion that was
/// recorded but interrupted before the bytes were removed. Returns bytes stored per user.
fn check_consistency(store: &Store, dir: &Path) -> Result<HashMap<UserId, u64>> {
    let mut usage: HashMap<UserId, u64> = HashMap::new();
    let mut known: HashSet<String> = HashSet::new();
    for f in data::all(store)? {
        if names::parse_stored_name(&f.filename).is_none() {
            tracing::warn!(id = %f.id, filename = %f.filename, "file metadata has an invalid stored name");
            continue;
        }
        let path = dir.join(&f.filename);
        known.insert(f.filename.clone());
        if f.removed {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(file = %f.filename, "finished deleting a removed file"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %f.filename, error = %e, "removed file could not be deleted"),
            }
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == f.size => {}
            Ok(m) => {
                tracing::warn!(file = %f.filename, expected = f.size, found = m.len(), "stored file has the wrong size")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %f.filename, "file metadata has no file on disk; downloads of it answer 404")
            }
            Err(e) => tracing::warn!(file = %f.filename, error = %e, "stored file cannot be read"),
        }
        *usage.entry(f.uploaded_by).or_default() += f.size;
    }
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if name != ".tmp" && !known.contains(name.as_ref()) {
            tracing::warn!(path = %dir.join(name.as_ref()).display(), "file on disk has no metadata; left in place");
        }
    }
    Ok(usage)
}

/// `52428800` → `50 MiB`, for messages people read.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests;
