//! Message storage. A global sequence number orders every message; tables:
//!
//! - `seq_message`: seq → message JSON;
//! - `messageid_seq`: message id → seq, for `before` and `since` cursors, written up to
//!   schema 3. A message since carries its seq in its id instead (see [`IdCodec`]), so
//!   appends skip this index: one B-tree insert less per message;
//! - `name_secret`: the key that hides seqs in message ids (`message_ids`);
//! - `convno_seq_sender`: (conversation number, seq) → sender: one index per DM pair or
//!   group, enough to page history and count unread without loading message bodies. A
//!   DM's sender is one byte, which of the pair (see [`sender_cell`]); a group's is their
//!   id. Up to schema 5 this was `conv_seq_sender`, keyed by the conversation's key (a DM's
//!   is both user ids, ~75 bytes) with the sender's id as value: ~120 bytes an entry
//!   against ~20, and a third of the bytes each message wrote;
//! - `conv_number`: conversation key → its number in `convno_seq_sender`, given in order
//!   of first merge;
//! - `chat_mark`: `merged_seq`, the seq up to which every message is in `convno_seq_sender`
//!   and `user_peer_lastseq` (see below);
//! - `clientid_sender_seq`: (clientId, sender) → seq, the idempotency index. ClientId
//!   first: clients make time-ordered keys (the web client's are UUIDv7s), so a batch's
//!   keys land together at the end of the table instead of on a page per sender;
//! - `sender_clientid_seq`: the same index as schema 2 kept it, (sender, clientId) → seq;
//!   read, never written, so that older messages stay idempotent without a migration
//!   rewriting them;
//! - `user_peer_lastseq`: (user, peer) → last seq of their DM, listing a user's DMs;
//! - `reader_conv_readseq`: (reader, conversation) → the seq read up to.
//!
//! Why a merged mark: a batch of messages spread over many conversations would dirty one
//! leaf page per conversation in the per-conversation indexes, and every commit copies and
//! syncs each dirty page. So a batch only appends its message rows, which are sequential.
//! The writer keeps each new message's (conversation, sender) in memory ([`Unmerged`],
//! shared with readers); once [`MERGE_AT`] wait, it moves them into the indexes in
//! conversation order, a slice along with each following batch, so each conversation's leaf
//! is written about once per merge and no batch carries a whole merge, then moves the mark.
//! Readers take the messages after their transaction's mark from memory (or, for a
//! transaction older than the last two merges, from the rows: see [`Route`]) and the rest
//! from the indexes, through one [`Snapshot`], counting a message found in both (a merge
//! under way) once. At start the messages after the mark are read once from their rows.
//! Up to schema 4 they had tables of their own, `recent_seq_conv_sender` and
//! `merging_seq_conv_sender`: one more B-tree insert per message, and a tenth of the bytes
//! each message wrote.

use super::{Draft, Message, Stored, Target};
use crate::error::{Error, Result};
use crate::ids::{GroupId, MessageId, UserId};
use crate::store::{from_cell, to_cell, ReadTx, Store};
use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub(crate) const SEQ_MESSAGE: TableDefinition<u64, &[u8]> = TableDefinition::new("seq_message");
pub(crate) const MESSAGEID_SEQ: TableDefinition<&str, u64> = TableDefinition::new("messageid_seq");
pub(crate) const NAME_SECRET: TableDefinition<&str, u64> = TableDefinition::new("name_secret");
pub(crate) const CONVNO_SEQ_SENDER: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("convno_seq_sender");
pub(crate) const CONV_NUMBER: TableDefinition<&str, u64> = TableDefinition::new("conv_number");
pub(crate) const CLIENTID_SENDER_SEQ: TableDefinition<(&str, &str), u64> = TableDefinition::new("clientid_sender_seq");
pub(crate) const SENDER_CLIENTID_SEQ: TableDefinition<(&str, &str), u64> = TableDefinition::new("sender_clientid_seq");
pub(crate) const USER_PEER_LASTSEQ: TableDefinition<(&str, &str), u64> = TableDefinition::new("user_peer_lastseq");
pub(crate) const READER_CONV_READSEQ: TableDefinition<(&str, &str), u64> = TableDefinition::new("reader_conv_readseq");
pub(crate) const CHAT_MARK: TableDefinition<&str, u64> = TableDefinition::new("chat_mark");
/// Schema 4's tables of entries not merged yet; [`fold_legacy`] empties and drops them.
const LEGACY_RECENT: TableDefinition<u64, (&str, &str)> = TableDefinition::new("recent_seq_conv_sender");
const LEGACY_MERGING: TableDefinition<u64, (&str, &str)> = TableDefinition::new("merging_seq_conv_sender");
/// Schema 5's per-conversation index, keyed by conversation key; [`renumber`] moves it.
pub(crate) const LEGACY_CONV_SEQ_SENDER: TableDefinition<(&str, u64), &str> = TableDefinition::new("conv_seq_sender");
/// The `chat_mark` entry: every message up to this seq is in the per-conversation indexes.
const MERGED: &str = "merged_seq";

