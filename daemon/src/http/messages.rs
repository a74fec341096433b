//! `/api/messages/*`: sending (also delivered live over WebSocket), history pages, read
//! marks (also announced as `message:read`) and unread counts.

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiQuery, AuthUser};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use quickmeet::chat::{Kind, Message, Page, SendRequest, Target, Unread};
use quickmeet::ids::{FileId, GroupId, UserId};
use quickmeet::Error;
use serde::{Deserialize, Serialize};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/messages", post(send_dm))
        .route("/api/messages/group", post(send_group))
        .route("/api/messages/unread/count", get(unread))
        .route("/api/messages/read/{user_id}", put(read_dm))
        .route("/api/messages/group/read/{group_id}", put(read_group))
        .route("/api/messages/group/{group_id}", get(group_history))
        .route("/api/messages/{user_id}", get(dm_history))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SendDmRequest {
    to: UserId,
    /// Up to 10,000 characters; required (not blank) for text messages.
    #[serde(default)]
    #[schema(max_length = 10000)]
    content: String,
    kind: Option<Kind>,
    file_id: Option<FileId>,
    /// Idempotency key, 1–64 printable ASCII characters: a repeat from the same sender
    /// returns the first message (200). Time-ordered keys (UUIDv7, as the web client makes)
    /// are cheapest to index; random ones cost the server more under load.
    client_id: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SendGroupRequest {
    group_id: GroupId,
    /// Up to 10,000 characters; required (not blank) for text messages.
    #[serde(default)]
    #[schema(max_length = 10000)]
    content: String,
    kind: Option<Kind>,
    file_id: Option<FileId>,
    /// Idempotency key, 1–64 printable ASCII characters: a repeat from the same sender
    /// returns the first message (200). Time-ordered keys (UUIDv7, as the web client makes)
    /// are cheapest to index; random ones cost the server more under load.
    client_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageResponse {
    message: Message,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UpdatedResponse {
    updated: u64,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Id of the oldest message already shown (exclusive).
    before: Option<String>,
    /// 1–100, default 50.
    limit: Option<String>,
}

impl HistoryQuery {
    fn limit(&self) -> Result<usize, Error> {
        match &self.limit {
            None => Ok(50),
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| Error::Invalid("invalid_limit", "limit must be an integer between 1 and 100".into())),
        }
    }
}

async fn send(
    state: &AppState,
    auth: &AuthUser,
    target: Target,
    req: SendRequest,
) -> ApiResult<(StatusCode, Json<MessageResponse>)> {
    let (message, new) = state.core.chat.send(&auth.user.id, target, req).await?;
    if new {
        state.hub.deliver_message(&message, None);
    }
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(MessageResponse { message })))
}

/// Send a direct message; a repeated `clientId` returns the first message with 200.
#[utoipa::path(post, path = "/api/messages", tag = "messages", request_body = SendDmRequest, security(("bearer" = [])),
    responses((status = 201, body = MessageResponse), (status = 200, body = MessageResponse, description = "clientId seen before"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn send_dm(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(r): ApiJson<SendDmRequest>,
) -> ApiResult<(StatusCode, Json<MessageResponse>)> {
    let req = SendRequest { content: r.content, kind: r.kind, file_id: r.file_id, client_id: r.client_id };
    send(&state, &auth, Target::User(r.to), req).await
}

/// Send a group message (members only).
#[utoipa::path(post, path = "/api/messages/group", tag = "messages", request_body = SendGroupRequest, security(("bearer" = [])),
    responses((status = 201, body = MessageResponse), (status = 200, body = MessageResponse, description = "clientId seen before"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn send_group(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(r): ApiJson<SendGroupRequest>,
) -> ApiResult<(StatusCode, Json<MessageResponse>)> {
    let req = SendRequest { content: r.content, kind: r.kind, file_id: r.file_id, client_id: r.client_id };
    send(&state, &auth, Target::Group(r.group_id), req).await
}

/// A page of the DM with a user: newest first page, oldest→newest within it.
#[utoipa::path(get, path = "/api/messages/{user_id}", tag = "messages", params(("user_id" = String, Path), HistoryQuery), security(("bearer" = [])),
    responses((status = 200, body = Page), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn dm_history(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(user_id): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Page>> {
    let page =
        state.core.chat.history(&auth.user.id, &Target::User(UserId(user_id)), q.before.as_deref(), q.limit()?).await?;
    Ok(Json(page))
}

/// A page of a group's history (members only).
#[utoipa::path(get, path = "/api/messages/group/{group_id}", tag = "messages", params(("group_id" = String, Path), HistoryQuery), security(("bearer" = [])),
    responses((status = 200, body = Page), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn group_history(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(group_id): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Page>> {
    let page = state
        .core
        .chat
        .history(&auth.user.id, &Target::Group(GroupId(group_id)), q.before.as_deref(), q.limit()?)
        .await?;
    Ok(Json(page))
}

/// Mark every message from a user to me as read.
#[utoipa::path(put, path = "/api/messages/read/{user_id}", tag = "messages", params(("user_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = UpdatedResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn read_dm(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(user_id): Path<String>,
) -> ApiResult<Json<UpdatedResponse>> {
    let peer = UserId(user_id);
    let receipt = state.core.chat.mark_dm_read(&auth.user.id, &peer).await?;
    state.hub.announce_dm_read(&auth.user.id, &peer, &receipt, None);
    Ok(Json(UpdatedResponse { updated: receipt.updated }))
}

/// Mark a group read up to now.
#[utoipa::path(put, path = "/api/messages/group/read/{group_id}", tag = "messages", params(("group_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = UpdatedResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn read_group(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(group_id): Path<String>,
) -> ApiResult<Json<UpdatedResponse>> {
    let group = GroupId(group_id);
    let receipt = state.core.chat.mark_group_read(&auth.user.id, &group).await?;
    state.hub.announce_group_read(&auth.user.id, &group, &receipt);
    Ok(Json(UpdatedResponse { updated: receipt.updated }))
}

/// Unread counts per DM peer and per group (zeros omitted).
#[utoipa::path(get, path = "/api/messages/unread/count", tag = "messages", security(("bearer" = [])),
    responses((status = 200, body = Unread), (status = 401, body = ErrorBody)))]
async fn unread(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Json<Unread>> {
    Ok(Json(state.core.chat.unread(&auth.user.id).await?))
}
