//! Chat: sending, history, read receipts, unread counts and catch-up (`sync`) for 1-to-1
//! and group conversations. Sends go through the group-commit [`writer`]; a message is
//! returned (and so acknowledged and delivered by the daemon) only once it is durable.
//! Who may do what is decided here, so REST and WebSocket share one set of rules.

pub(crate) mod data;
mod writer;

use crate::accounts::Accounts;
use crate::error::{Error, Result};
use crate::files::FileInfo;
use crate::groups::Groups;
use crate::ids::{FileId, GroupId, MessageId, UserId};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Longest message content, in characters.
pub const MAX_CONTENT: usize = 10_000;
/// Most messages one `sync` returns.
pub const SYNC_LIMIT: usize = 500;

/// Text or file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Text,
    File,
}

/// A stored message as clients see it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: MessageId,
    pub from: UserId,
    pub to: Option<UserId>,
    pub group_id: Option<GroupId>,
    pub kind: Kind,
    pub content: String,
    pub file: Option<FileInfo>,
    pub client_id: Option<String>,
    pub created_at: String,
    pub read_at: Option<String>,
    /// Group messages only: members (other than the sender) who have read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_by: Option<Vec<UserId>>,
}

/// Where a message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    User(UserId),
    Group(GroupId),
}

/// A validated message waiting to be stored.
#[derive(Clone, Debug)]
pub struct Draft {
    pub from: UserId,
    pub target: Target,
    pub kind: Kind,
    pub content: String,
    pub file: Option<FileInfo>,
    pub client_id: Option<String>,
}

/// What a client asks to send (REST body or WebSocket data, already parsed).
#[derive(Clone, Debug, Default)]
pub struct SendRequest {
    pub content: String,
    pub kind: Option<Kind>,
    pub file_id: Option<FileId>,
    pub client_id: Option<String>,
}

/// One page of history, oldest to newest.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

/// The outcome of marking a conversation read.
#[derive(Clone, Debug)]
pub struct Receipt {
    pub updated: u64,
    pub up_to: Option<MessageId>,
    pub read_at: String,
}

/// Unread counts per DM peer and per group.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Unread {
    pub users: BTreeMap<UserId, u64>,
    pub groups: BTreeMap<GroupId, u64>,
}

/// A message queued for the writer; [`PendingSend::wait`] resolves once it is durable.
pub struct PendingSend {
    rx: oneshot::Receiver<Result<Stored>>,
}

impl PendingSend {
    /// Waits for the commit. `true` when new, `false` when the `clientId` was seen before.
    pub async fn wait(self) -> Result<(Message, bool)> {
        let s = Stored::seen(self.rx.await.map_err(|_| Error::Unavailable("shutting down".into()))?)?;
        Ok((s.message, s.new))
    }
}

/// A send's outcome from the writer: the message stored, or stored before under the same
/// `clientId`.
#[derive(Debug)]
pub struct Stored {
    pub message: Message,
    /// `message` as JSON, exactly as `serde_json` writes it: the writer serializes each
    /// message once, for its row, and a gateway embeds these bytes in the frames it sends
    /// (the ack and the delivery) instead of serializing it twice more.
    pub json: String,
    /// `false` when the `clientId` was seen before.
    pub new: bool,
}

impl Stored {
    /// A writer's outcome as senders see it: a new group message has been read by no one
    /// yet (`readBy`, which rows leave out, is `[]`).
    fn seen(outcome: Result<Stored>) -> Result<Stored> {
        let mut s = outcome?;
        if s.message.group_id.is_some() {
            let had = s.message.read_by.replace(Vec::new());
            // `readBy` is the last field and left out when absent: add it before the `}`.
            match (had, s.json.pop()) {
                (None, Some('}')) => s.json.push_str(",\"readBy\":[]}"),
                _ => s.json = serde_json::to_string(&s.message)?,
            }
        }
        Ok(s)
    }
}

/// Resolves a `fileId` in a send to the file it names, checking the sender may share it.
pub type FileResolver = Arc<dyn Fn(&UserId, &FileId) -> Result<FileInfo> + Send + Sync>;

/// The chat service; cheap to clone.
#[derive(Clone)]
pub struct Chat {
    store: Store,
    accounts: Accounts,
    groups: Groups,
    writer: mpsc::Sender<writer::Op>,
    writer_thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// The messages not merged into the per-conversation indexes yet (see `data`).
    unmerged: data::SharedUnmerged,
    files: Arc<Mutex<Option<FileResolver>>>,
    after_commit: Arc<Mutex<Option<AfterCommit>>>,
}