/// Messages past the merged mark that start a merge into the per-conversation indexes.
/// Small in unit tests, so that every chat test runs across merges.
pub(crate) const MERGE_AT: u64 = if cfg!(test) { 7 } else { 8192 };
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
    pair_key(a.as_str(), b.as_str())
}

fn pair_key(a: &str, b: &str) -> String {
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

/// A merge under way: the entries being merged as (conversation, seq, sender), sorted, how
/// many of them are in the indexes already, and the seq every one of them is at or below.
#[derive(Debug, Default)]
pub(crate) struct Merge {
    rows: Vec<(String, u64, String)>,
    done: usize,
    upto: u64,
}

/// The messages after the merged mark, by conversation, as (seq, sender) in seq order: what
/// readers need of them, kept in memory so that a read does not walk their rows. The writer
/// adds each message before its commit and forgets a merge's messages only once the next
/// merge is done, so a read transaction finds here every message it can see after its
/// merged mark, unless it began two merges ago: then it reads the ones forgotten since
/// from their rows ([`Unmerged::of`]).
#[derive(Debug, Default)]
pub(crate) struct Unmerged {
    /// Every message with a seq above this, stored or being stored, is here.
    low: u64,
    convs: ByConv,
}

/// The writer's [`Unmerged`], shared with readers.
pub(crate) type SharedUnmerged = Arc<RwLock<Unmerged>>;

impl Unmerged {
    /// Reads the messages after the merged mark from their rows; returns them with the mark
    /// and the last seq stored.
    fn load(
        messages: &impl ReadableTable<u64, &'static [u8]>,
        marks: &impl ReadableTable<&'static str, u64>,
    ) -> Result<(Unmerged, u64, u64)> {
        let merged = merged_mark(marks)?;
        let mut u = Unmerged { low: merged, convs: HashMap::new() };
        let last = messages.last()?.map(|(k, _)| k.value()).unwrap_or(0);
        for row in messages.range(merged + 1..)? {
            let (k, v) = row?;
            let r = Route::of(v.value())?;
            u.add(r.conv(), k.value(), r.from());
        }
        Ok((u, merged, last))
    }

    /// The shared copy for a store, read from its rows, and the writer's position (when
    /// chat starts).
    pub(crate) fn open(store: &Store) -> Result<(SharedUnmerged, Position)> {
        let tx = store.begin_read()?;
        let (u, merged, last_seq) = Unmerged::load(&tx.open_table(SEQ_MESSAGE)?, &tx.open_table(CHAT_MARK)?)?;
        let shared = Arc::new(RwLock::new(u));
        let pos = Position { last_seq, merged, pending: last_seq - merged, merge: None, unmerged: shared.clone() };
        Ok((shared, pos))
    }

    fn add(&mut self, conv: String, seq: u64, sender: String) {
        self.convs.entry(conv).or_default().push((seq, sender));
    }

    #[cfg(test)]
    pub(crate) fn low(&self) -> u64 {
        self.low
    }

    /// Forgets the messages up to `seq`.
    fn forget_upto(&mut self, seq: u64) {
        self.convs.retain(|_, v| {
            v.drain(..v.partition_point(|(s, _)| *s <= seq));
            !v.is_empty()
        });
        self.low = self.low.max(seq);
    }

    /// Adds to `rows` the messages of `conv` that a transaction sees after its merged mark
    /// (`view`) and that a read wants. Those forgotten since the transaction began are read
    /// from `messages`.
    fn of(
        shared: &SharedUnmerged,
        messages: &impl ReadableTable<u64, &'static [u8]>,
        view: View,
        conv: &str,
        want: Want,
        rows: &mut BTreeMap<u64, String>,
    ) -> Result<()> {
        let Want { newest_first, limit, .. } = want;
        let (after, before) = (want.after.max(view.merged), want.before.min(view.last.saturating_add(1)));
        if after.saturating_add(1) >= before {
            return Ok(());
        }
        let low = {
            let u = shared.read().expect("unmerged lock");
            if let Some(v) = u.convs.get(conv) {
                let (start, end) = (v.partition_point(|(s, _)| *s <= after), v.partition_point(|(s, _)| *s < before));
                let within = &v[start..end.max(start)];
                let near = if newest_first {
                    &within[within.len().saturating_sub(limit)..]
                } else {
                    &within[..within.len().min(limit)]
                };
                rows.extend(near.iter().cloned());
            }
            u.low
        };
        let Some(conv) = parse_conv(conv).filter(|_| low > after) else { return Ok(()) };
        let range = messages.range(after + 1..before.min(low + 1))?;
        let entries: Box<dyn Iterator<Item = _>> = if newest_first { Box::new(range.rev()) } else { Box::new(range) };
        let mut found = 0;
        for row in entries {
            if found == limit {
                break;
            }
            let (k, v) = row?;
            let r = Route::of(v.value())?;
            if r.is_in(&conv) {
                rows.insert(k.value(), r.from());
                found += 1;
            }
        }
        Ok(())
    }

    /// Every message of `scope`'s conversations that a transaction sees after its merged
    /// mark, by conversation in seq order; those forgotten since it began are read from
    /// `messages`.
    fn all(
        shared: &SharedUnmerged,
        messages: &impl ReadableTable<u64, &'static [u8]>,
        view: View,
        scope: &Scope,
    ) -> Result<ByConv> {
        let mut by_conv = ByConv::new();
        let low = {
            let u = shared.read().expect("unmerged lock");
            let floor = view.merged.max(u.low);
            for (conv, v) in u.convs.iter().filter(|(c, _)| scope.covers(c)) {
                let start = v.partition_point(|(s, _)| *s <= floor);
                let seen: Vec<(u64, String)> =
                    v[start..].iter().take_while(|(s, _)| *s <= view.last).cloned().collect();
                if !seen.is_empty() {
                    by_conv.insert(conv.clone(), seen);
                }
            }
            u.low
        };
        if low > view.merged {
            let mut older = ByConv::new();
            for row in messages.range(view.merged + 1..low.min(view.last) + 1)? {
                let (k, v) = row?;
                let r = Route::of(v.value())?;
                let conv = r.conv();
                if scope.covers(&conv) {
                    older.entry(conv).or_default().push((k.value(), r.from()));
                }
            }
            for (conv, mut v) in older {
                let newer = by_conv.remove(&conv).unwrap_or_default();
                v.extend(newer);
                by_conv.insert(conv, v);
            }
        }
        Ok(by_conv)
    }
}

/// The conversations a request over many of them reads: a user's DMs and groups.
#[derive(Debug)]
pub(crate) struct Scope {
    user: String,
    groups: std::collections::HashSet<String>,
}

impl Scope {
    pub(crate) fn new<'g>(user: &UserId, groups: impl IntoIterator<Item = &'g GroupId>) -> Scope {
        Scope { user: user.as_str().to_string(), groups: groups.into_iter().map(|g| g.as_str().to_string()).collect() }
    }

    fn covers(&self, conv: &str) -> bool {
        match parse_conv(conv) {
            Some(Conv::Dm(a, b)) => a == self.user || b == self.user,
            Some(Conv::Group(g)) => self.groups.contains(g),
            None => false,
        }
    }
}

