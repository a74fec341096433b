//! Call signaling over the gateway: parses nothing itself (see [`super::events`]), asks
//! the core's call state whether the sender may do this, and delivers what it returns.
//! The ring timeout runs here, as a timer per ringing call.

use super::events::ClientEvent;
use super::hub::Conn;
use crate::AppState;
use quickmeet::calls::{CallEvent, Out, Party};
use quickmeet::Error;
use serde_json::{json, Value};

/// Handles one call event; `Ok(data)` is the ack's data.
pub fn handle(state: &AppState, conn: &Conn, event: ClientEvent) -> Result<Value, Error> {
    let calls = &state.core.calls;
    let me = Party { user: conn.user.clone(), conn: conn.id };
    let outs = match event {
        ClientEvent::CallOffer(o) => {
            if !state.core.accounts.exists(&o.to) {
                return Err(Error::NotFound("user"));
            }
            let (outs, ringing) = calls.offer(&me, &o.to, &o.call_id, o.call_type, &o.sdp)?;
            if ringing {
                arm_ring_timeout(state, o.call_id);
            }
            outs
        }
        ClientEvent::CallAnswer(a) => calls.answer(&me, &a.to, &a.call_id, &a.sdp)?,
        ClientEvent::CallCandidate(c) => calls.candidate(&me, &c.to, &c.call_id, c.candidate)?,
        ClientEvent::CallReject(r) => calls.reject(&me, &r.to, &r.call_id, r.reason)?,
        ClientEvent::CallEnd(e) => calls.end(&me, &e.to, &e.call_id)?,
        ClientEvent::GroupCallJoin(j) => {
            let member = state.core.groups.is_member(&j.group_id, &conn.user);
            if state.core.groups.get(&j.group_id).is_err() {
                return Err(Error::NotFound("group"));
            }
            let (peers, outs) = calls.group_join(&me, &j.group_id, member)?;
            state.hub.deliver_calls(&outs);
            return Ok(json!({ "peers": peers }));
        }
        ClientEvent::GroupCallLeave(l) => calls.group_leave(&me, &l.group_id)?,
        ClientEvent::GroupCallOffer(o) => {
            let (g, sdp) = (o.group_id.clone(), o.sdp);
            check_sdp_len(&sdp)?;
            calls.group_signal(&me, &o.group_id, &o.to, |from| CallEvent::GroupOffer { group_id: g, from, sdp })?
        }
        ClientEvent::GroupCallAnswer(a) => {
            let (g, sdp) = (a.group_id.clone(), a.sdp);
            check_sdp_len(&sdp)?;
            calls.group_signal(&me, &a.group_id, &a.to, |from| CallEvent::GroupAnswer { group_id: g, from, sdp })?
        }
        ClientEvent::GroupCallCandidate(c) => {
            let (g, candidate) = (c.group_id.clone(), c.candidate);
            calls.group_signal(&me, &c.group_id, &c.to, |from| CallEvent::GroupCandidate {
                group_id: g,
                from,
                candidate,
            })?
        }
        ClientEvent::MediaState(m) => calls.media_state(&me, m)?,
        _ => return Err(Error::invalid("not a call event")),
    };
    state.hub.deliver_calls(&outs);
    Ok(json!({}))
}

fn check_sdp_len(sdp: &str) -> Result<(), Error> {
    if sdp.is_empty() || sdp.len() > 60 * 1024 {
        return Err(Error::invalid("sdp must be 1 byte to 60 KiB"));
    }
    Ok(())
}

fn arm_ring_timeout(state: &AppState, call_id: quickmeet::ids::CallId) {
    let state = state.clone();
    let after = std::time::Duration::from_secs(state.core.config.ring_timeout_secs);
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(after) => {
                let outs = state.core.calls.ring_timeout(&call_id);
                state.hub.deliver_calls(&outs);
            }
            _ = state.shutdown.cancelled() => {}
        }
    });
}

/// A connection closed: its calls end for the peers, it leaves its group calls.
pub fn disconnected(state: &AppState, conn: &Conn) {
    let still_online = state.hub.is_online(&conn.user);
    let outs: Vec<Out> = state.core.calls.disconnected(&Party { user: conn.user.clone(), conn: conn.id }, still_online);
    state.hub.deliver_calls(&outs);
}