/// Called on the writer's sync thread once the outcomes of the commits it found durable are
/// all handed over.
pub type AfterCommit = Arc<dyn Fn() + Send + Sync>;

fn validate_client_id(c: &str) -> Result<()> {
    if c.is_empty() || c.len() > 64 || !c.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Invalid("invalid_client_id", "clientId must be 1–64 printable ASCII characters".into()));
    }
    Ok(())
}

impl Chat {
    /// Starts the writer thread.
    pub fn new(store: Store, accounts: Accounts, groups: Groups) -> Result<Chat> {
        let after_commit = Arc::new(Mutex::new(None));
        let (unmerged, position) = data::Unmerged::open(&store)?;
        let (writer, handle) = writer::spawn(store.clone(), position, after_commit.clone())?;
        Ok(Chat {
            store,
            accounts,
            groups,
            writer,
            writer_thread: Arc::new(Mutex::new(Some(handle))),
            unmerged,
            files: Arc::new(Mutex::new(None)),
            after_commit,
        })
    }

    /// Installs what the writer calls after handing over each commit's outcomes to the
    /// functions given to [`Chat::submit_then`], so that their receiver can take a whole
    /// commit at once. Replaces what an earlier call installed.
    pub fn set_after_commit(&self, f: AfterCommit) {
        *self.after_commit.lock().expect("after-commit lock") = Some(f);
    }

    /// Installs the resolver that turns `fileId`s into files (the files service).
    pub fn set_file_resolver(&self, r: FileResolver) {
        *self.files.lock().expect("files lock") = Some(r);
    }

    /// Validates, authorizes and durably stores a message. Returns it with `true` when new,
    /// or the earlier message with `false` when `clientId` was already used by this sender.
    pub async fn send(&self, from: &UserId, target: Target, req: SendRequest) -> Result<(Message, bool)> {
        self.submit(from, target, req).await?.wait().await
    }

    /// Validates and authorizes a message and queues it for the writer, without waiting
    /// for the commit. Messages submitted one after another are stored in that order, so a
    /// connection can keep several sends in flight and still keep their order.
    pub async fn submit(&self, from: &UserId, target: Target, req: SendRequest) -> Result<PendingSend> {
        let draft = self.draft(from, target, req)?;
        let (reply, rx) = oneshot::channel();
        self.enqueue(draft, writer::Reply::Wait(reply)).await?;
        Ok(PendingSend { rx })
    }

    /// Like [`Chat::submit`], but instead of a task waiting for the commit, `then` gets
    /// the outcome: it is called on the writer's sync thread, in commit order, once the
    /// commit is durable, so it must only hand the outcome on. A gateway handing a whole commit's
    /// outcomes to one task can then queue every ack and delivery of it before writing
    /// any, instead of waking a task per message. `then` is not called when this returns
    /// an error.
    pub async fn submit_then(
        &self,
        from: &UserId,
        target: Target,
        req: SendRequest,
        then: impl FnOnce(Result<Stored>) + Send + 'static,
    ) -> Result<()> {
        let draft = self.draft(from, target, req)?;
        self.enqueue(draft, writer::Reply::Call(Box::new(move |outcome| then(Stored::seen(outcome))))).await
    }

    async fn enqueue(&self, draft: Draft, reply: writer::Reply) -> Result<()> {
        self.writer
            .send(writer::Op::Append(Box::new(writer::Append { draft, reply })))
            .await
            .map_err(|_| Error::Unavailable("shutting down".into()))
    }

    /// Validates and authorizes a send.
    fn draft(&self, from: &UserId, target: Target, req: SendRequest) -> Result<Draft> {
        match &target {
            Target::User(to) => {
                if to == from {
                    return Err(Error::invalid("you cannot send a message to yourself"));
                }
                if !self.accounts.exists(to) {
                    return Err(Error::NotFound("user"));
                }
            }
            Target::Group(g) => {
                self.groups.get_as_member(g, from)?;
            }
        }
        let kind = req.kind.unwrap_or(if req.file_id.is_some() { Kind::File } else { Kind::Text });
        let chars = req.content.chars().count();
        let file = match (kind, &req.file_id) {
            (Kind::Text, Some(_)) => return Err(Error::invalid("fileId is only allowed with kind \"file\"")),
            (Kind::Text, None) => {
                if chars == 0 || req.content.trim().is_empty() {
                    return Err(Error::Invalid("empty_content", "message content must not be empty".into()));
                }
                None
            }
            (Kind::File, None) => return Err(Error::invalid("a file message needs a fileId")),
            (Kind::File, Some(fid)) => {
                let resolver = self.files.lock().expect("files lock").clone();
                match resolver {
                    Some(r) => Some(r(from, fid)?),
                    None => return Err(Error::NotFound("file")),
                }
            }
        };
        if chars > MAX_CONTENT {
            return Err(Error::TooLarge(
                "content_too_long",
                format!("message content is limited to {MAX_CONTENT} characters"),
            ));
        }
        if let Some(c) = &req.client_id {
            validate_client_id(c)?;
        }
        Ok(Draft { from: from.clone(), target, kind, content: req.content, file, client_id: req.client_id })
    }

