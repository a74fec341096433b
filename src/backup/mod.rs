//! Backups: one zstd-compressed tar holding a consistent export of the database, the
//! uploaded files, the certificates and the secrets, with a manifest of SHA-256 sums.
//!
//! - [`create`] runs inside the daemon while it serves: every table is dumped from one
//!   redb read transaction (a snapshot, so writers are never blocked and the export is
//!   consistent), then `files/`, `tls/` and the secret files are added.
//! - [`verify`] reads an archive end to end and checks every entry against the manifest,
//!   which is the archive's last entry (it can only be written once everything is hashed).
//! - [`restore`] works offline: it refuses while a daemon holds the database and refuses to
//!   replace existing data unless forced, verifies the archive, rebuilds the database in a
//!   staging folder next to the data and only then moves everything into place.
//!
//! Archive layout: `store/<table>.jsonl` (see [`tables`]), then paths as they are in the
//! data dir (`files/…`, `tls/…`, `jwt.key`…), then `manifest.json`.

mod restore;
mod tables;

pub use restore::restore;

use crate::error::{Error, Result};
use crate::store::Store;
use redb::TableHandle;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Version of the archive layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const MANIFEST: &str = "manifest.json";
/// A manifest bigger than this is not ours.
const MAX_MANIFEST: u64 = 64 * 1024 * 1024;

/// What an archive holds, written as its last entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    pub quickmeet_version: String,
    pub schema_version: u64,
    pub created_at: String,
    pub counts: Counts,
    /// Rows per table.
    pub tables: BTreeMap<String, u64>,
    /// Every other entry of the archive with its size and SHA-256.
    pub entries: Vec<Entry>,
}

/// Headline numbers of a backup.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub users: u64,
    pub groups: u64,
    pub messages: u64,
    pub files: u64,
}

/// One archived file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid("invalid_backup", msg.into())
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads through `inner`, hashing and counting what passes.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    size: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing { inner, hash: Sha256::new(), size: 0 }
    }
    fn finish(self) -> (u64, String) {
        (self.size, hex(self.hash.finalize()))
    }
}

/// Removes a scratch folder however the backup ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(crate::clock::unix_now());
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Writes a backup of the store's data dir to `out` and returns its manifest. Safe while
/// the daemon serves: the database part is one read transaction.
pub fn create<W: Write>(store: &Store, out: W) -> Result<Manifest> {
    let data_dir = store.data_dir();
    let scratch = Scratch(data_dir.join(format!(".backup-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir(&scratch.0)?;
    let mut manifest = Manifest {
        format: FORMAT_VERSION,
        quickmeet_version: crate::VERSION.to_string(),
        schema_version: store.schema_version()?,
        created_at: crate::clock::now_rfc3339(),
        counts: Counts::default(),
        tables: BTreeMap::new(),
        entries: Vec::new(),
    };
    // The snapshot: dump every table to scratch files first, so the read transaction is
    // not held while the archive is compressed and written to a slow reader.
    let tx = store.begin_read()?;
    for t in tx.list_tables()? {
        let name = t.name();
        if !tables::SKIPPED.contains(&name) && !tables::TABLES.iter().any(|(n, _)| *n == name) {
            return Err(Error::Internal(format!("backup does not know table {name}; add it to backup::tables")));
        }
    }
    let mut dumps = Vec::new();
    for (name, kind) in tables::TABLES {
        let path = scratch.0.join(format!("{name}.jsonl"));
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let rows = tables::dump(&tx, name, *kind, &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        manifest.tables.insert(name.to_string(), rows);
        dumps.push((format!("store/{name}.jsonl"), path));
    }
    drop(tx);
    let count = |t: &str| manifest.tables.get(t).copied().unwrap_or(0);
    manifest.counts = Counts {
        users: count("userid_user"),
        groups: count("groupid_group"),
        messages: count("seq_message"),
        files: count("fileid_file"),
    };

    let mut sources: Vec<(String, PathBuf, u32)> = dumps.into_iter().map(|(a, p)| (a, p, 0o600)).collect();
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ft = entry.file_type()?;
        if ft.is_file() && name != "quickmeet.redb" && !name.ends_with(".tmp") {
            sources.push((name, entry.path(), 0o600));
        } else if ft.is_dir() && (name == "files" || name == "tls") {
            walk(&entry.path(), &name, &mut sources)?;
        }
    }

    let enc = zstd::stream::write::Encoder::new(out, 3)?;
    let mut tar = tar::Builder::new(enc);
    for (archived, path, mode) in sources {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            // Deleted since we listed it (a file removed while the backup runs).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let meta = file.metadata()?;
        let mut reader = Hashing::new(file.take(meta.len()));
        tar.append_data(&mut header(meta.len(), mode), &archived, &mut reader)?;
        let (size, sha256) = reader.finish();
        manifest.entries.push(Entry { path: archived, size, sha256 });
    }
    let json = serde_json::to_vec_pretty(&manifest)?;
    tar.append_data(&mut header(json.len() as u64, 0o644), MANIFEST, json.as_slice())?;
    let mut out = tar.into_inner()?.finish()?;
    out.flush()?;
    Ok(manifest)
}

/// Lists regular files under `dir` as archive paths under `prefix`, skipping the upload
/// staging folder (`files/.tmp`), whose half-written files belong to no message.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf, u32)>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let archived = format!("{prefix}/{name}");
        let ft = entry.file_type()?;
        if ft.is_dir() && archived != "files/.tmp" {
            walk(&entry.path(), &archived, out)?;
        } else if ft.is_file() && !name.ends_with(".tmp") {
            let mode = entry.metadata()?.permissions().mode() & 0o777;
            out.push((archived, entry.path(), mode));
        }
    }
    Ok(())
}

/// Checks that an archive path is relative and stays inside the folder it unpacks into.
fn safe_path(p: &Path) -> Result<()> {
    use std::path::Component;
    if p.as_os_str().is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(invalid(format!("the archive holds an unsafe path {}", p.display())));
    }
    Ok(())
}

