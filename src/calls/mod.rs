//! Call signaling state, free of I/O: 1-to-1 calls as a small state machine keyed by
//! `callId` (ringing → active → ended) and mesh group calls per group (up to a configured
//! size). Every method checks that the sender is party to the call and returns the events
//! to send and to whom; the daemon only delivers them. Anything not allowed is an error
//! and produces nothing, so signaling never reaches a stranger.

mod events;
#[cfg(test)]
mod tests;

pub use events::{CallEvent, CallType, MediaState};

use crate::error::{Error, Result};
use crate::ids::{CallId, GroupId, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Identifies one WebSocket connection (the daemon's hub assigns them).
pub type ConnId = u64;

/// How long a call may ring unanswered.
pub const RING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(45);

/// Where an event goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum To {
    /// Every connection of a user (e.g. ringing on all their tabs).
    User(UserId),
    /// Every connection of a user except one (the tab that answered).
    UserExcept(UserId, ConnId),
    /// One connection.
    Conn(UserId, ConnId),
}

/// One event for one recipient.
#[derive(Clone, Debug, PartialEq)]
pub struct Out {
    pub to: To,
    pub event: CallEvent,
}

fn out(to: To, event: CallEvent) -> Out {
    Out { to, event }
}

/// The caller's side of a request: who, on which connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Party {
    pub user: UserId,
    pub conn: ConnId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Ringing,
    Active,
}

#[derive(Clone, Debug)]
struct Call {
    caller: Party,
    callee: UserId,
    /// The callee's connection, once it answered.
    callee_conn: Option<ConnId>,
    state: State,
}

impl Call {
    /// The peer of `user` in this call and where to reach them.
    fn peer_of(&self, user: &UserId) -> Option<To> {
        if user == &self.caller.user {
            Some(match self.callee_conn {
                Some(c) => To::Conn(self.callee.clone(), c),
                None => To::User(self.callee.clone()),
            })
        } else if user == &self.callee {
            Some(To::Conn(self.caller.user.clone(), self.caller.conn))
        } else {
            None
        }
    }

    fn involves(&self, user: &UserId) -> bool {
        &self.caller.user == user || &self.callee == user
    }
}

#[derive(Default)]
struct Inner {
    calls: HashMap<CallId, Call>,
    groups: HashMap<GroupId, Vec<Party>>,
}

impl Inner {
    fn busy(&self, user: &UserId) -> bool {
        self.calls.values().any(|c| c.involves(user)) || self.groups.values().flatten().any(|p| &p.user == user)
    }

    /// A call the sender is party to, with `to` as the other party.
    fn call_for(&self, call_id: &CallId, from: &UserId, to: &UserId) -> Result<&Call> {
        match self.calls.get(call_id) {
            Some(c) if c.involves(from) && c.involves(to) && from != to => Ok(c),
            _ => Err(Error::NotFound("call")),
        }
    }
}

/// All call state; cheap to clone.
#[derive(Clone)]
pub struct Calls {
    inner: Arc<Mutex<Inner>>,
    max_group: usize,
}

/// Longest SDP accepted (the WebSocket frame limit bounds it anyway).
const MAX_SDP: usize = 60 * 1024;

fn check_sdp(sdp: &str) -> Result<()> {
    if sdp.is_empty() || sdp.len() > MAX_SDP {
        return Err(Error::invalid("sdp must be 1 byte to 60 KiB"));
    }
    Ok(())
}

fn check_call_id(id: &CallId) -> Result<()> {
    if !crate::ids::plausible_id(id.as_str()) {
        return Err(Error::invalid("callId must be 1–64 letters, digits or '-'"));
    }
    Ok(())
}

impl Calls {
    /// No calls; group calls hold at most `max_group` participants.
    pub fn new(max_group: usize) -> Calls {
        Calls { inner: Arc::default(), max_group }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("calls lock")
    }

