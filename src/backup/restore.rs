//! Offline restore into a data dir. Nothing in the data dir changes until the whole
//! archive has been verified and unpacked into a staging folder beside it; then each
//! piece is moved into place with a rename.

use super::{invalid, tables, walk_archive, Manifest};
use crate::error::{Error, Result};
use crate::store::Store;
use std::io::BufReader;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What a data dir holds that a restore replaces.
const REPLACED: &[&str] = &["quickmeet.redb", "files", "tls"];

/// Restores `archive` into `data_dir` (created if missing). Refuses while a process holds
/// the database, and refuses to replace existing data unless `force`.
pub fn restore(archive: &Path, data_dir: &Path, force: bool) -> Result<Manifest> {
    let open = || {
        std::fs::File::open(archive)
            .map_err(|e| Error::Invalid("invalid_backup", format!("cannot open {}: {e}", archive.display())))
    };
    let manifest = super::verify(BufReader::new(open()?))?;
    if manifest.schema_version > crate::store::SCHEMA_VERSION {
        return Err(invalid(format!(
            "the backup has database schema {}, newer than this quickmeet ({}); upgrade quickmeet",
            manifest.schema_version,
            crate::store::SCHEMA_VERSION
        )));
    }
    std::fs::create_dir_all(data_dir)?;
    let db = data_dir.join("quickmeet.redb");
    if db.exists() {
        // Any other failure to open is fine: a damaged database is what a restore is for.
        if let Err(redb::DatabaseError::DatabaseAlreadyOpen) = redb::Database::open(&db) {
            return Err(Error::Unavailable(format!(
                "{} is in use (is quickmeetd running?); stop it first, e.g. systemctl stop quickmeetd",
                db.display()
            )));
        }
    }
    let has_data = db.exists() || std::fs::read_dir(data_dir.join("files")).is_ok_and(|mut d| d.next().is_some());
    if has_data && !force {
        return Err(Error::Conflict(
            "data_exists",
            format!("{} already holds data; add --force to replace it with the backup", data_dir.display()),
        ));
    }

    let staging = data_dir.join(format!(".restore-{}", uuid::Uuid::new_v4()));
    let _cleanup = super::Scratch(staging.clone());
    std::fs::create_dir(&staging)?;
    let store = Store::open(&staging)?;
    let tx = store.begin_write()?;
    let mut top_level = Vec::new();
    let unpacked = walk_archive(BufReader::new(open()?), |path, mode, reader| {
        let key = path.to_string_lossy();
        if let Some(table) = key.strip_prefix("store/").and_then(|t| t.strip_suffix(".jsonl")) {
            let (name, kind) = match tables::TABLES.iter().find(|(n, _)| *n == table) {
                Some(&(name, kind)) => (name, kind),
                None => match tables::LEGACY.iter().find(|(n, _, _)| *n == table) {
                    Some(&(name, kind, dropped)) if manifest.schema_version < dropped => (name, kind),
                    Some(&(_, _, dropped)) => {
                        // Loaded, it would stay: nothing upgrades a current schema.
                        return Err(invalid(format!(
                            "the backup is of database schema {} but has the table {table}, which schema {dropped} \
                             dropped",
                            manifest.schema_version
                        )));
                    }
                    None => {
                        return Err(invalid(format!("the backup has a table this quickmeet does not know: {table}")))
                    }
                },
            };
            tables::load(&tx, name, kind, BufReader::new(reader))?;
            return Ok(());
        }
        let first = path.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
        if let Some(first) = first.filter(|f| !top_level.contains(f)) {
            top_level.push(first);
        }
        let dest = staging.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode & 0o777).open(&dest)?;
        std::io::copy(reader, &mut f)?;
        f.sync_all()?;
        Ok(())
    })?;
    if unpacked != manifest {
        return Err(invalid("the archive changed while it was being restored"));
    }
    if manifest.schema_version < 6 {
        // Its per-conversation index is keyed by conversation key.
        crate::chat::data::renumber(&tx)?;
    }
    if manifest.schema_version < 5 {
        // Its unmerged messages are in schema 4's tables, and it has no merged mark.
        crate::chat::data::fold_legacy(&tx)?;
    }
    tx.commit()?;
    drop(store);

    // Everything is staged: swap it in.
    let mut names: Vec<String> = REPLACED.iter().map(|s| s.to_string()).collect();
    names.extend(top_level.into_iter().filter(|n| !REPLACED.contains(&n.as_str())));
    for name in names {
        let target = data_dir.join(&name);
        if let Ok(meta) = std::fs::symlink_metadata(&target) {
            if meta.is_dir() {
                std::fs::remove_dir_all(&target)?;
            } else {
                std::fs::remove_file(&target)?;
            }
        }
        let from = staging.join(&name);
        if from.exists() {
            std::fs::rename(&from, &target)?;
        }
    }
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(manifest)
}
