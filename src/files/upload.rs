//! An upload in progress. Bytes go straight to a temp file under `files/.tmp/` as they
//! arrive, never into memory; the size limit and the uploader's quota are checked on every
//! chunk so an oversized upload is refused the moment it crosses the line. Until the
//! files service commits it, an upload is only a temp file guarded by [`TempPath`] and a
//! quota [`Reservation`]: dropping it (a refused type, a client that went away, a later
//! part of the same request that failed) removes the file and gives the bytes back.

use super::detect::{self, Detected};
use super::{human_bytes, Files};
use crate::error::{Error, Result};
use crate::ids::UserId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

/// A temp file that is deleted when dropped, unless [`TempPath::disarm`]ed.
pub(crate) struct TempPath(Option<PathBuf>);

impl TempPath {
    pub(crate) fn new(path: PathBuf) -> TempPath {
        TempPath(Some(path))
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.as_deref().expect("temp path used after disarm")
    }

    /// The file was moved into place: nothing to clean up.
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = std::fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %p.display(), error = %e, "could not remove an unfinished upload");
                }
            }
        }
    }
}

/// Bytes per user: stored files plus uploads in flight.
pub(crate) type Usage = Arc<Mutex<HashMap<UserId, u64>>>;

/// Bytes of a user's quota held by an upload; given back on drop unless kept.
pub(crate) struct Reservation {
    usage: Usage,
    user: UserId,
    quota: u64,
    bytes: u64,
}

impl Reservation {
    pub(crate) fn new(usage: Usage, user: UserId, quota: u64) -> Reservation {
        Reservation { usage, user, quota, bytes: 0 }
    }

    /// Holds `n` more bytes, or refuses when the quota would be exceeded.
    fn grow(&mut self, n: u64) -> Result<()> {
        let mut usage = self.usage.lock().expect("usage lock");
        let used = usage.entry(self.user.clone()).or_default();
        if *used + n > self.quota {
            let before = used.saturating_sub(self.bytes);
            return Err(Error::TooLarge(
                "quota_exceeded",
                format!(
                    "this upload would exceed your storage quota of {} ({} already used); delete files you no longer need",
                    human_bytes(self.quota),
                    human_bytes(before)
                ),
            ));
        }
        *used += n;
        self.bytes += n;
        Ok(())
    }

    /// The file is stored: its bytes stay counted.
    pub(crate) fn keep(&mut self) {
        self.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut usage = self.usage.lock().expect("usage lock");
            if let Some(used) = usage.get_mut(&self.user) {
                *used = used.saturating_sub(self.bytes);
            }
        }
    }
}

/// Bytes gathered before they go to the temp file. Body chunks arrive a TLS record
/// (≤ 16 KiB) at a time and every file write is a trip to a blocking thread; writing 1 MiB
/// at a time keeps that overhead off the upload's throughput for 1 MiB of memory.
pub(crate) const WRITE_CHUNK: usize = 1024 * 1024;

/// Every this many bytes received, the kernel is asked to start writing what has reached
/// the file (`sync_file_range`, without waiting). The disk then writes while the rest of
/// the upload arrives, and the `fsync` that ends the upload only waits for the tail
/// instead of the whole file.
pub(crate) const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

/// Starts writeback of `len` bytes of `file` from `offset`, without waiting for it. Only a
/// head start: the final `fsync` is what makes the bytes durable, so a failure is ignored.
async fn start_writeback(file: &tokio::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // Off the runtime: queueing the writes can block while the disk's queue is full.
    let _ = tokio::task::spawn_blocking(move || {
        // SAFETY: plain integers; `fd` stays open because the caller holds `file` across
        // this await.
        unsafe { libc::sync_file_range(fd, offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE) }
    })
    .await;
}

/// A file being received.
pub struct Upload {
    pub(crate) files: Files,
    pub(crate) user: UserId,
    pub(crate) original_name: String,
    pub(crate) file: tokio::io::BufWriter<tokio::fs::File>,
    pub(crate) tmp: TempPath,
    pub(crate) size: u64,
    /// Where the last [`start_writeback`] ended.
    pub(crate) written_back: u64,
    pub(crate) reservation: Reservation,
}

impl Upload {
    /// Appends a chunk; refuses (413) as soon as the file or the quota limit is crossed.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let n = chunk.len() as u64;
        let max = self.files.max_upload();
        if self.size + n > max {
            return Err(Error::TooLarge("file_too_large", format!("files are limited to {} each", human_bytes(max))));
        }
        self.reservation.grow(n)?;
        self.file.write_all(chunk).await?;
        self.size += n;
        let in_file = self.size - self.file.buffer().len() as u64;
        if in_file - self.written_back >= WRITEBACK_EVERY {
            // The file's last write may still be under way on a blocking thread; starting
            // one buffer back covers it next time round.
            let from = self.written_back.saturating_sub(WRITE_CHUNK as u64);
            start_writeback(self.file.get_ref(), from, in_file - from).await;
            self.written_back = in_file;
        }
        Ok(())
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Ends the upload: makes the bytes durable and decides the type from them.
    pub async fn check(mut self) -> Result<Checked> {
        self.file.flush().await?;
        self.file.get_ref().sync_all().await?;
        let path = self.tmp.path().to_path_buf();
        let detected = tokio::task::spawn_blocking(move || -> Result<Detected> {
            let mut f = std::fs::File::open(&path)?;
            detect::detect(&mut f)
        })
        .await??;
        let Upload { user, original_name, tmp, size, reservation, .. } = self;
        Ok(Checked { user, original_name, tmp, size, reservation, detected })
    }
}

/// A complete upload of an allowed type, still in its temp file until committed.
pub struct Checked {
    pub(crate) user: UserId,
    pub(crate) original_name: String,
    pub(crate) tmp: TempPath,
    pub(crate) size: u64,
    pub(crate) reservation: Reservation,
    pub(crate) detected: Detected,
}

impl Checked {
    /// The type decided from the content.
    pub fn detected(&self) -> Detected {
        self.detected
    }
}
