//! The call events the server sends, as one `#[serde(tag = "type", content = "data")]`
//! enum with the protocol's names.

use crate::ids::{CallId, GroupId, UserId};
use serde::{Deserialize, Serialize};

/// Audio-only or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallType {
    Audio,
    Video,
}

/// Mute, camera and screen-share state of one participant (`media:state`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MediaState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<GroupId>,
    pub audio: bool,
    pub video: bool,
    #[serde(default)]
    pub screen: bool,
}

/// Call signaling as the server relays it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum CallEvent {
    #[serde(rename = "call:offer", rename_all = "camelCase")]
    Offer { from: UserId, call_id: CallId, call_type: CallType, sdp: String },
    #[serde(rename = "call:answer", rename_all = "camelCase")]
    Answer { from: UserId, call_id: CallId, sdp: String },
    #[serde(rename = "call:ice-candidate", rename_all = "camelCase")]
    Candidate { from: UserId, call_id: CallId, candidate: serde_json::Value },
    #[serde(rename = "call:reject", rename_all = "camelCase")]
    Reject {
        from: UserId,
        call_id: CallId,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    #[serde(rename = "call:end", rename_all = "camelCase")]
    End { from: UserId, call_id: CallId },
    #[serde(rename = "group-call:existing-peers", rename_all = "camelCase")]
    ExistingPeers { group_id: GroupId, peers: Vec<UserId> },
    #[serde(rename = "group-call:peer-joined", rename_all = "camelCase")]
    PeerJoined { group_id: GroupId, user_id: UserId },
    #[serde(rename = "group-call:peer-left", rename_all = "camelCase")]
    PeerLeft { group_id: GroupId, user_id: UserId },
    #[serde(rename = "group-call:offer", rename_all = "camelCase")]
    GroupOffer { group_id: GroupId, from: UserId, sdp: String },
    #[serde(rename = "group-call:answer", rename_all = "camelCase")]
    GroupAnswer { group_id: GroupId, from: UserId, sdp: String },
    #[serde(rename = "group-call:ice-candidate", rename_all = "camelCase")]
    GroupCandidate { group_id: GroupId, from: UserId, candidate: serde_json::Value },
    #[serde(rename = "media:state")]
    Media {
        from: UserId,
        #[serde(flatten)]
        state: MediaState,
    },
}
