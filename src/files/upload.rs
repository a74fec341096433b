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

type Written = (std::fs::File, Vec<u8>, std::io::Result<()>);

/// The temp file and the bytes gathered for its next write. A full buffer goes to a
/// blocking thread while the next one fills, and comes back empty to be filled again, so
/// bytes are copied once (tokio's `File` copies each write into a buffer of its own
/// first) and the network and the file are busy at the same time.
pub(crate) struct TempWriter {
    /// The file, when no write is under way; `None` while one is, or after one failed.
    file: Option<std::fs::File>,
    /// The write under way: it hands back the file and its emptied buffer.
    pending: Option<tokio::task::JoinHandle<Written>>,
    buf: Vec<u8>,
    /// Bytes handed to the file, not counting `buf`.
    in_file: u64,
    /// Where the last writeback request ended.
    pub(crate) written_back: u64,
}

impl TempWriter {
    pub(crate) fn new(file: std::fs::File) -> TempWriter {
        TempWriter {
            file: Some(file),
            pending: None,
            buf: Vec::with_capacity(WRITE_CHUNK),
            in_file: 0,
            written_back: 0,
        }
    }

    async fn write(&mut self, mut chunk: &[u8]) -> Result<()> {
        while !chunk.is_empty() {
            let n = (WRITE_CHUNK - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.buf.len() == WRITE_CHUNK {
                self.drain().await?;
            }
        }
        Ok(())
    }

    /// Waits for the write under way, if any, and takes the file and spare buffer back.
    async fn settle(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(pending) = self.pending.take() else { return Ok(None) };
        let (file, mut spare, written) =
            pending.await.map_err(|e| Error::Internal(format!("upload write task failed: {e}")))?;
        written?;
        spare.clear();
        self.file = Some(file);
        Ok(Some(spare))
    }

    fn file(&mut self) -> Result<std::fs::File> {
        self.file.take().ok_or_else(|| Error::Internal("upload file gone after a failed write".into()))
    }

    /// Hands the buffer to a blocking thread to write, after the write before it, and every
    /// [`WRITEBACK_EVERY`] bytes asks the kernel to start writing them to the disk. That
    /// request is only a head start (the final `fsync` makes the bytes durable), so its
    /// failure is ignored.
    async fn drain(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let spare = self.settle().await?.unwrap_or_else(|| Vec::with_capacity(WRITE_CHUNK));
        let mut file = self.file()?;
        let buf = std::mem::replace(&mut self.buf, spare);
        let end = self.in_file + buf.len() as u64;
        let from = self.written_back;
        let kick = end - from >= WRITEBACK_EVERY;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            use std::os::fd::AsRawFd as _;
            let written = file.write_all(&buf);
            if written.is_ok() && kick {
                // SAFETY: plain integers on a descriptor `file` keeps open.
                unsafe {
                    libc::sync_file_range(
                        file.as_raw_fd(),
                        from as i64,
                        (end - from) as i64,
                        libc::SYNC_FILE_RANGE_WRITE,
                    )
                };
            }
            (file, buf, written)
        }));
        self.in_file = end;
        if kick {
            self.written_back = end;
        }
        Ok(())
    }

    /// Writes what is left and makes the whole file durable.
    async fn finish(&mut self) -> Result<()> {
        self.drain().await?;
        self.settle().await?;
        let file = self.file()?;
        let (file, synced) = tokio::task::spawn_blocking(move || {
            let synced = file.sync_all();
            (file, synced)
        })
        .await
        .map_err(|e| Error::Internal(format!("upload sync task failed: {e}")))?;
        synced?;
        self.file = Some(file);
        Ok(())
    }
}

/// A file being received.
pub struct Upload {
    pub(crate) files: Files,
    pub(crate) user: UserId,
    pub(crate) original_name: String,
    pub(crate) file: TempWriter,
    pub(crate) tmp: TempPath,
    pub(crate) size: u64,
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
        self.file.write(chunk).await?;
        self.size += n;
        Ok(())
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Ends the upload: makes the bytes durable and decides the type from them.
    pub async fn check(mut self) -> Result<Checked> {
        self.file.finish().await?;
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
