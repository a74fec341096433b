//! Message storage. A global sequence number orders every message; tables:
//!
//! - `seq_message`: seq → message JSON;
//! - `messageid_seq`: message id → seq, for `before` and `since` cursors, written up to
//!   schema 3. A message since carries its seq in its id instead (see [`IdCodec`]), so
//!   appends skip this index: one B-tree insert less per message;
//! - `name_secret`: the key that hides seqs in message ids (`message_ids`);
//! - `conv_seq_sender`: (conversation, seq) → sender id: one index per DM pair or group,
//!   enough to page history and count unread without loading message bodies;
//! - `recent_seq_conv_sender`: seq → (conversation, sender) of the newest messages, not yet
//!   merged into `conv_seq_sender` and `user_peer_lastseq` (see below);
//! - `clientid_sender_seq`: (clientId, sender) → seq, the idempotency index. ClientId
//!   first: clients make time-ordered keys (the web client's are UUIDv7s), so a batch's
//!   keys land together at the end of the table instead of on a page per sender;
//! - `sender_clientid_seq`: the same index as schema 2 kept it, (sender, clientId) → seq;
//!   read, never written, so that older messages stay idempotent without a migration
//!   rewriting them;
//! - `user_peer_lastseq`: (user, peer) → last seq of their DM, listing a user's DMs;
//! - `reader_conv_readseq`: (reader, conversation) → the seq read up to.
//!
//! Why `recent_seq_conv_sender`: a batch of messages spread over many conversations would
//! dirty one leaf page per conversation in the per-conversation indexes, and every commit
//! copies and fsyncs each dirty page. So a batch only appends to the sequential `recent`
//! table. Once it holds [`MERGE_AT`] entries it is renamed `merging_seq_conv_sender` and a
//! fresh `recent` table starts; the writer then moves the merging entries into the indexes
//! in conversation order, a slice along with each following batch, so each conversation's
//! leaf is written about once per merge, no batch carries a whole merge, and the table is
//! dropped when the last slice is in. Readers see all three through one [`Snapshot`],
//! counting an entry found both in an index and in `merging` once.

use super::{Draft, Message, Target};
use crate::error::{Error, Result};
use crate::ids::{MessageId, UserId};
use crate::store::{from_cell, to_cell, ReadTx, Store};
use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction};
use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) const SEQ_MESSAGE: TableDefinition<u64, &[u8]> = TableDefinition::new("seq_message");
pub(crate) const MESSAGEID_SEQ: TableDefinition<&str, u64> = TableDefinition::new("messageid_seq");
pub(crate) const NAME_SECRET: TableDefinition<&str, u64> = TableDefinition::new("name_secret");
pub(crate) const CONV_SEQ_SENDER: TableDefinition<(&str, u64), &str> = TableDefinition::new("conv_seq_sender");
pub(crate) const CLIENTID_SENDER_SEQ: TableDefinition<(&str, &str), u64> = TableDefinition::new("clientid_sender_seq");
pub(crate) const SENDER_CLIENTID_SEQ: TableDefinition<(&str, &str), u64> = TableDefinition::new("sender_clientid_seq");
pub(crate) const USER_PEER_LASTSEQ: TableDefinition<(&str, &str), u64> = TableDefinition::new("user_peer_lastseq");
pub(crate) const READER_CONV_READSEQ: TableDefinition<(&str, &str), u64> = TableDefinition::new("reader_conv_readseq");
pub(crate) const RECENT_SEQ_CONV_SENDER: TableDefinition<u64, (&str, &str)> =
    TableDefinition::new("recent_seq_conv_sender");
pub(crate) const MERGING_SEQ_CONV_SENDER: TableDefinition<u64, (&str, &str)> =
    TableDefinition::new("merging_seq_conv_sender");

/// Recent entries that start a merge into the per-conversation indexes. Small in unit
/// tests, so that every chat test runs across merges.
pub(crate) const MERGE_AT: u64 = if cfg!(test) { 7 } else { 2048 };
/// Fewest entries merged along with each batch while a merge is under way (at least twice
/// the batch's own appends are merged, so a merge always ends before the next is due).
const MERGE_SLICE: usize = if cfg!(test) { 3 } else { 256 };

/// The conversation key of a DM pair (order-independent) or a group.
pub fn conv_key(target: &Target, from: &UserId) -> String {
    match target {
        Target::User(to) => dm_key(from, to),
        Target::Group(g) => format!("g:{g}"),
    }
}