/// The entries of a conversation a read wants: seq strictly between `after` and `before`,
/// the `limit` nearest in the direction asked.
#[derive(Clone, Copy, Debug)]
struct Want {
    after: u64,
    before: u64,
    newest_first: bool,
    limit: usize,
}

/// Messages by conversation, as (seq, sender) in seq order.
type ByConv = HashMap<String, Vec<(u64, String)>>;

/// What a transaction sees of the messages: its merged mark and its last seq.
#[derive(Clone, Copy, Debug)]
struct View {
    merged: u64,
    last: u64,
}

impl View {
    fn read(
        messages: &impl ReadableTable<u64, &'static [u8]>,
        marks: &impl ReadableTable<&'static str, u64>,
    ) -> Result<View> {
        Ok(View { merged: merged_mark(marks)?, last: messages.last()?.map(|(k, _)| k.value()).unwrap_or(0) })
    }
}

/// Where the message writer stands: the last sequence number in use, the seq up to which
/// every message is in the per-conversation indexes, how many appends since are in no merge
/// yet, and the merge under way, if any.
#[derive(Debug)]
pub(crate) struct Position {
    pub last_seq: u64,
    merged: u64,
    pending: u64,
    merge: Option<Merge>,
    unmerged: SharedUnmerged,
}

impl Position {
    /// Reads the writer's position from the database after a failed commit, which may have
    /// left messages in `unmerged` that were never stored ([`Unmerged::open`] reads it at
    /// start): every message after the merged mark is pending again, and `unmerged` is read
    /// anew. A merge that was under way starts over: inserting an entry twice changes
    /// nothing.
    pub(crate) fn read(tx: &WriteTransaction, unmerged: &SharedUnmerged) -> Result<Position> {
        let (u, merged, last_seq) = Unmerged::load(&tx.open_table(SEQ_MESSAGE)?, &tx.open_table(CHAT_MARK)?)?;
        let pending = last_seq - merged;
        *unmerged.write().expect("unmerged lock") = u;
        Ok(Position { last_seq, merged, pending, merge: None, unmerged: unmerged.clone() })
    }