    /// A page of a conversation's history: the newest `limit` messages before `before`.
    pub async fn history(&self, me: &UserId, target: &Target, before: Option<&str>, limit: usize) -> Result<Page> {
        if !(1..=100).contains(&limit) {
            return Err(Error::Invalid("invalid_limit", "limit must be between 1 and 100".into()));
        }
        let members = match target {
            Target::User(peer) => {
                if self.accounts.get(peer).is_none() {
                    return Err(Error::NotFound("user"));
                }
                None
            }
            Target::Group(g) => Some(self.groups.get_as_member(g, me)?.members),
        };
        let conv = data::conv_key(target, me);
        let before = before.map(str::to_string);
        let (store, unmerged) = (self.store.clone(), self.unmerged.clone());
        let (mut messages, has_more) = tokio::task::spawn_blocking(move || -> Result<(Vec<Message>, bool)> {
            let snap = data::Snapshot::new(&store, &unmerged)?;
            let before_seq = match before {
                Some(id) => cursor(&snap, &id, &conv)?,
                None => u64::MAX,
            };
            let mut rows = snap.range(&conv, 0, before_seq, limit + 1, true)?;
            let has_more = rows.len() > limit;
            rows.truncate(limit);
            rows.reverse();
            let seqs: Vec<u64> = rows.iter().map(|r| r.0).collect();
            let mut msgs = snap.load(&seqs)?;
            if let Some(members) = members {
                fill_read_by(&snap, &conv, &members, &seqs, &mut msgs)?;
            }
            Ok((msgs, has_more))
        })
        .await??;
        messages.shrink_to_fit();
        Ok(Page { messages, has_more })
    }

    /// Marks every message from `peer` to `me` as read.
    pub async fn mark_dm_read(&self, me: &UserId, peer: &UserId) -> Result<Receipt> {
        if self.accounts.get(peer).is_none() {
            return Err(Error::NotFound("user"));
        }
        let conv = data::dm_key(me, peer);
        self.mark(me, conv, Some(peer.clone())).await
    }

    /// Marks a group read up to now for `me`.
    pub async fn mark_group_read(&self, me: &UserId, group: &GroupId) -> Result<Receipt> {
        self.groups.get_as_member(group, me)?;
        self.mark(me, format!("g:{group}"), None).await
    }

    async fn mark(&self, me: &UserId, conv: String, stamp_from: Option<UserId>) -> Result<Receipt> {
        let (store, unmerged) = (self.store.clone(), self.unmerged.clone());
        let me = me.clone();
        let now = crate::clock::now_rfc3339();
        let read_at = now.clone();
        let (updated, up_to) = tokio::task::spawn_blocking(move || {
            data::mark_read(&store, &unmerged, &me, &conv, stamp_from.as_ref(), &now)
        })
        .await??;
        Ok(Receipt { updated, up_to, read_at })
    }

    /// Unread counts for `me`: per DM peer and per group, omitting zeros.
    pub async fn unread(&self, me: &UserId) -> Result<Unread> {
        let (store, unmerged) = (self.store.clone(), self.unmerged.clone());
        let me = me.clone();
        let groups: Vec<GroupId> = self.groups.of_user(&me).into_iter().map(|g| g.id).collect();
        tokio::task::spawn_blocking(move || -> Result<Unread> {
            let mut out = Unread::default();
            let snap = data::Snapshot::new(&store, &unmerged)?.many_conversations(data::Scope::new(&me, &groups))?;
            let count = |conv: &str| -> Result<u64> {
                let mark = snap.read_seq(me.as_str(), conv)?;
                let rows = snap.range(conv, mark, u64::MAX, usize::MAX, false)?;
                Ok(rows.iter().filter(|(_, s)| s != me.as_str()).count() as u64)
            };
            for (peer, _) in snap.dm_peers(me.as_str())? {
                let n = count(&data::dm_key(&me, &peer))?;
                if n > 0 {
                    out.users.insert(peer, n);
                }
            }
            for g in groups {
                let n = count(&format!("g:{g}"))?;
                if n > 0 {
                    out.groups.insert(g, n);
                }
            }
            Ok(out)
        })
        .await?
    }