/// The conversation key of the DM between `a` and `b`.
pub fn dm_key(a: &UserId, b: &UserId) -> String {
    if a <= b {
        format!("d:{a}:{b}")
    } else {
        format!("d:{b}:{a}")
    }
}

/// A conversation key taken apart: a DM pair or a group.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Conv<'a> {
    Dm(&'a str, &'a str),
    Group(&'a str),
}

/// The parts of a key made by [`dm_key`] or [`conv_key`].
pub(crate) fn parse_conv(key: &str) -> Option<Conv<'_>> {
    if let Some(pair) = key.strip_prefix("d:") {
        let (a, b) = pair.split_once(':')?;
        return Some(Conv::Dm(a, b));
    }
    key.strip_prefix("g:").map(Conv::Group)
}

/// A merge under way: the merging entries as (conversation, seq, sender), sorted, and how
/// many of them are in the indexes already.
#[derive(Debug, Default)]
pub(crate) struct Merge {
    rows: Vec<(String, u64, String)>,
    done: usize,
}

/// Where the message writer stands: the last sequence number in use, how many appends wait
/// in the recent table, and the merge under way, if any.
#[derive(Debug)]
pub(crate) struct Position {
    pub last_seq: u64,
    pub unmerged: u64,
    pub merge: Option<Merge>,
}

fn sorted_rows(t: &impl ReadableTable<u64, (&'static str, &'static str)>) -> Result<Vec<(String, u64, String)>> {
    let mut rows = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        let (conv, sender) = v.value();
        rows.push((conv.to_string(), k.value(), sender.to_string()));
    }
    rows.sort_unstable();
    Ok(rows)
}

impl Position {
    /// Reads the writer's position from the database (at start, and after a failed commit).
    /// A merge a restart interrupted starts over: inserting an entry twice changes nothing.
    pub(crate) fn read(tx: &WriteTransaction) -> Result<Position> {
        let last_seq = tx.open_table(SEQ_MESSAGE)?.last()?.map(|(k, _)| k.value()).unwrap_or(0);
        let unmerged = tx.open_table(RECENT_SEQ_CONV_SENDER)?.len()?;
        let merging = sorted_rows(&tx.open_table(MERGING_SEQ_CONV_SENDER)?)?;
        let merge = (!merging.is_empty()).then_some(Merge { rows: merging, done: 0 });
        Ok(Position { last_seq, unmerged, merge })
    }

    /// The merge work that goes with a batch of `appends`: starts a merge when the recent
    /// table is full and none is under way, and moves the next slice of the one under way
    /// into the indexes, dropping the merging table after the last.
    pub(crate) fn merge_step(&mut self, tx: &WriteTransaction, appends: usize) -> Result<()> {
        if self.merge.is_none() && self.unmerged >= MERGE_AT {
            // The merging table is there, empty, between merges.
            tx.delete_table(MERGING_SEQ_CONV_SENDER)?;
            tx.rename_table(RECENT_SEQ_CONV_SENDER, MERGING_SEQ_CONV_SENDER)?;
            tx.open_table(RECENT_SEQ_CONV_SENDER)?;
            self.merge = Some(Merge { rows: sorted_rows(&tx.open_table(MERGING_SEQ_CONV_SENDER)?)?, done: 0 });
            self.unmerged = 0;
        }
        let Some(m) = self.merge.as_mut() else { return Ok(()) };
        let end = (m.done + MERGE_SLICE.max(2 * appends)).min(m.rows.len());
        {
            let mut convs = tx.open_table(CONV_SEQ_SENDER)?;
            let mut peers = tx.open_table(USER_PEER_LASTSEQ)?;
            for i in m.done..end {
                let (conv, seq, sender) = &m.rows[i];
                convs.insert((conv.as_str(), *seq), sender.as_str())?;
                let last_of_conv = m.rows.get(i + 1).is_none_or(|next| next.0 != *conv);
                if let (true, Some(Conv::Dm(a, b))) = (last_of_conv, parse_conv(conv)) {
                    peers.insert((a, b), *seq)?;
                    peers.insert((b, a), *seq)?;
                }
            }
        }
        m.done = end;
        if m.done == m.rows.len() {
            // Dropping the table frees its pages at once, where deleting rows rebalances.
            tx.delete_table(MERGING_SEQ_CONV_SENDER)?;
            tx.open_table(MERGING_SEQ_CONV_SENDER)?;
            self.merge = None;
        }
        Ok(())
    }
}