    /// The shared copy of the messages after the merged mark this position updates.
    pub(crate) fn unmerged(&self) -> &SharedUnmerged {
        &self.unmerged
    }

    /// Records a new message, before its commit.
    fn add(&mut self, conv: String, seq: u64, sender: String) {
        self.pending += 1;
        self.unmerged.write().expect("unmerged lock").add(conv, seq, sender);
    }

    /// The merge work that goes with a batch of `appends`: starts a merge of the pending
    /// messages once there are [`MERGE_AT`] and none is under way, and moves the next slice
    /// of the one under way into the indexes, moving the merged mark after the last.
    pub(crate) fn merge_step(&mut self, tx: &WriteTransaction, appends: usize) -> Result<()> {
        if self.merge.is_none() && self.pending >= MERGE_AT {
            let mut rows = Vec::new();
            {
                let u = self.unmerged.read().expect("unmerged lock");
                for (conv, v) in &u.convs {
                    let start = v.partition_point(|(s, _)| *s <= self.merged);
                    rows.extend(v[start..].iter().map(|(s, sender)| (conv.clone(), *s, sender.clone())));
                }
            }
            rows.sort_unstable();
            self.merge = Some(Merge { rows, done: 0, upto: self.last_seq });
            self.pending = 0;
        }
        let Some(m) = self.merge.as_mut() else { return Ok(()) };
        let end = (m.done + MERGE_SLICE.max(2 * appends)).min(m.rows.len());
        index(tx, &m.rows, m.done..end)?;
        m.done = end;
        if m.done == m.rows.len() {
            // Transactions begun before this commit still need this merge's messages from
            // memory. The merge before's are in the index of every transaction begun since
            // it; an older one reads them from their rows.
            self.unmerged.write().expect("unmerged lock").forget_upto(self.merged);
            self.merged = m.upto;
            tx.open_table(CHAT_MARK)?.insert(MERGED, self.merged)?;
            self.merge = None;
        }
        Ok(())
    }
}