    /// Every DM and group message of `me` after `since` (exclusive, or from the start when
    /// `None`), oldest first, at most [`SYNC_LIMIT`].
    pub async fn sync(&self, me: &UserId, since: Option<&str>) -> Result<Page> {
        let bad = || Error::Invalid("invalid_cursor", "since must be the id of a stored message".into());
        if since.is_some_and(|id| !crate::ids::plausible_id(id)) {
            return Err(bad());
        }
        let since = since.map(str::to_string);
        let (store, unmerged) = (self.store.clone(), self.unmerged.clone());
        let me = me.clone();
        let groups: Vec<(GroupId, Vec<UserId>)> =
            self.groups.of_user(&me).into_iter().map(|g| (g.id, g.members)).collect();
        tokio::task::spawn_blocking(move || -> Result<Page> {
            let scope = data::Scope::new(&me, groups.iter().map(|(g, _)| g));
            let snap = data::Snapshot::new(&store, &unmerged)?.many_conversations(scope)?;
            let since_seq = match since {
                None => 0,
                Some(id) => snap.seq_of(&id)?.ok_or_else(bad)?,
            };
            // Each conversation is already in order: take the first SYNC_LIMIT+1 of each and merge.
            let mut picked: Vec<(u64, Option<usize>)> = Vec::new();
            for (peer, last) in snap.dm_peers(me.as_str())? {
                if last > since_seq {
                    let rows = snap.range(&data::dm_key(&me, &peer), since_seq, u64::MAX, SYNC_LIMIT + 1, false)?;
                    picked.extend(rows.into_iter().map(|(s, _)| (s, None)));
                }
            }
            for (i, (g, _)) in groups.iter().enumerate() {
                let rows = snap.range(&format!("g:{g}"), since_seq, u64::MAX, SYNC_LIMIT + 1, false)?;
                picked.extend(rows.into_iter().map(|(s, _)| (s, Some(i))));
            }
            picked.sort_unstable();
            let has_more = picked.len() > SYNC_LIMIT;
            picked.truncate(SYNC_LIMIT);
            let seqs: Vec<u64> = picked.iter().map(|p| p.0).collect();
            let mut msgs = snap.load(&seqs)?;
            let mut by_group: HashMap<usize, Vec<usize>> = HashMap::new();
            for (pos, (_, g)) in picked.iter().enumerate() {
                if let Some(g) = g {
                    by_group.entry(*g).or_default().push(pos);
                }
            }
            for (gi, positions) in by_group {
                let (g, members) = &groups[gi];
                let conv = format!("g:{g}");
                let gseqs: Vec<u64> = positions.iter().map(|p| seqs[*p]).collect();
                let mut gmsgs: Vec<Message> = positions.iter().map(|p| msgs[*p].clone()).collect();
                fill_read_by(&snap, &conv, members, &gseqs, &mut gmsgs)?;
                for (p, m) in positions.into_iter().zip(gmsgs) {
                    msgs[p] = m;
                }
            }
            Ok(Page { messages: msgs, has_more })
        })
        .await?
    }

    /// Stops the writer after everything queued so far is committed, and waits for it to
    /// release the database. Later sends fail with "shutting down".
    pub async fn close(&self) {
        let _ = self.writer.send(writer::Op::Stop).await;
        let handle = self.writer_thread.lock().expect("writer lock").take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

/// Resolves a message-id cursor that must belong to `conv`.
fn cursor(snap: &data::Snapshot, id: &str, conv: &str) -> Result<u64> {
    let bad = || Error::Invalid("invalid_cursor", "before must be the id of a message in this conversation".into());
    if !crate::ids::plausible_id(id) {
        return Err(bad());
    }
    let seq = snap.seq_of(id)?.ok_or_else(bad)?;
    let in_conv = !snap.range(conv, seq - 1, seq + 1, 1, false)?.is_empty();
    if in_conv {
        Ok(seq)
    } else {
        Err(bad())
    }
}

/// Fills `readBy` of group messages from the members' read marks.
fn fill_read_by(
    snap: &data::Snapshot,
    conv: &str,
    members: &[UserId],
    seqs: &[u64],
    msgs: &mut [Message],
) -> Result<()> {
    let marks: Vec<(UserId, u64)> =
        members.iter().map(|m| Ok((m.clone(), snap.read_seq(m.as_str(), conv)?))).collect::<Result<_>>()?;
    for (seq, msg) in seqs.iter().zip(msgs.iter_mut()) {
        msg.read_by = Some(marks.iter().filter(|(m, s)| s >= seq && m != &msg.from).map(|(m, _)| m.clone()).collect());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
