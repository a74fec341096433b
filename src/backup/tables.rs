//! The portable form of the database: every table as JSON lines `[key, value]`, one file
//! per table. Keys and values keep their natural JSON shape (strings, numbers, arrays for
//! tuple keys); byte cells, which are JSON documents themselves, are base64 so that they
//! come back byte for byte. The list below must name every table the store has: a backup
//! refuses to run rather than silently leave a table out (a unit test keeps it honest).

use crate::error::{Error, Result};
use base64::Engine;
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde_json::{json, Value};
use std::io::{BufRead, Write};

/// The key and value types of a table.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    StrBytes,
    StrStr,
    StrU64,
    U64Bytes,
    StrU64ToStr,
    StrStrToU64,
    U64ToStrStr,
    U64U64ToBytes,
}

/// Every table of the current schema and its kind. `meta_u64` is left out on purpose: the
/// schema version travels in the manifest and a restore writes its own.
pub(crate) const TABLES: &[(&str, Kind)] = &[
    ("userid_user", Kind::StrBytes),
    ("username_userid", Kind::StrStr),
    ("jti_expiry", Kind::StrU64),
    ("groupid_group", Kind::StrBytes),
    ("seq_message", Kind::U64Bytes),
    ("messageid_seq", Kind::StrU64),
    ("name_secret", Kind::StrU64),
    ("convno_seq_sender", Kind::U64U64ToBytes),
    ("conv_number", Kind::StrU64),
    ("clientid_sender_seq", Kind::StrStrToU64),
    ("sender_clientid_seq", Kind::StrStrToU64),
    ("user_peer_lastseq", Kind::StrStrToU64),
    ("reader_conv_readseq", Kind::StrStrToU64),
    ("fileid_file", Kind::StrBytes),
    ("fileid_conv_seq", Kind::StrStrToU64),
    ("chat_mark", Kind::StrU64),
];

/// Tables of older schemas a restore still reads from their backups, each with the schema
/// that dropped it; the restore then brings them to the current schema (see `restore`).
/// A backup of that schema or later that has one is refused.
pub(crate) const LEGACY: &[(&str, Kind, u64)] = &[
    ("recent_seq_conv_sender", Kind::U64ToStrStr, 5),
    ("merging_seq_conv_sender", Kind::U64ToStrStr, 5),
    ("conv_seq_sender", Kind::StrU64ToStr, 6),
];

/// Tables that exist but are not data.
pub(crate) const SKIPPED: &[&str] = &["meta_u64"];

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn line(out: &mut impl Write, v: Value) -> Result<()> {
    serde_json::to_writer(&mut *out, &v)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes every row of table `name` as JSON lines; returns the row count.
pub(crate) fn dump(tx: &ReadTransaction, name: &str, kind: Kind, out: &mut impl Write) -> Result<u64> {
    let mut n = 0u64;
    macro_rules! rows {
        ($k:ty, $v:ty, |$key:ident, $val:ident| $json:expr) => {{
            let t = tx.open_table(TableDefinition::<$k, $v>::new(name))?;
            for row in t.iter()? {
                let (k, v) = row?;
                let ($key, $val) = (k.value(), v.value());
                line(out, $json)?;
                n += 1;
            }
        }};
    }
    match kind {
        Kind::StrBytes => rows!(&str, &[u8], |k, v| json!([k, b64(v)])),
        Kind::StrStr => rows!(&str, &str, |k, v| json!([k, v])),
        Kind::StrU64 => rows!(&str, u64, |k, v| json!([k, v])),
        Kind::U64Bytes => rows!(u64, &[u8], |k, v| json!([k, b64(v)])),
        Kind::StrU64ToStr => rows!((&str, u64), &str, |k, v| json!([[k.0, k.1], v])),
        Kind::StrStrToU64 => rows!((&str, &str), u64, |k, v| json!([[k.0, k.1], v])),
        Kind::U64ToStrStr => rows!(u64, (&str, &str), |k, v| json!([k, [v.0, v.1]])),
        Kind::U64U64ToBytes => rows!((u64, u64), &[u8], |k, v| json!([[k.0, k.1], b64(v)])),
    }
    Ok(n)
}

fn bad(table: &str, n: u64) -> Error {
    Error::Invalid("invalid_backup", format!("row {n} of table {table} in the backup is malformed"))
}

/// Reads JSON lines written by [`dump`] into table `name`; returns the row count.
pub(crate) fn load(tx: &WriteTransaction, name: &str, kind: Kind, input: impl BufRead) -> Result<u64> {
    let mut n = 0u64;
    let s = |v: &Value| v.as_str().map(str::to_string);
    let u = |v: &Value| v.as_u64();
    let bytes = |v: &Value| v.as_str().and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
    // Each arm parses one row into owned values (None: malformed) and inserts it.
    macro_rules! rows {
        ($k:ty, $v:ty, |$t:ident, $key:ident, $val:ident| $body:expr) => {{
            let mut $t = tx.open_table(TableDefinition::<$k, $v>::new(name))?;
            for l in input.lines() {
                let l = l?;
                if l.is_empty() {
                    continue;
                }
                n += 1;
                let row: Value = serde_json::from_str(&l).map_err(|_| bad(name, n))?;
                let ($key, $val) = (&row[0], &row[1]);
                let inserted: bool = $body;
                if !inserted {
                    return Err(bad(name, n));
                }
            }
        }};
    }
    match kind {
        Kind::StrBytes => rows!(&str, &[u8], |t, k, v| match (s(k), bytes(v)) {
            (Some(k), Some(v)) => t.insert(k.as_str(), v.as_slice()).map(|_| true)?,
            _ => false,
        }),
        Kind::StrStr => rows!(&str, &str, |t, k, v| match (s(k), s(v)) {
            (Some(k), Some(v)) => t.insert(k.as_str(), v.as_str()).map(|_| true)?,
            _ => false,
        }),
        Kind::StrU64 => rows!(&str, u64, |t, k, v| match (s(k), u(v)) {
            (Some(k), Some(v)) => t.insert(k.as_str(), v).map(|_| true)?,
            _ => false,
        }),
        Kind::U64Bytes => rows!(u64, &[u8], |t, k, v| match (u(k), bytes(v)) {
            (Some(k), Some(v)) => t.insert(k, v.as_slice()).map(|_| true)?,
            _ => false,
        }),
        Kind::StrU64ToStr => rows!((&str, u64), &str, |t, k, v| match (s(&k[0]), u(&k[1]), s(v)) {
            (Some(a), Some(b), Some(v)) => t.insert((a.as_str(), b), v.as_str()).map(|_| true)?,
            _ => false,
        }),
        Kind::StrStrToU64 => rows!((&str, &str), u64, |t, k, v| match (s(&k[0]), s(&k[1]), u(v)) {
            (Some(a), Some(b), Some(v)) => t.insert((a.as_str(), b.as_str()), v).map(|_| true)?,
            _ => false,
        }),
        Kind::U64ToStrStr => rows!(u64, (&str, &str), |t, k, v| match (u(k), s(&v[0]), s(&v[1])) {
            (Some(k), Some(a), Some(b)) => t.insert(k, (a.as_str(), b.as_str())).map(|_| true)?,
            _ => false,
        }),
        Kind::U64U64ToBytes => rows!((u64, u64), &[u8], |t, k, v| match (u(&k[0]), u(&k[1]), bytes(v)) {
            (Some(a), Some(b), Some(v)) => t.insert((a, b), v.as_slice()).map(|_| true)?,
            _ => false,
        }),
    }
    Ok(n)
}
