//! The REST API: one `router()` per domain, merged here with health, the OpenAPI
//! document, the WebSocket endpoint and the browser UI, under one set of limits and
//! security headers.

pub mod auth;
pub mod error;
pub mod extract;
pub mod files;
pub mod groups;
pub mod ice;
pub mod messages;
pub mod range;
pub mod users;

use crate::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::{Json, Router};
use error::ApiError;
use serde::Serialize;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    version: &'static str,
}

/// Liveness and version; needs no authentication.
#[utoipa::path(get, path = "/api/health", tag = "health", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok", version: quickmeet::VERSION })
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Quick Meet", description = "REST API of the Quick Meet LAN chat and calling appliance. The WebSocket protocol at /ws is described in docs/protocol.md."),
    paths(
        health,
        auth::signup, auth::login, auth::logout, auth::me,
        users::list, users::active, users::search, users::one, users::profile,
        messages::send_dm, messages::send_group, messages::dm_history, messages::group_history,
        messages::read_dm, messages::read_group, messages::unread,
        groups::create, groups::mine, groups::all, groups::one, groups::join, groups::leave, groups::add_member,
        files::upload, files::upload_multiple, files::download, files::remove,
        ice::ice_servers,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

async fn api_not_found() -> ApiError {
    ApiError(quickmeet::Error::NotFound("route"))
}

/// Content-Security-Policy of the UI and every API answer: no inline script or style.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
media-src 'self' blob:; connect-src 'self' wss:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The whole application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(
            auth::router().route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::limits::auth_guard)),
        )
        .merge(users::router())
        .merge(messages::router())
        .merge(groups::router())
        .merge(ice::router())
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(openapi))
        .route("/api/{*rest}", any(api_not_found))
        .layer(DefaultBodyLimit::max(state.core.config.max_json_body));
    // Uploads stay outside the JSON body limit above: the files router sets its own.
    let files = files::router(&state.core.config);
    Router::new()
        .merge(api)
        .merge(files)
        .route("/ws", any(crate::ws::upgrade))
        .merge(crate::assets::router())
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
        .with_state(state)
}
