//! File storage: the bytes live in `<data-dir>/files/<uuid>.<ext>`, the metadata in redb:
//!
//! - `fileid_file`: file id → [`FileInfo`] JSON. A deleted file keeps its row with
//!   `removed: true`, so messages that carried it can say so instead of breaking;
//! - `fileid_conv_seq`: (file id, conversation) → seq of the latest message carrying the
//!   file there. Written by the chat writer in the same transaction as the message, it is
//!   what lets a DM party or group member download a file they were sent.

use super::FileInfo;
use crate::error::Result;
use crate::store::{from_cell, to_cell, Store};
use redb::{ReadOnlyTable, ReadableTable, TableDefinition, WriteTransaction};

pub(crate) const FILEID_FILE: TableDefinition<&str, &[u8]> = TableDefinition::new("fileid_file");
pub(crate) const FILEID_CONV_SEQ: TableDefinition<(&str, &str), u64> = TableDefinition::new("fileid_conv_seq");

/// One file's metadata, removed or not.
pub fn get(store: &Store, id: &str) -> Result<Option<FileInfo>> {
    let tx = store.begin_read()?;
    let t = tx.open_table(FILEID_FILE)?;
    let cell = t.get(id)?;
    cell.map(|c| from_cell(c.value())).transpose()
}

/// Every file's metadata, for the start-up check and the quota totals.
pub fn all(store: &Store) -> Result<Vec<FileInfo>> {
    let tx = store.begin_read()?;
    let t = tx.open_table(FILEID_FILE)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (_, v) = row?;
        out.push(from_cell(v.value())?);
    }
    Ok(out)
}

/// Stores new files in one durable transaction.
pub fn insert_all(store: &Store, files: &[FileInfo]) -> Result<()> {
    let tx = store.begin_write()?;
    {
        let mut t = tx.open_table(FILEID_FILE)?;
        for f in files {
            t.insert(f.id.as_str(), to_cell(f)?.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Marks a file removed. Returns false when it was already removed (or never existed).
pub fn mark_removed(store: &Store, id: &str) -> Result<bool> {
    let tx = store.begin_write()?;
    let changed = {
        let mut t = tx.open_table(FILEID_FILE)?;
        let current: Option<FileInfo> = t.get(id)?.map(|c| from_cell(c.value())).transpose()?;
        match current {
            Some(mut f) if !f.removed => {
                f.removed = true;
                t.insert(id, to_cell(&f)?.as_slice())?;
                true
            }
            _ => false,
        }
    };
    tx.commit()?;
    Ok(changed)
}

/// The conversations (chat conversation keys) where the file was posted.
pub fn conversations(store: &Store, id: &str) -> Result<Vec<String>> {
    let tx = store.begin_read()?;
    let t = tx.open_table(FILEID_CONV_SEQ)?;
    let mut out = Vec::new();
    for row in t.range((id, "")..)? {
        let (k, _) = row?;
        let (f, conv) = k.value();
        if f != id {
            break;
        }
        out.push(conv.to_string());
    }
    Ok(out)
}

/// Records, inside the chat writer's transaction, that a message in `conv` carries `id`.
pub(crate) fn record_posted(tx: &WriteTransaction, id: &str, conv: &str, seq: u64) -> Result<()> {
    tx.open_table(FILEID_CONV_SEQ)?.insert((id, conv), seq)?;
    Ok(())
}

/// Whether a file was removed, for messages loaded in an open read transaction.
pub(crate) fn is_removed(t: &ReadOnlyTable<&str, &[u8]>, id: &str) -> Result<bool> {
    Ok(match t.get(id)? {
        Some(c) => from_cell::<FileInfo>(c.value())?.removed,
        None => true,
    })
}