/// Makes and reads message ids that carry their sequence number: UUIDv7s whose 48-bit
/// millisecond timestamp keeps them time-ordered as the protocol asks, and whose 62
/// random bits hold the seq put through a keyed permutation. So a cursor finds its message
/// without an id index, and an id does not tell how many messages the server has stored
/// (the key is per database, in `name_secret`, and travels in backups). This hides counts
/// from users; it is not meant to withstand cryptanalysis, and nothing depends on ids being
/// unguessable: a cursor only bounds a read of the caller's own conversations.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdCodec {
    key: u64,
}

const SEQ_BITS: u32 = 62;
const HALF_BITS: u32 = SEQ_BITS / 2;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;
const ROUNDS: u64 = 6;
/// The `name_secret` entry holding the key.
const ID_KEY: &str = "message_ids";

impl IdCodec {
    /// Reads the key, which [`IdCodec::ensure_key`] made when the schema was created.
    fn read(t: impl ReadableTable<&'static str, u64>) -> Result<IdCodec> {
        let key = t.get(ID_KEY)?.ok_or_else(|| Error::Internal("message id key missing".into()))?.value();
        Ok(IdCodec { key })
    }

    /// Makes the key of a database that has none yet.
    pub(crate) fn ensure_key(tx: &WriteTransaction) -> Result<()> {
        let mut t = tx.open_table(NAME_SECRET)?;
        if t.get(ID_KEY)?.is_none() {
            t.insert(ID_KEY, rand::random::<u64>())?;
        }
        Ok(())
    }

    /// One Feistel round function over a 31-bit half (splitmix64's finaliser, keyed).
    fn round(&self, i: u64, half: u64) -> u64 {
        let mut z = half ^ self.key.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) & HALF_MASK
    }

    fn permute(&self, v: u64) -> u64 {
        let (mut l, mut r) = (v >> HALF_BITS, v & HALF_MASK);
        for i in 0..ROUNDS {
            (l, r) = (r, l ^ self.round(i, r));
        }
        (l << HALF_BITS) | r
    }

    fn unpermute(&self, v: u64) -> u64 {
        let (mut l, mut r) = (v >> HALF_BITS, v & HALF_MASK);
        for i in (0..ROUNDS).rev() {
            (l, r) = (r ^ self.round(i, l), l);
        }
        (l << HALF_BITS) | r
    }

    #[cfg(test)]
    pub(crate) fn with_key(key: u64) -> IdCodec {
        IdCodec { key }
    }

    /// The id of message `seq`, stored at `unix_ms`. Ids made by this process sort in the
    /// order they were made, as `Uuid::now_v7` ones do: rand_a counts within a millisecond.
    pub(crate) fn encode(&self, seq: u64, unix_ms: u64) -> MessageId {
        let stamp = next_stamp(unix_ms);
        let hidden = self.permute(seq & ((1 << SEQ_BITS) - 1));
        let mut random = [0u8; 10];
        random[..2].copy_from_slice(&((stamp & 0x0fff) as u16).to_be_bytes());
        random[2..].copy_from_slice(&hidden.to_be_bytes());
        let id = uuid::Builder::from_unix_timestamp_millis(stamp >> 12, &random).into_uuid();
        MessageId::from(id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()) as &str)
    }

    /// The seq an id of this shape would carry; `None` when it is not a UUIDv7.
    pub(crate) fn decode(&self, id: &str) -> Option<u64> {
        let id = uuid::Uuid::try_parse(id).ok()?;
        if id.get_version_num() != 7 {
            return None;
        }
        let b = id.as_bytes();
        let hidden = u64::from_be_bytes(b[8..16].try_into().ok()?) & ((1 << SEQ_BITS) - 1);
        Some(self.unpermute(hidden))
    }
}

/// The last id stamp made: milliseconds << 12 | a count within that millisecond.
static STAMP: AtomicU64 = AtomicU64::new(0);