    /// `call:offer`. A new call id starts ringing on every connection of the callee (the
    /// returned flag says so, and the daemon arms the ring timeout); a busy callee answers
    /// `call:reject` with reason `busy`. An offer on an existing call renegotiates it.
    pub fn offer(
        &self,
        from: &Party,
        to: &UserId,
        call_id: &CallId,
        call_type: CallType,
        sdp: &str,
    ) -> Result<(Vec<Out>, bool)> {
        check_call_id(call_id)?;
        check_sdp(sdp)?;
        let mut inner = self.lock();
        let event =
            CallEvent::Offer { from: from.user.clone(), call_id: call_id.clone(), call_type, sdp: sdp.to_string() };
        if inner.calls.contains_key(call_id) {
            let call = inner.call_for(call_id, &from.user, to)?;
            let peer = call.peer_of(&from.user).ok_or(Error::NotFound("call"))?;
            return Ok((vec![out(peer, event)], false));
        }
        if to == &from.user {
            return Err(Error::invalid("you cannot call yourself"));
        }
        if inner.busy(&from.user) {
            return Err(Error::Conflict("already_in_call", "you are already in a call; hang up first".into()));
        }
        if inner.busy(to) {
            let reject = CallEvent::Reject { from: to.clone(), call_id: call_id.clone(), reason: Some("busy".into()) };
            return Ok((vec![out(To::Conn(from.user.clone(), from.conn), reject)], false));
        }
        inner.calls.insert(
            call_id.clone(),
            Call { caller: from.clone(), callee: to.clone(), callee_conn: None, state: State::Ringing },
        );
        Ok((vec![out(To::User(to.clone()), event)], true))
    }

    /// `call:answer`. The callee's first answer makes the call active on the answering
    /// connection and stops the ringing on their other ones.
    pub fn answer(&self, from: &Party, to: &UserId, call_id: &CallId, sdp: &str) -> Result<Vec<Out>> {
        check_sdp(sdp)?;
        let mut inner = self.lock();
        let call = inner.call_for(call_id, &from.user, to)?.clone();
        let event = CallEvent::Answer { from: from.user.clone(), call_id: call_id.clone(), sdp: sdp.to_string() };
        let mut outs = Vec::new();
        if call.state == State::Ringing {
            if from.user != call.callee {
                return Err(Error::Forbidden("not_callee", "only the callee can answer a ringing call".into()));
            }
            if let Some(c) = inner.calls.get_mut(call_id) {
                c.state = State::Active;
                c.callee_conn = Some(from.conn);
            }
            let ended = CallEvent::End { from: call.caller.user.clone(), call_id: call_id.clone() };
            outs.push(out(To::UserExcept(from.user.clone(), from.conn), ended));
            outs.push(out(To::Conn(call.caller.user.clone(), call.caller.conn), event));
        } else {
            let c = inner.calls.get(call_id).ok_or(Error::NotFound("call"))?;
            outs.push(out(c.peer_of(&from.user).ok_or(Error::NotFound("call"))?, event));
        }
        Ok(outs)
    }

    /// `call:ice-candidate`, relayed to the other party only.
    pub fn candidate(
        &self,
        from: &Party,
        to: &UserId,
        call_id: &CallId,
        candidate: serde_json::Value,
    ) -> Result<Vec<Out>> {
        let inner = self.lock();
        let call = inner.call_for(call_id, &from.user, to)?;
        let peer = call.peer_of(&from.user).ok_or(Error::NotFound("call"))?;
        Ok(vec![out(peer, CallEvent::Candidate { from: from.user.clone(), call_id: call_id.clone(), candidate })])
    }

    /// `call:reject`: the callee declines (or the caller cancels); the call is over.
    pub fn reject(&self, from: &Party, to: &UserId, call_id: &CallId, reason: Option<String>) -> Result<Vec<Out>> {
        let reason = reason.map(|r| r.chars().take(64).collect::<String>());
        let mut inner = self.lock();
        let call = inner.call_for(call_id, &from.user, to)?.clone();
        inner.calls.remove(call_id);
        let mut outs = vec![out(
            call.peer_of(&from.user).ok_or(Error::NotFound("call"))?,
            CallEvent::Reject { from: from.user.clone(), call_id: call_id.clone(), reason },
        )];
        if from.user == call.callee {
            outs.push(out(
                To::UserExcept(from.user.clone(), from.conn),
                CallEvent::End { from: call.caller.user, call_id: call_id.clone() },
            ));
        }
        Ok(outs)
    }