/// Inserts `rows[range]` of a merge, sorted by conversation then seq, into the
/// per-conversation indexes; a DM's last entry in `rows` also becomes its pair's last seq.
fn index(tx: &WriteTransaction, rows: &[(String, u64, String)], range: std::ops::Range<usize>) -> Result<()> {
    let mut convs = Indexer::new(tx)?;
    let mut peers = tx.open_table(USER_PEER_LASTSEQ)?;
    for i in range {
        let (conv, seq, sender) = &rows[i];
        convs.insert(conv, *seq, sender)?;
        let last_of_conv = rows.get(i + 1).is_none_or(|next| next.0 != *conv);
        if let (true, Some(Conv::Dm(a, b))) = (last_of_conv, parse_conv(conv)) {
            peers.insert((a, b), *seq)?;
            peers.insert((b, a), *seq)?;
        }
    }
    Ok(())
}

/// The per-conversation index open for writing; numbers each conversation the first time
/// it meets it.
struct Indexer<'tx> {
    numbers: Table<'tx, &'static str, u64>,
    entries: Table<'tx, (u64, u64), &'static [u8]>,
    /// The conversation inserted into last and its number: entries come by conversation.
    current: Option<(String, u64)>,
}

impl<'tx> Indexer<'tx> {
    fn new(tx: &'tx WriteTransaction) -> Result<Indexer<'tx>> {
        Ok(Indexer { numbers: tx.open_table(CONV_NUMBER)?, entries: tx.open_table(CONVNO_SEQ_SENDER)?, current: None })
    }

    fn insert(&mut self, conv: &str, seq: u64, sender: &str) -> Result<()> {
        let number = match &self.current {
            Some((c, n)) if c == conv => *n,
            _ => {
                let known = self.numbers.get(conv)?.map(|v| v.value());
                let n = match known {
                    Some(n) => n,
                    // Numbers are never taken back, so the next one is the count plus one.
                    None => {
                        let n = self.numbers.len()? + 1;
                        self.numbers.insert(conv, n)?;
                        n
                    }
                };
                self.current = Some((conv.to_string(), n));
                n
            }
        };
        self.entries.insert((number, seq), sender_cell(conv, sender))?;
        Ok(())
    }
}

/// How the index keeps the sender of a message in `conv`: in a DM, one byte, `0` for the
/// first user of its key and `1` for the second; anyone else by their id (ids are never
/// one byte long).
fn sender_cell<'a>(conv: &str, sender: &'a str) -> &'a [u8] {
    match parse_conv(conv) {
        Some(Conv::Dm(a, _)) if a == sender => &[0],
        Some(Conv::Dm(_, b)) if b == sender => &[1],
        _ => sender.as_bytes(),
    }
}

/// The sender a [`sender_cell`] of `conv` (parsed) stands for.
fn sender_of(conv: &Option<Conv<'_>>, cell: &[u8]) -> String {
    match (conv, cell) {
        (Some(Conv::Dm(a, _)), [0]) => a.to_string(),
        (Some(Conv::Dm(_, b)), [1]) => b.to_string(),
        _ => String::from_utf8_lossy(cell).into_owned(),
    }
}

/// Moves schema 5's index, keyed by conversation key, into the numbered one and drops it:
/// what upgrading a schema-5 database, or restoring a backup of one, needs.
pub(crate) fn renumber(tx: &WriteTransaction) -> Result<()> {
    {
        let old = tx.open_table(LEGACY_CONV_SEQ_SENDER)?;
        let mut index = Indexer::new(tx)?;
        for row in old.iter()? {
            let (k, v) = row?;
            let (conv, seq) = k.value();
            index.insert(conv, seq, v.value())?;
        }
    }
    tx.delete_table(LEGACY_CONV_SEQ_SENDER)?;
    Ok(())
}

