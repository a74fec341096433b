//! `/api/groups/*`: create, list mine and all, show, join, leave, add a member.

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, AuthUser};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use quickmeet::groups::Group;
use quickmeet::ids::{GroupId, UserId};
use serde::{Deserialize, Serialize};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/groups", post(create).get(mine))
        .route("/api/groups/all", get(all))
        .route("/api/groups/{id}", get(one))
        .route("/api/groups/{id}/join", post(join))
        .route("/api/groups/{id}/leave", post(leave))
        .route("/api/groups/{id}/add-member", post(add_member))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    /// 1–64 visible characters (surrounding spaces are trimmed).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*\S[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: String,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    description: Option<String>,
    /// Existing users' ids; the creator is added as admin.
    #[schema(max_items = 999)]
    members: Option<Vec<UserId>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AddMemberRequest {
    user_id: UserId,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GroupResponse {
    group: Group,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GroupsResponse {
    groups: Vec<Group>,
}

/// Create a group; the creator is its admin and a member.
#[utoipa::path(post, path = "/api/groups", tag = "groups", request_body = CreateGroupRequest, security(("bearer" = [])),
    responses((status = 201, body = GroupResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(r): ApiJson<CreateGroupRequest>,
) -> ApiResult<(StatusCode, Json<GroupResponse>)> {
    let members = r.members.unwrap_or_default();
    let group = state.core.groups.create(&auth.user.id, &r.name, r.description.as_deref(), &members).await?;
    Ok((StatusCode::CREATED, Json(GroupResponse { group })))
}

/// The caller's groups.
#[utoipa::path(get, path = "/api/groups", tag = "groups", security(("bearer" = [])),
    responses((status = 200, body = GroupsResponse), (status = 401, body = ErrorBody)))]
async fn mine(State(state): State<AppState>, auth: AuthUser) -> Json<GroupsResponse> {
    Json(GroupsResponse { groups: state.core.groups.of_user(&auth.user.id) })
}

/// Every group, for browsing and joining.
#[utoipa::path(get, path = "/api/groups/all", tag = "groups", security(("bearer" = [])),
    responses((status = 200, body = GroupsResponse), (status = 401, body = ErrorBody)))]
async fn all(State(state): State<AppState>, _auth: AuthUser) -> Json<GroupsResponse> {
    Json(GroupsResponse { groups: state.core.groups.all() })
}

/// One group.
#[utoipa::path(get, path = "/api/groups/{id}", tag = "groups", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = GroupResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn one(State(state): State<AppState>, _auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<GroupResponse>> {
    Ok(Json(GroupResponse { group: state.core.groups.get(&GroupId(id))? }))
}

/// Join a group.
#[utoipa::path(post, path = "/api/groups/{id}/join", tag = "groups", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = GroupResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn join(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<GroupResponse>> {
    Ok(Json(GroupResponse { group: state.core.groups.join(&GroupId(id), &auth.user.id).await? }))
}

/// Leave a group; its messages stop reaching the caller at once.
#[utoipa::path(post, path = "/api/groups/{id}/leave", tag = "groups", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = GroupResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn leave(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<GroupResponse>> {
    let group = state.core.groups.leave(&GroupId(id), &auth.user.id).await?;
    state.hub.deliver_calls(&state.core.calls.member_removed(&group.id, &auth.user.id));
    Ok(Json(GroupResponse { group }))
}

/// Add a member (group admin only).
#[utoipa::path(post, path = "/api/groups/{id}/add-member", tag = "groups", params(("id" = String, Path)), request_body = AddMemberRequest, security(("bearer" = [])),
    responses((status = 200, body = GroupResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn add_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<AddMemberRequest>,
) -> ApiResult<Json<GroupResponse>> {
    Ok(Json(GroupResponse { group: state.core.groups.add_member(&GroupId(id), &auth.user.id, &r.user_id).await? }))
}