    /// `call:end` from either party.
    pub fn end(&self, from: &Party, to: &UserId, call_id: &CallId) -> Result<Vec<Out>> {
        let mut inner = self.lock();
        let call = inner.call_for(call_id, &from.user, to)?.clone();
        inner.calls.remove(call_id);
        let mut outs = vec![out(
            call.peer_of(&from.user).ok_or(Error::NotFound("call"))?,
            CallEvent::End { from: from.user.clone(), call_id: call_id.clone() },
        )];
        if from.user == call.callee {
            outs.push(out(
                To::UserExcept(from.user.clone(), from.conn),
                CallEvent::End { from: call.caller.user, call_id: call_id.clone() },
            ));
        }
        Ok(outs)
    }

    /// The ring timeout fired: a call still ringing ends for both sides.
    pub fn ring_timeout(&self, call_id: &CallId) -> Vec<Out> {
        let mut inner = self.lock();
        match inner.calls.get(call_id) {
            Some(c) if c.state == State::Ringing => {
                let c = inner.calls.remove(call_id).expect("present");
                vec![
                    out(
                        To::Conn(c.caller.user.clone(), c.caller.conn),
                        CallEvent::End { from: c.callee.clone(), call_id: call_id.clone() },
                    ),
                    out(To::User(c.callee), CallEvent::End { from: c.caller.user, call_id: call_id.clone() }),
                ]
            }
            _ => Vec::new(),
        }
    }

