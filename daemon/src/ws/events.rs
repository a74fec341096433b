//! The WebSocket protocol as types: one `#[serde(tag = "type", content = "data")]` enum per
//! direction. Frames are `{"type", "data", "ref"?}`; replies to a `ref` are acks, built by
//! [`ack_ok`] and [`ack_err`].

use crate::limits::WsTier;
use quickmeet::accounts::User;
use quickmeet::calls::{CallType, MediaState};
use quickmeet::chat::{Kind, Message};
use quickmeet::ids::{CallId, FileId, GroupId, MessageId, UserId};
use serde::{Deserialize, Serialize};

/// `{"to"}` or `{"groupId"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Where {
    pub to: Option<UserId>,
    pub group_id: Option<GroupId>,
}

/// `message:send` data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SendDm {
    pub to: UserId,
    #[serde(default)]
    pub content: String,
    pub kind: Option<Kind>,
    pub file_id: Option<FileId>,
    pub client_id: Option<String>,
}

/// `message:group:send` data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SendGroup {
    pub group_id: GroupId,
    #[serde(default)]
    pub content: String,
    pub kind: Option<Kind>,
    pub file_id: Option<FileId>,
    pub client_id: Option<String>,
}

/// `message:read` data: `{"userId"}` or `{"groupId"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReadMark {
    pub user_id: Option<UserId>,
    pub group_id: Option<GroupId>,
}

/// `sync` data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sync {
    pub since: Option<String>,
}

/// `auth` data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub token: String,
}

/// `call:offer` data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CallOffer {
    pub to: UserId,
    pub call_id: CallId,
    pub call_type: CallType,
    pub sdp: String,
}

/// `call:answer` data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CallAnswer {
    pub to: UserId,
    pub call_id: CallId,
    pub sdp: String,
}

/// `call:ice-candidate` data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CallCandidate {
    pub to: UserId,
    pub call_id: CallId,
    pub candidate: serde_json::Value,
}

/// `call:reject` and `call:end` data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CallClose {
    pub to: UserId,
    pub call_id: CallId,
    pub reason: Option<String>,
}

/// `group-call:join` / `group-call:leave` data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupCallRef {
    pub group_id: GroupId,
}

/// `group-call:offer` / `group-call:answer` data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupSdp {
    pub group_id: GroupId,
    pub to: UserId,
    pub sdp: String,
}

/// `group-call:ice-candidate` data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupCandidate {
    pub group_id: GroupId,
    pub to: UserId,
    pub candidate: serde_json::Value,
}

/// Everything a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ClientEvent {
    #[serde(rename = "auth")]
    Auth(Auth),
    #[serde(rename = "typing:start")]
    TypingStart(Where),
    #[serde(rename = "typing:stop")]
    TypingStop(Where),
    #[serde(rename = "message:send")]
    MessageSend(SendDm),
    #[serde(rename = "message:group:send")]
    MessageGroupSend(SendGroup),
    #[serde(rename = "message:read")]
    MessageRead(ReadMark),
    #[serde(rename = "sync")]
    Sync(Sync),
    #[serde(rename = "call:offer")]
    CallOffer(CallOffer),
    #[serde(rename = "call:answer")]
    CallAnswer(CallAnswer),
    #[serde(rename = "call:ice-candidate")]
    CallCandidate(CallCandidate),
    #[serde(rename = "call:reject")]
    CallReject(CallClose),
    #[serde(rename = "call:end")]
    CallEnd(CallClose),
    #[serde(rename = "group-call:join")]
    GroupCallJoin(GroupCallRef),
    #[serde(rename = "group-call:leave")]
    GroupCallLeave(GroupCallRef),
    #[serde(rename = "group-call:offer")]
    GroupCallOffer(GroupSdp),
    #[serde(rename = "group-call:answer")]
    GroupCallAnswer(GroupSdp),
    #[serde(rename = "group-call:ice-candidate")]
    GroupCallCandidate(GroupCandidate),
    #[serde(rename = "media:state")]
    MediaState(MediaState),
}

/// A client frame: the event plus its optional `ref`.
#[derive(Debug, Deserialize)]
pub struct Incoming {
    #[serde(flatten)]
    pub event: ClientEvent,
    #[serde(rename = "ref")]
    pub reference: Option<u64>,
}

