//! The hub: every open WebSocket connection by user, presence transitions, and fan-out.
//! Each connection has a bounded outbound queue; fan-out never waits on it, and a
//! connection that stops reading is closed rather than buffered without limit, so one
//! slow consumer never stalls anyone else. A frame is serialized once and shared by
//! every recipient (`Utf8Bytes` is reference-counted).

use super::events::{message_frame, ReadNotice, ServerEvent, Typing};
use quickmeet::calls::{Out, To};
use quickmeet::chat::{Message, Receipt};
use quickmeet::ids::{GroupId, UserId};
use quickmeet::Core;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tungstenite::Utf8Bytes;

/// Identifies one connection.
pub use quickmeet::calls::ConnId;

/// Close code when a connection cannot keep up with what it is sent.
pub const CLOSE_TOO_SLOW: u16 = 1008;
/// Close code when the token of a connection was revoked or the account disabled.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// How long a connection may hold its queue limit's worth of frames or more without its
/// session taking any, before the next frame closes it.
pub const STALL: Duration = Duration::from_secs(1);
/// Multiple of the queue limit at which a connection is closed whatever its progress.
pub const BURST: usize = 16;

/// One open connection, as the hub sees it. The hub and the session share it.
pub type Conn = Arc<Connection>;

/// A connection's identity and its outbound queue. The queue is a plain deque under a
/// lock, freed whenever it empties, with one [`Notify`] that wakes the session for frames
/// and for a close alike: an idle connection costs this one allocation, where a tokio
/// channel, its first block of slots and a cancellation token cost ~0.7 KiB more.
pub struct Connection {
    pub id: ConnId,
    pub user: UserId,
    pub jti: String,
    queue: Mutex<Queue>,
    limit: usize,
    wake: Notify,
    /// Why the connection was asked to close; 0 while it is not.
    close_code: AtomicU16,
}

/// Frames waiting for the session, and since when it has taken none of them.
#[derive(Default)]
struct Queue {
    frames: VecDeque<Utf8Bytes>,
    /// When frames last started waiting: the push into an empty queue, or the session's
    /// last take that left some behind.
    since: Option<Instant>,
}

impl Connection {
    /// Queues a frame. A connection is judged too slow, and closed, when it holds its
    /// limit's worth of frames and has taken none for [`STALL`], or holds [`BURST`] times
    /// its limit. Not for merely reaching the limit: the acks and deliveries of one commit
    /// are queued together, and a reader keeping up with a hundred senders gets a hundred
    /// frames at once.
    pub fn send(&self, frame: Utf8Bytes) {
        if self.close_code() != 0 {
            return;
        }
        {
            let mut q = self.queue.lock().expect("outbound queue lock");
            let waiting = q.frames.len();
            let stalled = || q.since.is_some_and(|t| t.elapsed() >= STALL);
            if waiting >= self.limit && (waiting >= self.limit.saturating_mul(BURST) || stalled()) {
                drop(q);
                self.close(CLOSE_TOO_SLOW);
                return;
            }
            if waiting == 0 {
                q.since = Some(Instant::now());
            }
            q.frames.push_back(frame);
        }
        self.wake.notify_one();
    }

