//! `/api/auth/*`: signup, login, logout and who-am-I. Login and signup also set the
//! `qm_token` cookie (HttpOnly, Secure, SameSite=Strict) so the browser's WebSocket upgrade
//! is authenticated without putting the token in a URL.

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, AuthUser};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use quickmeet::accounts::User;
use quickmeet::config::Registration;
use quickmeet::Error;
use serde::{Deserialize, Serialize};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/signup", post(signup))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignupRequest {
    /// 3–32 letters, digits, `_`, `.` or `-`.
    #[schema(min_length = 3, max_length = 32, pattern = r"^[A-Za-z0-9_.-]+$")]
    username: String,
    /// 8–256 characters.
    #[schema(min_length = 8, max_length = 256)]
    password: String,
    /// 1–64 visible characters (surrounding spaces are trimmed).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*\S[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    display_name: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthResponse {
    token: String,
    user: User,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    pub user: User,
}

fn with_cookie(state: &AppState, status: StatusCode, token: String, user: User) -> Response {
    let max_age = state.core.config.token_ttl_hours * 3600;
    let cookie = format!("qm_token={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}");
    let mut resp = (status, Json(AuthResponse { token, user })).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Create an account; the first account on an appliance becomes admin.
#[utoipa::path(post, path = "/api/auth/signup", request_body = SignupRequest, tag = "auth",
    responses((status = 201, body = AuthResponse), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "registration is closed"),
              (status = 409, body = ErrorBody, description = "username taken"), (status = 413, body = ErrorBody)))]
async fn signup(State(state): State<AppState>, ApiJson(req): ApiJson<SignupRequest>) -> ApiResult<Response> {
    if state.core.config.registration == Registration::Closed {
        return Err(Error::Forbidden(
            "registration_closed",
            "registration is closed on this appliance; ask an administrator for an account".into(),
        )
        .into());
    }
    let (token, rec) = state.core.accounts.signup(&req.username, &req.password, req.display_name.as_deref()).await?;
    let user = state.public_user(&rec);
    Ok(with_cookie(&state, StatusCode::CREATED, token, user))
}

/// Log in; a wrong username and a wrong password get the same 401.
#[utoipa::path(post, path = "/api/auth/login", request_body = LoginRequest, tag = "auth",
    responses((status = 200, body = AuthResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "account disabled"), (status = 413, body = ErrorBody)))]
async fn login(State(state): State<AppState>, ApiJson(req): ApiJson<LoginRequest>) -> ApiResult<Response> {
    let (token, rec) = state.core.accounts.login(&req.username, &req.password).await?;
    let user = state.public_user(&rec);
    Ok(with_cookie(&state, StatusCode::OK, token, user))
}

/// Revoke the token used for this request, everywhere at once.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "logged out"), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Response> {
    state.core.accounts.logout(&auth.claims).await?;
    state.hub.close_token(&auth.claims.jti);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("qm_token=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(resp)
}

/// The logged-in user.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, auth: AuthUser) -> Json<UserResponse> {
    Json(UserResponse { user: state.public_user(&auth.user) })
}
