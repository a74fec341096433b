//! Message storage. A global sequence number orders every message; tables:
//!
//! - `seq_message`: seq → message JSON;
//! - `messageid_seq`: message id → seq (for `before` and `since` cursors);
//! - `conv_seq_sender`: (conversation, seq) → sender id: one index per DM pair or group,
//!   enough to page history and count unread without loading message bodies;
//! - `sender_clientid_seq`: (sender, clientId) → seq, the idempotency index;
//! - `user_peer_lastseq`: (user, peer) → last seq of their DM, listing a user's DMs;
//! - `reader_conv_readseq`: (reader, conversation) → the seq read up to.

use super::{Draft, Message, Target};
use crate::error::{Error, Result};
use crate::ids::{MessageId, UserId};
use crate::store::{from_cell, to_cell, Store};
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

pub(crate) const SEQ_MESSAGE: TableDefinition<u64, &[u8]> = TableDefinition::new("seq_message");
pub(crate) const MESSAGEID_SEQ: TableDefinition<&str, u64> = TableDefinition::new("messageid_seq");
pub(crate) const CONV_SEQ_SENDER: TableDefinition<(&str, u64), &str> = TableDefinition::new("conv_seq_sender");
pub(crate) const SENDER_CLIENTID_SEQ: TableDefinition<(&str, &str), u64> = TableDefinition::new("sender_clientid_seq");
pub(crate) const USER_PEER_LASTSEQ: TableDefinition<(&str, &str), u64> = TableDefinition::new("user_peer_lastseq");
pub(crate) const READER_CONV_READSEQ: TableDefinition<(&str, &str), u64> = TableDefinition::new("reader_conv_readseq");

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

/// The highest sequence number in use (0 when empty).
pub fn last_seq(store: &Store) -> Result<u64> {
    let tx = store.begin_read()?;
    let t = tx.open_table(SEQ_MESSAGE)?;
    let last = t.last()?.map(|(k, _)| k.value()).unwrap_or(0);
    Ok(last)
}

/// The tables a batch of appends writes, opened once per transaction: opening a table in a
/// write transaction and closing it again updates the table directory, which would cost
/// every message several extra tree writes.
pub(crate) struct Appender<'tx> {
    tx: &'tx WriteTransaction,
    messages: Table<'tx, u64, &'static [u8]>,
    ids: Table<'tx, &'static str, u64>,
    convs: Table<'tx, (&'static str, u64), &'static str>,
    client_ids: Table<'tx, (&'static str, &'static str), u64>,
    peers: Table<'tx, (&'static str, &'static str), u64>,
}