/// Just the `ref` of a frame that failed to parse, so the error can still be an ack.
#[derive(Deserialize)]
pub struct RefOnly {
    #[serde(rename = "ref")]
    pub reference: Option<u64>,
}

/// `typing:*` as relayed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Typing {
    pub from: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<GroupId>,
}

/// `message:read` as announced.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadNotice {
    pub by: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<GroupId>,
    pub up_to: MessageId,
    pub read_at: String,
}

/// Everything the server sends besides acks.
#[derive(Debug, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum ServerEvent {
    #[serde(rename = "ready")]
    Ready { user: User },
    #[serde(rename = "users:online-list")]
    OnlineList { users: Vec<UserId> },
    #[serde(rename = "user:online")]
    UserOnline {
        #[serde(rename = "userId")]
        user_id: UserId,
    },
    #[serde(rename = "user:offline")]
    UserOffline {
        #[serde(rename = "userId")]
        user_id: UserId,
        #[serde(rename = "lastSeen")]
        last_seen: String,
    },
    #[serde(rename = "typing:start")]
    TypingStart(Typing),
    #[serde(rename = "typing:stop")]
    TypingStop(Typing),
    #[serde(rename = "message:receive")]
    MessageReceive { message: Message },
    #[serde(rename = "message:group:receive")]
    MessageGroupReceive { message: Message },
    #[serde(rename = "message:read")]
    MessageRead(ReadNotice),
    #[serde(rename = "error")]
    Error { code: String, message: String },
}

