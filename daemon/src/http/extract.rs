//! Request extractors that answer in the protocol's error shape: JSON bodies with unknown
//! fields refused, query strings, and the authenticated user (Bearer header or cookie).

use super::error::ApiError;
use crate::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use quickmeet::accounts::UserRecord;
use quickmeet::auth::Claims;
use quickmeet::Error;
use serde::de::DeserializeOwned;

/// A JSON body; malformed JSON, wrong types and unknown fields are a 400.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(ApiError(json_error(rej))),
        }
    }
}

fn json_error(rej: JsonRejection) -> Error {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Error::TooLarge("body_too_large", "the request body is too large".into());
    }
    match rej {
        JsonRejection::MissingJsonContentType(_) => {
            Error::Invalid("invalid_content_type", "send the body as JSON with Content-Type: application/json".into())
        }
        JsonRejection::JsonDataError(e) => Error::Invalid(
            "invalid_input",
            e.body_text().replace("Failed to deserialize the JSON body into the target type: ", ""),
        ),
        JsonRejection::JsonSyntaxError(_) => Error::Invalid("invalid_json", "the body is not valid JSON".into()),
        _ => Error::Invalid("invalid_input", "the request body could not be read".into()),
    }
}

/// A query string; bad parameters are a 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError(Error::Invalid(
                "invalid_query",
                e.body_text().replace("Failed to deserialize query string: ", ""),
            ))),
            Err(_) => Err(ApiError(Error::Invalid("invalid_query", "the query string could not be read".into()))),
        }
    }
}

/// The caller, authenticated by `Authorization: Bearer` or the `qm_token` cookie.
pub struct AuthUser {
    pub claims: Claims,
    pub user: UserRecord,
}

/// The token a request carries, header first, then cookie.
pub fn token_of(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return v.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    cookie_token(&parts.headers)
}

/// The `qm_token` cookie, if present.
pub fn cookie_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix("qm_token="))
        .map(str::to_string)
        .next()
}

/// Authenticating also counts the request against the user's API (or upload) rate limit,
/// so a refusal is either the error shape or a 429 with `Retry-After`.
impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token =
            token_of(parts).ok_or_else(|| ApiError(Error::Unauthenticated("log in first".into())).into_response())?;
        let (claims, user) = state.core.accounts.authenticate(&token).map_err(|e| ApiError(e).into_response())?;
        state.limits.check_user(&user.id, parts.uri.path()).map_err(crate::limits::too_many)?;
        Ok(AuthUser { claims, user })
    }
}