    /// Asks the session to close with `code`.
    pub fn close(&self, code: u16) {
        let _ = self.close_code.compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Why the connection was asked to close (0: it was not).
    pub fn close_code(&self) -> u16 {
        self.close_code.load(Ordering::Relaxed)
    }

    /// Moves up to `max` queued frames into `out`, oldest first.
    pub fn take(&self, max: usize, out: &mut Vec<Utf8Bytes>) {
        let mut q = self.queue.lock().expect("outbound queue lock");
        let n = q.frames.len().min(max);
        out.extend(q.frames.drain(..n));
        if q.frames.is_empty() {
            *q = Queue::default();
        } else if n > 0 {
            q.since = Some(Instant::now());
        }
    }

    /// Resolves when a frame was queued or a close asked for since the last call (or
    /// since the session last looked, if nobody waited).
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// Wakes the session again if frames wait or a close was asked for: after a wait that
    /// may have taken their wake-ups.
    pub fn rewake(&self) {
        let waiting = !self.queue.lock().expect("outbound queue lock").frames.is_empty();
        if waiting || self.close_code() != 0 {
            self.wake.notify_one();
        }
    }

    /// Resolves once a close is asked for.
    pub async fn closing(&self) {
        while self.close_code() == 0 {
            self.woken().await;
        }
    }
}

/// All connections; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    users: Arc<RwLock<HashMap<UserId, Vec<Conn>>>>,
    next: Arc<AtomicU64>,
    /// `lastSeen` of users who just went offline, until the durable write lands, so a
    /// client that reacts to `user:offline` at once already reads the new value.
    pending_last_seen: Arc<std::sync::Mutex<HashMap<UserId, String>>>,
    core: Core,
}

impl Hub {
    /// An empty hub.
    pub fn new(core: Core) -> Hub {
        Hub { users: Arc::default(), next: Arc::new(AtomicU64::new(1)), pending_last_seen: Arc::default(), core }
    }

    /// Adds a connection. The user's first connection announces `user:online` to everyone
    /// else, under the lock, so transitions are announced exactly once and in order.
    /// `queue` bounds the frames waiting for it.
    pub fn register(&self, user: &UserId, jti: &str, queue: usize) -> Conn {
        let conn = Arc::new(Connection {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            user: user.clone(),
            jti: jti.to_string(),
            queue: Mutex::default(),
            limit: queue,
            wake: Notify::new(),
            close_code: AtomicU16::new(0),
        });
        let mut users = self.users.write().expect("hub lock");
        let first = !users.contains_key(user);
        users.entry(user.clone()).or_default().push(conn.clone());
        if first {
            let frame: Utf8Bytes = ServerEvent::UserOnline { user_id: user.clone() }.to_frame().into();
            for c in users.iter().filter(|(u, _)| *u != user).flat_map(|(_, cs)| cs) {
                c.send(frame.clone());
            }
        }
        conn
    }

    /// Removes a connection; the user's last one records `lastSeen` and announces
    /// `user:offline` to everyone else.
    pub fn unregister(&self, conn: &Conn) {
        let last_seen = quickmeet::clock::now_rfc3339();
        let went_offline = {
            let mut users = self.users.write().expect("hub lock");
            let Some(list) = users.get_mut(&conn.user) else { return };
            list.retain(|c| c.id != conn.id);
            if list.is_empty() {
                users.remove(&conn.user);
                self.pending_last_seen.lock().expect("hub lock").insert(conn.user.clone(), last_seen.clone());
                let frame: Utf8Bytes =
                    ServerEvent::UserOffline { user_id: conn.user.clone(), last_seen: last_seen.clone() }
                        .to_frame()
                        .into();
                for c in users.values().flatten() {
                    c.send(frame.clone());
                }
                true
            } else {
                false
            }
        };
        if went_offline {
            let accounts = self.core.accounts.clone();
            let pending = self.pending_last_seen.clone();
            let user = conn.user.clone();
            tokio::spawn(async move {
                if let Err(e) = accounts.set_last_seen(&user, &last_seen).await {
                    tracing::warn!(error = %e, "could not record lastSeen");
                }
                let mut pending = pending.lock().expect("hub lock");
                if pending.get(&user) == Some(&last_seen) {
                    pending.remove(&user);
                }
            });
        }
    }

    /// The `lastSeen` recorded when the user went offline, while its durable write is
    /// still in flight.
    pub fn pending_last_seen(&self, user: &UserId) -> Option<String> {
        self.pending_last_seen.lock().expect("hub lock").get(user).cloned()
    }

