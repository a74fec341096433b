//! `/api/users/*`: listing, presence, search, one user, and the caller's profile.

use super::auth::UserResponse;
use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiQuery, AuthUser};
use crate::AppState;
use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use quickmeet::accounts::User;
use quickmeet::ids::UserId;
use quickmeet::Error;
use serde::{Deserialize, Serialize};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(list))
        .route("/api/users/active", get(active))
        .route("/api/users/search", get(search))
        .route("/api/users/profile", put(profile))
        .route("/api/users/{id}", get(one))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UsersResponse {
    users: Vec<User>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// 1–64 characters, matched against username and display name.
    #[param(min_length = 1, max_length = 64)]
    q: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileRequest {
    display_name: Option<String>,
    avatar_color: Option<String>,
}

/// Every user.
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UsersResponse), (status = 401, body = ErrorBody)))]
async fn list(State(state): State<AppState>, _auth: AuthUser) -> Json<UsersResponse> {
    let users = state.core.accounts.list().iter().map(|r| state.public_user(r)).collect();
    Json(UsersResponse { users })
}

/// Users online now.
#[utoipa::path(get, path = "/api/users/active", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UsersResponse), (status = 401, body = ErrorBody)))]
async fn active(State(state): State<AppState>, _auth: AuthUser) -> Json<UsersResponse> {
    let users =
        state.hub.online_users().iter().filter_map(|id| state.core.accounts.get(id)).map(|r| r.public(true)).collect();
    Json(UsersResponse { users })
}

/// Users whose username or display name contains `q` (case-insensitive).
#[utoipa::path(get, path = "/api/users/search", tag = "users", params(SearchQuery), security(("bearer" = [])),
    responses((status = 200, body = UsersResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn search(
    State(state): State<AppState>,
    _auth: AuthUser,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<UsersResponse>> {
    let users = state.core.accounts.search(&q.q)?.iter().map(|r| state.public_user(r)).collect();
    Ok(Json(UsersResponse { users }))
}

/// One user.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn one(State(state): State<AppState>, _auth: AuthUser, Path(id): Path<String>) -> ApiResult<Json<UserResponse>> {
    let rec = state.core.accounts.get(&UserId(id)).ok_or(Error::NotFound("user"))?;
    Ok(Json(UserResponse { user: state.public_user(&rec) }))
}

/// Change the caller's display name and/or avatar colour.
#[utoipa::path(put, path = "/api/users/profile", tag = "users", request_body = ProfileRequest, security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn profile(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<ProfileRequest>,
) -> ApiResult<Json<UserResponse>> {
    let rec = state
        .core
        .accounts
        .update_profile(&auth.user.id, req.display_name.as_deref(), req.avatar_color.as_deref())
        .await?;
    Ok(Json(UserResponse { user: state.public_user(&rec) }))
}