/// Puts the index back the way schema 5 kept it, for tests of upgrades from it.
#[cfg(test)]
pub(crate) fn unnumber(tx: &WriteTransaction) -> Result<()> {
    let names: HashMap<u64, String> = tx
        .open_table(CONV_NUMBER)?
        .iter()?
        .map(|r| r.map(|(k, v)| (v.value(), k.value().to_string())))
        .collect::<std::result::Result<_, _>>()?;
    {
        let mut old = tx.open_table(LEGACY_CONV_SEQ_SENDER)?;
        for row in tx.open_table(CONVNO_SEQ_SENDER)?.iter()? {
            let (k, v) = row?;
            let (n, seq) = k.value();
            let conv = &names[&n];
            old.insert((conv.as_str(), seq), sender_of(&parse_conv(conv), v.value()).as_str())?;
        }
    }
    tx.delete_table(CONVNO_SEQ_SENDER)?;
    tx.delete_table(CONV_NUMBER)?;
    Ok(())
}

/// The seq up to which every message is in the per-conversation indexes.
fn merged_mark(t: &impl ReadableTable<&'static str, u64>) -> Result<u64> {
    Ok(t.get(MERGED)?.map(|v| v.value()).unwrap_or(0))
}

/// Moves the entries of schema 4's `recent` and `merging` tables into the indexes, drops
/// both tables and sets the merged mark after the last message: what upgrading a schema-4
/// database, or restoring a backup of one, needs (everything else it holds is merged).
pub(crate) fn fold_legacy(tx: &WriteTransaction) -> Result<()> {
    let mut rows = Vec::new();
    for def in [LEGACY_MERGING, LEGACY_RECENT] {
        for row in tx.open_table(def)?.iter()? {
            let (k, v) = row?;
            let (conv, sender) = v.value();
            rows.push((conv.to_string(), k.value(), sender.to_string()));
        }
        tx.delete_table(def)?;
    }
    rows.sort_unstable();
    index(tx, &rows, 0..rows.len())?;
    let last = tx.open_table(SEQ_MESSAGE)?.last()?.map(|(k, _)| k.value()).unwrap_or(0);
    tx.open_table(CHAT_MARK)?.insert(MERGED, last)?;
    Ok(())
}

/// Who a stored message row is from and to, read from the row. Rows are JSON that this
/// module writes, which starts `{"id":"…","from":"…","to":…,"groupId":…`: that prefix is
/// read directly, borrowing from the row, and anything else (an escape, another field
/// order) by parsing the row. Kept as bytes: readers compare far more rows than they keep.
pub(crate) struct Route<'a> {
    from: Cow<'a, [u8]>,
    to: Recipient<'a>,
}