impl ServerEvent {
    /// The frame text. Serializing these types cannot fail.
    pub fn to_frame(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl ClientEvent {
    /// The rate-limit tier the event counts against.
    pub fn tier(&self) -> WsTier {
        match self {
            ClientEvent::TypingStart(_) | ClientEvent::TypingStop(_) => WsTier::Typing,
            ClientEvent::Auth(_)
            | ClientEvent::MessageSend(_)
            | ClientEvent::MessageGroupSend(_)
            | ClientEvent::MessageRead(_)
            | ClientEvent::Sync(_) => WsTier::Messages,
            ClientEvent::CallOffer(_)
            | ClientEvent::CallAnswer(_)
            | ClientEvent::CallCandidate(_)
            | ClientEvent::CallReject(_)
            | ClientEvent::CallEnd(_)
            | ClientEvent::GroupCallJoin(_)
            | ClientEvent::GroupCallLeave(_)
            | ClientEvent::GroupCallOffer(_)
            | ClientEvent::GroupCallAnswer(_)
            | ClientEvent::GroupCallCandidate(_)
            | ClientEvent::MediaState(_) => WsTier::Signaling,
        }
    }
}

/// A frame that could not be decoded: the `ref` it carried, if any could be read, and the
/// `invalid_frame` error to answer with.
#[derive(Debug)]
pub struct BadFrame {
    pub reference: Option<u64>,
    pub error: quickmeet::Error,
}

/// Decodes one client text frame. Never panics, whatever the input (fuzzed in `fuzz/`).
pub fn decode(text: &str) -> Result<Incoming, BadFrame> {
    serde_json::from_str::<Incoming>(text).map_err(|e| {
        let reference = serde_json::from_str::<RefOnly>(text).ok().and_then(|r| r.reference);
        let detail = if e.to_string().contains("unknown variant") { "unknown event type" } else { "malformed frame" };
        BadFrame { reference, error: quickmeet::Error::Invalid("invalid_frame", format!("{detail}: {e}")) }
    })
}

/// `{"type":"ack","ref":n,"data":…}`, serialized straight from `data` (no `Value` built
/// in between: every acknowledged send goes through here).
pub fn ack_ok(reference: u64, data: &impl Serialize) -> String {
    #[derive(Serialize)]
    struct Ack<'a, T> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(rename = "ref")]
        reference: u64,
        data: &'a T,
    }
    serde_json::to_string(&Ack { kind: "ack", reference, data }).unwrap_or_default()
}

/// `{"type":"ack","ref":n,"data":{"message":…}}`, the ack of a send, around the message's
/// JSON ([`quickmeet::chat::Stored::json`]): what [`ack_ok`] makes of it, without
/// serializing the message again.
pub fn ack_message(reference: u64, message_json: &str) -> String {
    let mut f = String::with_capacity(message_json.len() + 48);
    f.push_str(r#"{"type":"ack","ref":"#);
    f.push_str(&reference.to_string());
    f.push_str(r#","data":{"message":"#);
    f.push_str(message_json);
    f.push_str("}}");
    f
}

/// The `message:receive` (DM) or `message:group:receive` frame of `msg` around its JSON
/// ([`quickmeet::chat::Stored::json`]): what [`ServerEvent::MessageReceive`] and
/// [`ServerEvent::MessageGroupReceive`] make of it, without serializing it again.
pub fn message_frame(msg: &Message, json: &str) -> String {
    let kind = if msg.group_id.is_some() { "message:group:receive" } else { "message:receive" };
    let mut f = String::with_capacity(json.len() + 56);
    f.push_str(r#"{"type":""#);
    f.push_str(kind);
    f.push_str(r#"","data":{"message":"#);
    f.push_str(json);
    f.push_str("}}");
    f
}

/// `{"type":"ack","ref":n,"error":{"code","message"}}`.
pub fn ack_err(reference: u64, code: &str, message: &str) -> String {
    serde_json::json!({"type": "ack", "ref": reference, "error": {"code": code, "message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_carries_its_type_ref_and_data() {
        let v: serde_json::Value = serde_json::from_str(&ack_ok(7, &serde_json::json!({"x": [1, "two"]}))).unwrap();
        assert_eq!(v, serde_json::json!({"type": "ack", "ref": 7, "data": {"x": [1, "two"]}}));
        let v: serde_json::Value = serde_json::from_str(&ack_err(8, "not_found", "no such user")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "ack", "ref": 8, "error": {"code": "not_found", "message": "no such user"}})
        );
    }

    #[test]
    fn a_frame_parses_with_its_ref() {
        let f: Incoming =
            serde_json::from_str(r#"{"type":"message:send","data":{"to":"u2","content":"hi"},"ref":7}"#).unwrap();
        assert_eq!(f.reference, Some(7));
        assert!(matches!(f.event, ClientEvent::MessageSend(SendDm { ref content, .. }) if content == "hi"));
    }

    #[test]
    fn unknown_types_and_fields_are_refused() {
        assert!(serde_json::from_str::<Incoming>(r#"{"type":"nope","data":{}}"#).is_err());
        assert!(serde_json::from_str::<Incoming>(r#"{"type":"sync","data":{"since":"a","x":1}}"#).is_err());
    }

    #[test]
    fn decode_keeps_the_ref_of_a_bad_frame_and_names_unknown_types() {
        let bad = decode(r#"{"type":"nope","data":{},"ref":3}"#).unwrap_err();
        assert_eq!(bad.reference, Some(3));
        assert!(bad.error.to_string().contains("unknown event type"), "{}", bad.error);
        assert_eq!(decode(r#"{"type":"typing:start","data":{"to":"u"}}"#).unwrap().event.tier(), WsTier::Typing);
    }

    #[test]
    fn frames_around_a_message_json_are_the_serialized_events_byte_for_byte() {
        let dm = Message {
            id: MessageId::from("01a2155d-96d6-7194-aebf-2d3f92027a4d"),
            from: UserId::from("u1"),
            to: Some(UserId::from("u2")),
            group_id: None,
            kind: Kind::Text,
            content: "say \"hi\" \\ \u{1F600}\n".into(),
            file: None,
            client_id: Some("c-1".into()),
            created_at: "2026-11-27T00:00:00.000Z".into(),
            read_at: None,
            read_by: None,
        };
        let group = Message { to: None, group_id: Some(GroupId::from("g1")), read_by: Some(vec![]), ..dm.clone() };
        for m in [dm, group] {
            let json = serde_json::to_string(&m).unwrap();
            let event = if m.group_id.is_some() {
                ServerEvent::MessageGroupReceive { message: m.clone() }
            } else {
                ServerEvent::MessageReceive { message: m.clone() }
            };
            assert_eq!(message_frame(&m, &json), event.to_frame());
            #[derive(Serialize)]
            struct Sent<'a> {
                message: &'a Message,
            }
            assert_eq!(ack_message(42, &json), ack_ok(42, &Sent { message: &m }));
        }
    }

    #[test]
    fn server_events_use_the_protocol_names() {
        let e = ServerEvent::UserOffline { user_id: UserId::from("u1"), last_seen: "t".into() };
        assert_eq!(e.to_frame(), r#"{"type":"user:offline","data":{"userId":"u1","lastSeen":"t"}}"#);
    }
}