/// Goes through an archive calling `each(path, entry)` for every entry but the manifest,
/// and checks every entry against the manifest at the end. `each` must read the entry
/// to its end (it is hashed as it is read).
fn walk_archive<R: Read>(input: R, mut each: impl FnMut(&Path, u32, &mut dyn Read) -> Result<()>) -> Result<Manifest> {
    let dec = zstd::stream::read::Decoder::new(input)?;
    let mut archive = tar::Archive::new(dec);
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let broken = |e: std::io::Error| invalid(format!("the archive is damaged or truncated: {e}"));
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let path = entry.path().map_err(broken)?.into_owned();
        safe_path(&path)?;
        let key = path.to_string_lossy().into_owned();
        if manifest.is_some() {
            return Err(invalid(format!("{key} comes after the manifest")));
        }
        if key == MANIFEST {
            if entry.size() > MAX_MANIFEST {
                return Err(invalid("the manifest is too large"));
            }
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(broken)?;
            manifest = Some(serde_json::from_slice(&buf).map_err(|e| invalid(format!("bad manifest: {e}")))?);
            continue;
        }
        let mode = entry.header().mode().unwrap_or(0o600);
        let mut reader = Hashing::new(&mut entry);
        each(&path, mode, &mut reader)?;
        std::io::copy(&mut reader, &mut std::io::sink()).map_err(broken)?;
        if seen.insert(key.clone(), reader.finish()).is_some() {
            return Err(invalid(format!("{key} appears twice")));
        }
    }
    let m = manifest.ok_or_else(|| invalid("the archive has no manifest (truncated, or not a Quick Meet backup)"))?;
    if m.format > FORMAT_VERSION {
        return Err(invalid(format!(
            "backup format {} is newer than this quickmeet understands ({FORMAT_VERSION}); upgrade quickmeet",
            m.format
        )));
    }
    if seen.len() != m.entries.len() {
        return Err(invalid(format!("the manifest lists {} files, the archive holds {}", m.entries.len(), seen.len())));
    }
    for e in &m.entries {
        match seen.get(&e.path) {
            Some((size, sum)) if *size == e.size && *sum == e.sha256 => {}
            Some(_) => return Err(invalid(format!("{} does not match its checksum", e.path))),
            None => return Err(invalid(format!("{} is missing from the archive", e.path))),
        }
    }
    Ok(m)
}

/// Checks an archive end to end without restoring anything: readable, complete, and
/// every file matching its SHA-256 in the manifest.
pub fn verify<R: Read>(input: R) -> Result<Manifest> {
    walk_archive(input, |_, _, _| Ok(()))
}

#[cfg(test)]
mod tests;