impl<'tx> Appender<'tx> {
    pub(crate) fn new(tx: &'tx WriteTransaction) -> Result<Appender<'tx>> {
        Ok(Appender {
            tx,
            messages: tx.open_table(SEQ_MESSAGE)?,
            ids: tx.open_table(MESSAGEID_SEQ)?,
            convs: tx.open_table(CONV_SEQ_SENDER)?,
            client_ids: tx.open_table(SENDER_CLIENTID_SEQ)?,
            peers: tx.open_table(USER_PEER_LASTSEQ)?,
        })
    }

    /// The highest sequence number stored (0 when empty).
    pub(crate) fn last_seq(&self) -> Result<u64> {
        Ok(self.messages.last()?.map(|(k, _)| k.value()).unwrap_or(0))
    }

    /// Appends one message, or returns the message an earlier send with the same
    /// `clientId` stored (`false` = not new). `seq` is the last sequence number in use.
    pub(crate) fn append(&mut self, seq: &mut u64, draft: &Draft) -> Result<(Message, bool)> {
        let from = draft.from.as_str();
        if let Some(cid) = &draft.client_id {
            let existing = self.client_ids.get((from, cid.as_str()))?.map(|v| v.value());
            if let Some(old) = existing {
                let cell = self
                    .messages
                    .get(old)?
                    .ok_or_else(|| Error::Internal("idempotency index points nowhere".into()))?;
                return Ok((from_cell(cell.value())?, false));
            }
        }
        *seq += 1;
        let msg = Message {
            id: MessageId::generate(),
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
            created_at: crate::clock::now_rfc3339(),
            read_at: None,
            read_by: None,
        };
        let conv = conv_key(&draft.target, &draft.from);
        self.messages.insert(*seq, to_cell(&msg)?.as_slice())?;
        self.ids.insert(msg.id.as_str(), *seq)?;
        self.convs.insert((conv.as_str(), *seq), from)?;
        if let Some(cid) = &draft.client_id {
            self.client_ids.insert((from, cid.as_str()), *seq)?;
        }
        if let Some(f) = &draft.file {
            crate::files::data::record_posted(self.tx, f.id.as_str(), &conv, *seq)?;
        }
        if let Target::User(to) = &draft.target {
            self.peers.insert((from, to.as_str()), *seq)?;
            self.peers.insert((to.as_str(), from), *seq)?;
        }
        Ok((msg, true))
    }
}

/// Reads a set of messages by sequence number, in the order given. A file message whose
/// file was deleted since comes back with `file.removed` set.
pub fn load(store: &Store, seqs: &[u64]) -> Result<Vec<Message>> {
    let tx = store.begin_read()?;
    let t = tx.open_table(SEQ_MESSAGE)?;
    let files = tx.open_table(crate::files::data::FILEID_FILE)?;
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
pub fn seq_of(store: &Store, id: &str) -> Result<Option<u64>> {
    let tx = store.begin_read()?;
    Ok(tx.open_table(MESSAGEID_SEQ)?.get(id)?.map(|v| v.value()))
}

/// Up to `limit` (seq, sender) entries of a conversation with seq in `(after, before)`,
/// newest first when `newest_first`, else oldest first.
pub fn range(
    store: &Store,
    conv: &str,
    after: u64,
    before: u64,
    limit: usize,
    newest_first: bool,
) -> Result<Vec<(u64, String)>> {
    if after.saturating_add(1) >= before {
        return Ok(Vec::new());
    }
    let tx = store.begin_read()?;
    let t = tx.open_table(CONV_SEQ_SENDER)?;
    let r = t.range((conv, after + 1)..(conv, before))?;
    let mut out = Vec::new();
    let rows: Box<dyn Iterator<Item = _>> = if newest_first { Box::new(r.rev()) } else { Box::new(r) };
    for row in rows.take(limit) {
        let (k, v) = row?;
        out.push((k.value().1, v.value().to_string()));
    }
    Ok(out)
}

/// The seq `reader` has read `conv` up to.
pub fn read_seq(store: &Store, reader: &str, conv: &str) -> Result<u64> {
    let tx = store.begin_read()?;
    Ok(tx.open_table(READER_CONV_READSEQ)?.get((reader, conv))?.map(|v| v.value()).unwrap_or(0))
}

/// Every DM peer of `user` with the last seq of that conversation.
pub fn dm_peers(store: &Store, user: &str) -> Result<Vec<(UserId, u64)>> {
    let tx = store.begin_read()?;
    let t = tx.open_table(USER_PEER_LASTSEQ)?;
    let mut out = Vec::new();
    for row in t.range((user, "")..)? {
        let (k, v) = row?;
        let (u, peer) = k.value();
        if u != user {
            break;
        }
        out.push((UserId::from(peer), v.value()));
    }
    Ok(out)
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
        let index = tx.open_table(CONV_SEQ_SENDER)?;
        let mut msgs = tx.open_table(SEQ_MESSAGE)?;
        let mut newest = old;
        let mut last_other = None;
        for row in index.range((conv, old + 1)..(conv, u64::MAX))? {
            let (k, sender) = row?;
            let seq = k.value().1;
            newest = seq;
            if sender.value() != reader.as_str() {
                updated += 1;
                last_other = Some(seq);
                if stamp_from.is_some_and(|p| p.as_str() == sender.value()) {
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