/// The next stamp, strictly after the last: `unix_ms` with count 0, or the last plus one
/// (running a millisecond ahead after 4,096 in one, or if the clock went back).
fn next_stamp(unix_ms: u64) -> u64 {
    let mut last = STAMP.load(Ordering::Relaxed);
    loop {
        let next = (last + 1).max(unix_ms << 12);
        match STAMP.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// The tables a batch of appends writes, opened once per transaction: opening a table in a
/// write transaction and closing it again updates the table directory, which would cost
/// every message several extra tree writes.
pub(crate) struct Appender<'tx> {
    tx: &'tx WriteTransaction,
    messages: Table<'tx, u64, &'static [u8]>,
    ids: IdCodec,
    client_ids: Table<'tx, (&'static str, &'static str), u64>,
    /// Schema 2's index, when it holds anything.
    legacy_client_ids: Option<Table<'tx, (&'static str, &'static str), u64>>,
    recent: Table<'tx, u64, (&'static str, &'static str)>,
}

impl<'tx> Appender<'tx> {
    pub(crate) fn new(tx: &'tx WriteTransaction) -> Result<Appender<'tx>> {
        Ok(Appender {
            tx,
            messages: tx.open_table(SEQ_MESSAGE)?,
            ids: IdCodec::read(tx.open_table(NAME_SECRET)?)?,
            client_ids: tx.open_table(CLIENTID_SENDER_SEQ)?,
            legacy_client_ids: Some(tx.open_table(SENDER_CLIENTID_SEQ)?).filter(|t| !t.is_empty().unwrap_or(false)),
            recent: tx.open_table(RECENT_SEQ_CONV_SENDER)?,
        })
    }

    /// Appends one message, or returns the message an earlier send with the same
    /// `clientId` stored (`false` = not new). `seq` is the last sequence number in use.
    pub(crate) fn append(&mut self, seq: &mut u64, draft: &Draft) -> Result<(Message, bool)> {
        let from = draft.from.as_str();
        if let Some(cid) = &draft.client_id {
            let mut existing = self.client_ids.get((cid.as_str(), from))?.map(|v| v.value());
            if let (None, Some(legacy)) = (existing, &self.legacy_client_ids) {
                existing = legacy.get((from, cid.as_str()))?.map(|v| v.value());
            }
            if let Some(old) = existing {
                let cell = self
                    .messages
                    .get(old)?
                    .ok_or_else(|| Error::Internal("idempotency index points nowhere".into()))?;
                return Ok((from_cell(cell.value())?, false));
            }
        }
        *seq += 1;
        let now = time::OffsetDateTime::now_utc();
        let msg = Message {
            id: self.ids.encode(*seq, (now.unix_timestamp_nanos() / 1_000_000).max(0) as u64),
            from: draft.from.clone(),
            to: match &draft.target {
                Target::User(u) => Some(u.clone()),
                Target::Group(_) => None,
            },
            group_id: match &draft.target {
                Target::Group(g) => Some(g.clone()),
                Target::User(_) => None,
            },
            kind: draft.kind,
            content: draft.content.clone(),
            file: draft.file.clone(),
            client_id: draft.client_id.clone(),
            created_at: crate::clock::format_rfc3339(now),
            read_at: None,
            read_by: None,
        };
        let conv = conv_key(&draft.target, &draft.from);
        self.messages.insert(*seq, to_cell(&msg)?.as_slice())?;
        self.recent.insert(*seq, (conv.as_str(), from))?;
        if let Some(cid) = &draft.client_id {
            self.client_ids.insert((cid.as_str(), from), *seq)?;
        }
        if let Some(f) = &draft.file {
            crate::files::data::record_posted(self.tx, f.id.as_str(), &conv, *seq)?;
        }
        Ok((msg, true))
    }
}

/// One consistent view of the chat tables for the length of a request: the merged
/// per-conversation indexes and the recent entries not merged yet, in one read transaction.
pub(crate) struct Snapshot {
    tx: ReadTx,
    /// The merging and recent entries by conversation, (seq, sender) in seq order; read on
    /// first use.
    recent: OnceCell<HashMap<String, Vec<(u64, String)>>>,
}

impl Snapshot {
    pub(crate) fn new(store: &Store) -> Result<Snapshot> {
        Ok(Snapshot { tx: store.begin_read()?, recent: OnceCell::new() })
    }

    /// Reads every unmerged entry once, for a request that pages many conversations
    /// ([`Snapshot::range`] otherwise walks them for each).
    pub(crate) fn many_conversations(self) -> Result<Snapshot> {
        self.recent()?;
        Ok(self)
    }

    fn recent(&self) -> Result<&HashMap<String, Vec<(u64, String)>>> {
        if let Some(r) = self.recent.get() {
            return Ok(r);
        }
        let mut by_conv: HashMap<String, Vec<(u64, String)>> = HashMap::new();
        // Every merging seq is older than every recent one, so the lists stay in seq order.
        for table in [MERGING_SEQ_CONV_SENDER, RECENT_SEQ_CONV_SENDER] {
            for row in self.tx.open_table(table)?.iter()? {
                let (k, v) = row?;
                let (conv, sender) = v.value();
                by_conv.entry(conv.to_string()).or_default().push((k.value(), sender.to_string()));
            }
        }
        Ok(self.recent.get_or_init(|| by_conv))
    }

    /// Reads a set of messages by sequence number, in the order given. A file message whose
    /// file was deleted since comes back with `file.removed` set.
    pub(crate) fn load(&self, seqs: &[u64]) -> Result<Vec<Message>> {
        let t = self.tx.open_table(SEQ_MESSAGE)?;
        let files = self.tx.open_table(crate::files::data::FILEID_FILE)?;
        seqs.iter()
            .map(|s| {
                let cell = t.get(*s)?.ok_or_else(|| Error::Internal(format!("message {s} missing")))?;
                let mut msg: Message = from_cell(cell.value())?;
                if let Some(f) = msg.file.as_mut() {
                    f.removed = crate::files::data::is_removed(&files, f.id.as_str())?;
                }
                Ok(msg)
            })
            .collect()
    }

    /// The sequence number of a message id, if it exists.
    pub(crate) fn seq_of(&self, id: &str) -> Result<Option<u64>> {
        let codec = IdCodec::read(self.tx.open_table(NAME_SECRET)?)?;
        if let Some(seq) = codec.decode(id) {
            // Any string of the right shape decodes to some seq: only the message stored
            // there, under this very id, makes it one.
            if let Some(cell) = self.tx.open_table(SEQ_MESSAGE)?.get(seq)? {
                #[derive(serde::Deserialize)]
                struct Id {
                    id: String,
                }
                if from_cell::<Id>(cell.value()).is_ok_and(|m| m.id == id) {
                    return Ok(Some(seq));
                }
            }
        }
        Ok(self.tx.open_table(MESSAGEID_SEQ)?.get(id)?.map(|v| v.value()))
    }

    /// Up to `limit` (seq, sender) entries of a conversation with seq in `(after, before)`,
    /// newest first when `newest_first`, else oldest first.
    pub(crate) fn range(
        &self,
        conv: &str,
        after: u64,
        before: u64,
        limit: usize,
        newest_first: bool,
    ) -> Result<Vec<(u64, String)>> {
        if after.saturating_add(1) >= before {
            return Ok(Vec::new());
        }
        let mut rows: BTreeMap<u64, String> = BTreeMap::new();
        if let Some(by_conv) = self.recent.get() {
            if let Some(recent) = by_conv.get(conv) {
                rows.extend(recent.iter().filter(|(s, _)| *s > after && *s < before).cloned());
            }
        } else {
            // One conversation: walk the unmerged entries from the near end and stop at
            // `limit`, without reading the rest.
            let tables = if newest_first {
                [RECENT_SEQ_CONV_SENDER, MERGING_SEQ_CONV_SENDER]
            } else {
                [MERGING_SEQ_CONV_SENDER, RECENT_SEQ_CONV_SENDER]
            };
            let mut found = 0;
            for table in tables {
                let t = self.tx.open_table(table)?;
                found += unmerged_entries(&t, conv, (after, before), newest_first, limit - found, &mut rows)?;
                if found == limit {
                    break;
                }
            }
        }
        // The `limit` nearest index entries are enough: any other is beyond them.
        indexed_entries(&self.tx.open_table(CONV_SEQ_SENDER)?, conv, (after, before), newest_first, limit, &mut rows)?;
        Ok(if newest_first {
            rows.into_iter().rev().take(limit).collect()
        } else {
            rows.into_iter().take(limit).collect()
        })
    }

    /// The seq `reader` has read `conv` up to.
    pub(crate) fn read_seq(&self, reader: &str, conv: &str) -> Result<u64> {
        Ok(self.tx.open_table(READER_CONV_READSEQ)?.get((reader, conv))?.map(|v| v.value()).unwrap_or(0))
    }

    /// Every DM peer of `user` with the last seq of that conversation.
    pub(crate) fn dm_peers(&self, user: &str) -> Result<Vec<(UserId, u64)>> {
        let t = self.tx.open_table(USER_PEER_LASTSEQ)?;
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for row in t.range((user, "")..)? {
            let (k, v) = row?;
            let (u, peer) = k.value();
            if u != user {
                break;
            }
            out.insert(peer.to_string(), v.value());
        }
        for (conv, rows) in self.recent()? {
            let peer = match parse_conv(conv) {
                Some(Conv::Dm(a, b)) if a == user => b,
                Some(Conv::Dm(a, b)) if b == user => a,
                _ => continue,
            };
            if let Some((last, _)) = rows.last() {
                let e = out.entry(peer.to_string()).or_default();
                *e = (*e).max(*last);
            }
        }
        Ok(out.into_iter().map(|(p, s)| (UserId::from(p.as_str()), s)).collect())
    }
}

/// Adds to `rows` the entries of `conv` with seq strictly between `bounds` from one table of
/// unmerged entries, the nearest first in the direction asked and at most `limit` of them;
/// returns how many. Serves a read snapshot and a write transaction alike.
fn unmerged_entries(
    t: &impl ReadableTable<u64, (&'static str, &'static str)>,
    conv: &str,
    (after, before): (u64, u64),
    newest_first: bool,
    limit: usize,
    rows: &mut BTreeMap<u64, String>,
) -> Result<usize> {
    let range = t.range(after + 1..before)?;
    let entries: Box<dyn Iterator<Item = _>> = if newest_first { Box::new(range.rev()) } else { Box::new(range) };
    let mut found = 0;
    for row in entries {
        if found == limit {
            break;
        }
        let (k, v) = row?;
        let (c, sender) = v.value();
        if c == conv {
            rows.insert(k.value(), sender.to_string());
            found += 1;
        }
    }
    Ok(found)
}

/// Adds to `rows` the `limit` entries of `conv` in the per-conversation index with seq
/// strictly between `bounds` that are nearest in the direction asked.
fn indexed_entries(
    t: &impl ReadableTable<(&'static str, u64), &'static str>,
    conv: &str,
    (after, before): (u64, u64),
    newest_first: bool,
    limit: usize,
    rows: &mut BTreeMap<u64, String>,
) -> Result<()> {
    let range = t.range((conv, after + 1)..(conv, before))?;
    let entries: Box<dyn Iterator<Item = _>> = if newest_first { Box::new(range.rev()) } else { Box::new(range) };
    for row in entries.take(limit) {
        let (k, v) = row?;
        rows.insert(k.value().1, v.value().to_string());
    }
    Ok(())
}

/// Marks a conversation read for `reader` up to its newest message. Messages from
/// `stamp_from` (the DM peer) get `readAt` set. Returns how many messages from others
/// became read and the id of the newest of them.
pub fn mark_read(
    store: &Store,
    reader: &UserId,
    conv: &str,
    stamp_from: Option<&UserId>,
    now: &str,
) -> Result<(u64, Option<MessageId>)> {
    let tx = store.begin_write()?;
    let mut updated = 0;
    let mut up_to = None;
    {
        let mut marks = tx.open_table(READER_CONV_READSEQ)?;
        let old = marks.get((reader.as_str(), conv))?.map(|v| v.value()).unwrap_or(0);
        let mut rows: BTreeMap<u64, String> = BTreeMap::new();
        let unread = (old, u64::MAX);
        indexed_entries(&tx.open_table(CONV_SEQ_SENDER)?, conv, unread, false, usize::MAX, &mut rows)?;
        for table in [MERGING_SEQ_CONV_SENDER, RECENT_SEQ_CONV_SENDER] {
            unmerged_entries(&tx.open_table(table)?, conv, unread, false, usize::MAX, &mut rows)?;
        }
        let mut msgs = tx.open_table(SEQ_MESSAGE)?;
        let mut newest = old;
        let mut last_other = None;
        for (seq, sender) in rows {
            newest = seq;
            if sender != reader.as_str() {
                updated += 1;
                last_other = Some(seq);
                if stamp_from.is_some_and(|p| p.as_str() == sender) {
                    let mut m: Message = match msgs.get(seq)? {
                        Some(cell) => from_cell(cell.value())?,
                        None => continue,
                    };
                    if m.read_at.is_none() {
                        m.read_at = Some(now.to_string());
                        msgs.insert(seq, to_cell(&m)?.as_slice())?;
                    }
                }
            }
        }
        if let Some(seq) = last_other {
            let m: Message = from_cell(msgs.get(seq)?.ok_or(Error::NotFound("message"))?.value())?;
            up_to = Some(m.id);
        }
        if newest > old {
            marks.insert((reader.as_str(), conv), newest)?;
        }
    }
    tx.commit()?;
    Ok((updated, up_to))
}