enum Recipient<'a> {
    User(Cow<'a, [u8]>),
    Group(Cow<'a, [u8]>),
}

impl<'a> Route<'a> {
    pub(crate) fn of(cell: &'a [u8]) -> Result<Route<'a>> {
        if let Some(r) = Route::prefix(cell) {
            return Ok(r);
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Parsed {
            from: String,
            to: Option<String>,
            group_id: Option<String>,
        }
        let p: Parsed = from_cell(cell)?;
        let owned = |s: String| Cow::Owned(s.into_bytes());
        Route::new(owned(p.from), p.to.map(owned), p.group_id.map(owned))
            .ok_or_else(|| Error::Internal("message row names no single recipient".into()))
    }

    fn new(from: Cow<'a, [u8]>, to: Option<Cow<'a, [u8]>>, group: Option<Cow<'a, [u8]>>) -> Option<Route<'a>> {
        let to = match (to, group) {
            (Some(u), None) => Recipient::User(u),
            (None, Some(g)) => Recipient::Group(g),
            _ => return None,
        };
        Some(Route { from, to })
    }

    /// The route from the row's prefix, if it has the shape this module writes.
    pub(crate) fn prefix(cell: &'a [u8]) -> Option<Route<'a>> {
        // A string without escapes, up to its closing quote. A `"` byte is never part of a
        // multi-byte character, so the row splits on bytes into valid UTF-8.
        fn string(s: &[u8]) -> Option<(Cow<'_, [u8]>, &[u8])> {
            let s = s.strip_prefix(b"\"")?;
            let end = s.iter().position(|&c| c == b'"' || c == b'\\')?;
            (s[end] == b'"').then(|| (Cow::Borrowed(&s[..end]), &s[end + 1..]))
        }
        type Field<'a> = Option<Cow<'a, [u8]>>;
        fn nullable(s: &[u8]) -> Option<(Field<'_>, &[u8])> {
            match s.strip_prefix(b"null") {
                Some(rest) => Some((None, rest)),
                None => string(s).map(|(v, rest)| (Some(v), rest)),
            }
        }
        let (_, rest) = string(cell.strip_prefix(br#"{"id":"#)?)?;
        let (from, rest) = string(rest.strip_prefix(br#","from":"#)?)?;
        let (to, rest) = nullable(rest.strip_prefix(br#","to":"#)?)?;
        let (group, _) = nullable(rest.strip_prefix(br#","groupId":"#)?)?;
        Route::new(from, to, group)
    }

    /// The sender's id.
    pub(crate) fn from(&self) -> String {
        String::from_utf8_lossy(&self.from).into_owned()
    }

    /// The conversation key, as [`conv_key`] makes it.
    pub(crate) fn conv(&self) -> String {
        let text = String::from_utf8_lossy;
        match &self.to {
            Recipient::User(u) => pair_key(&text(&self.from), &text(u)),
            Recipient::Group(g) => format!("g:{}", text(g)),
        }
    }

    /// Whether the message is in `conv`, taken apart by [`parse_conv`].
    fn is_in(&self, conv: &Conv<'_>) -> bool {
        match (&self.to, conv) {
            (Recipient::User(u), Conv::Dm(a, b)) => {
                let (f, u, a, b) = (self.from.as_ref(), u.as_ref(), a.as_bytes(), b.as_bytes());
                (f == a && u == b) || (f == b && u == a)
            }
            (Recipient::Group(g), Conv::Group(want)) => g.as_ref() == want.as_bytes(),
            _ => false,
        }
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
}

impl<'tx> Appender<'tx> {
    pub(crate) fn new(tx: &'tx WriteTransaction) -> Result<Appender<'tx>> {
        Ok(Appender {
            tx,
            messages: tx.open_table(SEQ_MESSAGE)?,
            ids: IdCodec::read(tx.open_table(NAME_SECRET)?)?,
            client_ids: tx.open_table(CLIENTID_SENDER_SEQ)?,
            legacy_client_ids: Some(tx.open_table(SENDER_CLIENTID_SEQ)?).filter(|t| !t.is_empty().unwrap_or(false)),
        })
    }

    /// Appends one message, or returns the message an earlier send with the same
    /// `clientId` stored (`false` = not new). A new message takes the next seq after
    /// `at`'s and waits in `at` for the next merge.
    pub(crate) fn append(&mut self, at: &mut Position, draft: &Draft) -> Result<Stored> {
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
                let message = from_cell(cell.value())?;
                return Ok(Stored { json: serde_json::to_string(&message)?, message, new: false });
            }
        }
        at.last_seq += 1;
        let seq = at.last_seq;
        let now = time::OffsetDateTime::now_utc();
        let msg = Message {
            id: self.ids.encode(seq, (now.unix_timestamp_nanos() / 1_000_000).max(0) as u64),
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
        let json = serde_json::to_string(&msg)?;
        self.messages.insert(seq, json.as_bytes())?;
        if let Some(cid) = &draft.client_id {
            self.client_ids.insert((cid.as_str(), from), seq)?;
        }
        if let Some(f) = &draft.file {
            crate::files::data::record_posted(self.tx, f.id.as_str(), &conv, seq)?;
        }
        at.add(conv, seq, from.to_string());
        Ok(Stored { message: msg, json, new: true })
    }
}

/// One consistent view of the chat tables for the length of a request: the per-conversation
/// indexes, and the messages after the merged mark, in one read transaction.
pub(crate) struct Snapshot {
    tx: ReadTx,
    unmerged: SharedUnmerged,
    /// The transaction's merged mark and last seq, read on first use.
    view: OnceCell<View>,
    /// The messages after the merged mark in the conversations of a request over many of
    /// them, by conversation, (seq, sender) in seq order.
    recent: OnceCell<(Scope, ByConv)>,
}

impl Snapshot {
    pub(crate) fn new(store: &Store, unmerged: &SharedUnmerged) -> Result<Snapshot> {
        Ok(Snapshot {
            tx: store.begin_read()?,
            unmerged: unmerged.clone(),
            view: OnceCell::new(),
            recent: OnceCell::new(),
        })
    }

    /// Takes the messages after the merged mark in all of `scope`'s conversations at once,
    /// for a request that pages many of them ([`Snapshot::range`] otherwise looks each
    /// conversation up).
    pub(crate) fn many_conversations(self, scope: Scope) -> Result<Snapshot> {
        let by_conv = self.recent_of(&scope)?;
        let _ = self.recent.set((scope, by_conv));
        Ok(self)
    }

    fn view(&self) -> Result<View> {
        if let Some(v) = self.view.get() {
            return Ok(*v);
        }
        let v = View::read(&self.tx.open_table(SEQ_MESSAGE)?, &self.tx.open_table(CHAT_MARK)?)?;
        Ok(*self.view.get_or_init(|| v))
    }

    fn recent_of(&self, scope: &Scope) -> Result<ByConv> {
        Unmerged::all(&self.unmerged, &self.tx.open_table(SEQ_MESSAGE)?, self.view()?, scope)
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
        if let Some((_, by_conv)) = self.recent.get().filter(|(scope, _)| scope.covers(conv)) {
            if let Some(recent) = by_conv.get(conv) {
                rows.extend(recent.iter().filter(|(s, _)| *s > after && *s < before).cloned());
            }
        } else {
            let t = self.tx.open_table(SEQ_MESSAGE)?;
            let want = Want { after, before, newest_first, limit };
            Unmerged::of(&self.unmerged, &t, self.view()?, conv, want, &mut rows)?;
        }
        // The `limit` nearest index entries are enough: any other is beyond them.
        let index = (&self.tx.open_table(CONV_NUMBER)?, &self.tx.open_table(CONVNO_SEQ_SENDER)?);
        indexed_entries(index, conv, (after, before), newest_first, limit, &mut rows)?;
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
        let own;
        let recent = match self.recent.get() {
            Some((scope, by_conv)) if scope.user == user => by_conv,
            _ => {
                own = self.recent_of(&Scope::new(&UserId::from(user), []))?;
                &own
            }
        };
        for (conv, rows) in recent {
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

/// Adds to `rows` the `limit` entries of `conv` in the per-conversation index with seq
/// strictly between `bounds` that are nearest in the direction asked.
fn indexed_entries(
    (numbers, index): (&impl ReadableTable<&'static str, u64>, &impl ReadableTable<(u64, u64), &'static [u8]>),
    conv: &str,
    (after, before): (u64, u64),
    newest_first: bool,
    limit: usize,
    rows: &mut BTreeMap<u64, String>,
) -> Result<()> {
    let Some(n) = numbers.get(conv)?.map(|v| v.value()) else { return Ok(()) };
    let parsed = parse_conv(conv);
    let range = index.range((n, after + 1)..(n, before))?;
    let entries: Box<dyn Iterator<Item = _>> = if newest_first { Box::new(range.rev()) } else { Box::new(range) };
    for row in entries.take(limit) {
        let (k, v) = row?;
        rows.insert(k.value().1, sender_of(&parsed, v.value()));
    }
    Ok(())
}

/// Marks a conversation read for `reader` up to its newest message. Messages from
/// `stamp_from` (the DM peer) get `readAt` set. Returns how many messages from others
/// became read and the id of the newest of them.
pub(crate) fn mark_read(
    store: &Store,
    unmerged: &SharedUnmerged,
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
        let index = (&tx.open_table(CONV_NUMBER)?, &tx.open_table(CONVNO_SEQ_SENDER)?);
        indexed_entries(index, conv, unread, false, usize::MAX, &mut rows)?;
        let mut msgs = tx.open_table(SEQ_MESSAGE)?;
        let view = View::read(&msgs, &tx.open_table(CHAT_MARK)?)?;
        let want = Want { after: old, before: u64::MAX, newest_first: false, limit: usize::MAX };
        Unmerged::of(unmerged, &msgs, view, conv, want, &mut rows)?;
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
