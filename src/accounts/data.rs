//! Storage of accounts: `userid_user` holds each record as JSON; `username_userid` maps the
//! lower-cased username to the id, which is what makes names unique regardless of case.

use super::UserRecord;
use crate::error::{Error, Result};
use crate::store::{from_cell, to_cell, Store};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

pub(crate) const USERID_USER: TableDefinition<&str, &[u8]> = TableDefinition::new("userid_user");
pub(crate) const USERNAME_USERID: TableDefinition<&str, &str> = TableDefinition::new("username_userid");

/// Every account, for the in-memory index built at start.
pub fn load_all(store: &Store) -> Result<Vec<UserRecord>> {
    let tx = store.begin_read()?;
    let t = tx.open_table(USERID_USER)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(from_cell(row?.1.value())?);
    }
    Ok(out)
}

/// Inserts a new account unless its name is taken (case-insensitively). The first account
/// ever stored becomes an admin; deciding that inside the write transaction makes two
/// simultaneous first signups safe.
pub fn insert_new(store: &Store, mut rec: UserRecord) -> Result<UserRecord> {
    let tx = store.begin_write()?;
    {
        let mut names = tx.open_table(USERNAME_USERID)?;
        let key = rec.username.to_lowercase();
        if names.get(key.as_str())?.is_some() {
            return Err(Error::Conflict("username_taken", format!("the username {} is already taken", rec.username)));
        }
        let mut users = tx.open_table(USERID_USER)?;
        if users.len()? == 0 {
            rec.role = super::Role::Admin;
        }
        names.insert(key.as_str(), rec.id.as_str())?;
        users.insert(rec.id.as_str(), to_cell(&rec)?.as_slice())?;
    }
    tx.commit()?;
    Ok(rec)
}

/// Overwrites an existing account record.
pub fn update(store: &Store, rec: &UserRecord) -> Result<()> {
    let tx = store.begin_write()?;
    {
        let mut users = tx.open_table(USERID_USER)?;
        if users.get(rec.id.as_str())?.is_none() {
            return Err(Error::NotFound("user"));
        }
        users.insert(rec.id.as_str(), to_cell(rec)?.as_slice())?;
    }
    tx.commit()?;
    Ok(())
}