    /// A connection closed: its calls end for their peers and it leaves its group calls.
    /// `user_still_online` says whether the user has other connections (a call ringing
    /// on several tabs goes on while one of them is open).
    pub fn disconnected(&self, who: &Party, user_still_online: bool) -> Vec<Out> {
        let mut inner = self.lock();
        let mut outs = Vec::new();
        let ended: Vec<CallId> = inner
            .calls
            .iter()
            .filter(|(_, c)| {
                (c.caller == *who)
                    || (c.callee == who.user
                        && (c.callee_conn == Some(who.conn) || (c.callee_conn.is_none() && !user_still_online)))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            let c = inner.calls.remove(&id).expect("present");
            if let Some(peer) = c.peer_of(&who.user) {
                outs.push(out(peer, CallEvent::End { from: who.user.clone(), call_id: id }));
            }
        }
        let groups: Vec<GroupId> =
            inner.groups.iter().filter(|(_, ps)| ps.contains(who)).map(|(g, _)| g.clone()).collect();
        for g in groups {
            outs.extend(leave_locked(&mut inner, &g, who));
        }
        outs
    }

    /// `group-call:join` by a member: returns the peers already in the call (the
    /// newcomer offers to each) and tells them `group-call:peer-joined`.
    pub fn group_join(&self, who: &Party, group: &GroupId, is_member: bool) -> Result<(Vec<UserId>, Vec<Out>)> {
        if !is_member {
            return Err(Error::Forbidden("not_a_member", "you are not a member of this group".into()));
        }
        let mut inner = self.lock();
        if inner.calls.values().any(|c| c.involves(&who.user)) {
            return Err(Error::Conflict("already_in_call", "you are already in a call; hang up first".into()));
        }
        let mut outs = Vec::new();
        let participants = inner.groups.entry(group.clone()).or_default();
        if let Some(existing) = participants.iter_mut().find(|p| p.user == who.user) {
            // The same user from another tab takes over the seat.
            existing.conn = who.conn;
        } else {
            if participants.len() >= self.max_group {
                if participants.is_empty() {
                    inner.groups.remove(group);
                }
                return Err(Error::Conflict(
                    "call_full",
                    format!("this group call is full ({} participants)", self.max_group),
                ));
            }
            for p in participants.iter() {
                outs.push(out(
                    To::Conn(p.user.clone(), p.conn),
                    CallEvent::PeerJoined { group_id: group.clone(), user_id: who.user.clone() },
                ));
            }
            participants.push(who.clone());
        }
        let peers: Vec<UserId> = participants.iter().filter(|p| p.user != who.user).map(|p| p.user.clone()).collect();
        outs.push(out(
            To::Conn(who.user.clone(), who.conn),
            CallEvent::ExistingPeers { group_id: group.clone(), peers: peers.clone() },
        ));
        Ok((peers, outs))
    }

    /// `group-call:leave`.
    pub fn group_leave(&self, who: &Party, group: &GroupId) -> Result<Vec<Out>> {
        let mut inner = self.lock();
        if !inner.groups.get(group).is_some_and(|ps| ps.contains(who)) {
            return Err(Error::NotFound("group call"));
        }
        Ok(leave_locked(&mut inner, group, who))
    }

    /// A user stopped being a member of `group`: they leave its call, from any tab.
    pub fn member_removed(&self, group: &GroupId, user: &UserId) -> Vec<Out> {
        let mut inner = self.lock();
        let seat = inner.groups.get(group).and_then(|ps| ps.iter().find(|p| &p.user == user).cloned());
        match seat {
            Some(p) => leave_locked(&mut inner, group, &p),
            None => Vec::new(),
        }
    }

    /// `group-call:offer` / `answer` / `ice-candidate`: relayed only between two
    /// participants of the same group call, from the connection that joined.
    pub fn group_signal(
        &self,
        from: &Party,
        group: &GroupId,
        to: &UserId,
        event: impl FnOnce(UserId) -> CallEvent,
    ) -> Result<Vec<Out>> {
        let inner = self.lock();
        let ps = inner.groups.get(group).ok_or(Error::NotFound("group call"))?;
        if !ps.contains(from) {
            return Err(Error::Forbidden("not_in_call", "join the group call first".into()));
        }
        let target = ps.iter().find(|p| &p.user == to && p.user != from.user).ok_or(Error::NotFound("participant"))?;
        Ok(vec![out(To::Conn(target.user.clone(), target.conn), event(from.user.clone()))])
    }

    /// `media:state`, relayed to the other participants of the sender's call.
    pub fn media_state(&self, from: &Party, state: MediaState) -> Result<Vec<Out>> {
        let inner = self.lock();
        let event = CallEvent::Media { from: from.user.clone(), state: state.clone() };
        match (&state.call_id, &state.group_id) {
            (Some(call_id), None) => {
                let c = inner.calls.get(call_id).filter(|c| c.involves(&from.user)).ok_or(Error::NotFound("call"))?;
                Ok(vec![out(c.peer_of(&from.user).ok_or(Error::NotFound("call"))?, event)])
            }
            (None, Some(g)) => {
                let ps = inner.groups.get(g).filter(|ps| ps.contains(from)).ok_or(Error::NotFound("group call"))?;
                Ok(ps
                    .iter()
                    .filter(|p| p.user != from.user)
                    .map(|p| out(To::Conn(p.user.clone(), p.conn), event.clone()))
                    .collect())
            }
            _ => Err(Error::invalid("give exactly one of callId or groupId")),
        }
    }

    /// Calls in progress: (1-to-1 calls, group calls, people in group calls).
    pub fn counts(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        (inner.calls.len(), inner.groups.len(), inner.groups.values().map(Vec::len).sum())
    }
}

fn leave_locked(inner: &mut Inner, group: &GroupId, who: &Party) -> Vec<Out> {
    let mut outs = Vec::new();
    if let Some(ps) = inner.groups.get_mut(group) {
        ps.retain(|p| p != who);
        for p in ps.iter() {
            outs.push(out(
                To::Conn(p.user.clone(), p.conn),
                CallEvent::PeerLeft { group_id: group.clone(), user_id: who.user.clone() },
            ));
        }
        if ps.is_empty() {
            inner.groups.remove(group);
        }
    }
    outs
}