    /// Waits (at most `within`) until every connection has gone and the `lastSeen` writes
    /// of users who went offline have landed: the last step of a shutdown.
    pub async fn settle(&self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            let idle = self.connection_count() == 0 && self.pending_last_seen.lock().expect("hub lock").is_empty();
            if idle {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        tracing::warn!("connections still closing at shutdown; their lastSeen may be lost");
    }

    /// Whether the user has at least one open connection.
    pub fn is_online(&self, user: &UserId) -> bool {
        self.users.read().expect("hub lock").contains_key(user)
    }

    /// Users with at least one open connection.
    pub fn online_users(&self) -> Vec<UserId> {
        let mut v: Vec<UserId> = self.users.read().expect("hub lock").keys().cloned().collect();
        v.sort();
        v
    }

    /// Number of open connections of `user`.
    pub fn connections_of(&self, user: &UserId) -> usize {
        self.users.read().expect("hub lock").get(user).map_or(0, Vec::len)
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.users.read().expect("hub lock").values().map(Vec::len).sum()
    }

    /// Sends a frame to every connection of each user in `to`, except connection `except`.
    pub fn send_to(&self, to: &[&UserId], frame: &Utf8Bytes, except: Option<ConnId>) {
        let users = self.users.read().expect("hub lock");
        for u in to {
            for c in users.get(*u).into_iter().flatten() {
                if Some(c.id) != except {
                    c.send(frame.clone());
                }
            }
        }
    }

    /// Delivers a new message: a DM to the recipient and the sender's other connections; a
    /// group message to every current member's connections but the sending one.
    pub fn deliver_message(&self, msg: &Message, except: Option<ConnId>) {
        if let Ok(json) = serde_json::to_string(msg) {
            self.deliver_stored(msg, &json, except);
        }
    }

    /// [`Hub::deliver_message`] for a message already serialized as `json`
    /// ([`quickmeet::chat::Stored::json`]): its frame embeds those bytes.
    pub fn deliver_stored(&self, msg: &Message, json: &str, except: Option<ConnId>) {
        let frame: Utf8Bytes = message_frame(msg, json).into();
        if let Some(to) = &msg.to {
            self.send_to(&[to, &msg.from], &frame, except);
        } else if let Some(g) = &msg.group_id {
            let Ok(group) = self.core.groups.get(g) else { return };
            let members: Vec<&UserId> = group.members.iter().collect();
            self.send_to(&members, &frame, except);
        }
    }

    /// Tells the DM peer (and the reader's other connections) that `reader` read up to a message.
    pub fn announce_dm_read(&self, reader: &UserId, peer: &UserId, r: &Receipt, except: Option<ConnId>) {
        let Some(up_to) = r.up_to.clone().filter(|_| r.updated > 0) else { return };
        let notice = ReadNotice {
            by: reader.clone(),
            user_id: Some(peer.clone()),
            group_id: None,
            up_to,
            read_at: r.read_at.clone(),
        };
        let frame: Utf8Bytes = ServerEvent::MessageRead(notice).to_frame().into();
        self.send_to(&[peer, reader], &frame, except);
    }

    /// Tells every member of a group that `reader` read it up to a message.
    pub fn announce_group_read(&self, reader: &UserId, group: &GroupId, r: &Receipt) {
        let Some(up_to) = r.up_to.clone().filter(|_| r.updated > 0) else { return };
        let Ok(g) = self.core.groups.get(group) else { return };
        let notice = ReadNotice {
            by: reader.clone(),
            user_id: None,
            group_id: Some(group.clone()),
            up_to,
            read_at: r.read_at.clone(),
        };
        let frame: Utf8Bytes = ServerEvent::MessageRead(notice).to_frame().into();
        let members: Vec<&UserId> = g.members.iter().collect();
        self.send_to(&members, &frame, None);
    }

    /// Relays a typing indicator to the one party concerned: the DM peer, or the group's
    /// other members.
    pub fn relay_typing(&self, start: bool, typing: Typing) {
        let recipients: Vec<UserId> = match (&typing.to, &typing.group_id) {
            (Some(to), None) => vec![to.clone()],
            (None, Some(g)) => match self.core.groups.get(g) {
                Ok(g) => g.members.into_iter().filter(|m| m != &typing.from).collect(),
                Err(_) => return,
            },
            _ => return,
        };
        let ev = if start { ServerEvent::TypingStart(typing) } else { ServerEvent::TypingStop(typing) };
        let frame: Utf8Bytes = ev.to_frame().into();
        let refs: Vec<&UserId> = recipients.iter().collect();
        self.send_to(&refs, &frame, None);
    }

    /// Delivers call signaling to exactly the connections the call state chose.
    pub fn deliver_calls(&self, outs: &[Out]) {
        if outs.is_empty() {
            return;
        }
        let users = self.users.read().expect("hub lock");
        for o in outs {
            let frame: Utf8Bytes = serde_json::to_string(&o.event).unwrap_or_default().into();
            let (user, only, except) = match &o.to {
                To::User(u) => (u, None, None),
                To::UserExcept(u, c) => (u, None, Some(*c)),
                To::Conn(u, c) => (u, Some(*c), None),
            };
            for c in users.get(user).into_iter().flatten() {
                if only.is_none_or(|id| id == c.id) && except != Some(c.id) {
                    c.send(frame.clone());
                }
            }
        }
    }

    /// Closes every connection opened with the token `jti` (after logout).
    pub fn close_token(&self, jti: &str) {
        for c in self.users.read().expect("hub lock").values().flatten() {
            if c.jti == jti {
                c.close(CLOSE_UNAUTHORIZED);
            }
        }
    }

    /// Closes every connection of `user` (account disabled or deleted).
    pub fn close_user(&self, user: &UserId) {
        for c in self.users.read().expect("hub lock").get(user).into_iter().flatten() {
            c.close(CLOSE_UNAUTHORIZED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(limit: usize) -> Connection {
        Connection {
            id: 1,
            user: UserId::from("u"),
            jti: "j".into(),
            queue: Mutex::default(),
            limit,
            wake: Notify::new(),
            close_code: AtomicU16::new(0),
        }
    }

    fn frame(i: usize) -> Utf8Bytes {
        format!("f{i}").into()
    }

    #[test]
    fn a_burst_past_the_limit_is_kept_and_burst_times_the_limit_closes() {
        let c = conn(4);
        for i in 0..4 * BURST {
            c.send(frame(i));
        }
        assert_eq!(c.close_code(), 0, "a burst of a commit's frames is not a slow client");
        c.send(frame(0));
        assert_eq!(c.close_code(), CLOSE_TOO_SLOW);
        let mut out = Vec::new();
        c.take(usize::MAX, &mut out);
        assert_eq!(out.len(), 4 * BURST, "nothing queued after the close");
        assert_eq!(out[7].as_str(), "f7");
    }

    #[test]
    fn a_client_that_takes_nothing_for_the_stall_time_is_closed_and_one_that_takes_is_not() {
        let (slow, reading) = (conn(4), conn(4));
        for i in 0..4 {
            slow.send(frame(i));
            reading.send(frame(i));
        }
        std::thread::sleep(STALL + Duration::from_millis(50));
        let mut out = Vec::new();
        reading.take(1, &mut out);
        slow.send(frame(4));
        reading.send(frame(4));
        reading.send(frame(5));
        assert_eq!(slow.close_code(), CLOSE_TOO_SLOW);
        assert_eq!(reading.close_code(), 0);
        // Under the limit, waiting is no offence.
        let idle = conn(4);
        idle.send(frame(0));
        std::thread::sleep(STALL + Duration::from_millis(50));
        idle.send(frame(1));
        assert_eq!(idle.close_code(), 0);
    }
}
