//! `GET /api/ice-servers`: STUN and TURN URLs for the address the client reached us on,
//! with TURN credentials that expire after `ttl` seconds. Points at the embedded server,
//! or at an external coturn (`use-auth-secret`) when one is configured.

use super::error::{ApiResult, ErrorBody};
use super::extract::AuthUser;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::routing::get;
use axum::{Json, Router};
use quickmeet::turn_credentials::TurnCredentials;
use quickmeet::Error;
use serde::Serialize;

/// Where clients are sent for ICE.
#[derive(Clone)]
pub enum IceTarget {
    /// No TURN at all (disabled): only host candidates.
    None,
    /// The embedded server on this UDP port of whatever address the client used.
    Embedded { port: u16 },
    /// An external server.
    External { urls: Vec<String> },
}

/// What `/api/ice-servers` hands out.
#[derive(Clone)]
pub struct IceConfig {
    pub target: IceTarget,
    pub creds: TurnCredentials,
    pub ttl_secs: u64,
}

/// One RTCIceServer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IceServer {
    urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IceServers {
    ice_servers: Vec<IceServer>,
    /// Seconds the TURN credentials stay valid.
    ttl: u64,
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/ice-servers", get(ice_servers))
}

/// The host part of the address the client used (Host header or HTTP/2 authority),
/// only if it is a plain name or IP literal we can safely put into a URL.
fn requested_host(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string))?;
    let host = if let Some(rest) = authority.strip_prefix('[') {
        let v6 = rest.split(']').next()?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        format!("[{v6}]")
    } else {
        authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(&authority).to_string()
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    ok.then_some(host)
}

/// STUN and TURN servers with short-lived credentials.
#[utoipa::path(get, path = "/api/ice-servers", tag = "calls", security(("bearer" = [])),
    responses((status = 200, body = IceServers), (status = 401, body = ErrorBody)))]
async fn ice_servers(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Json<IceServers>> {
    let ice = &state.ice;
    let cred = ice.creds.issue(&auth.user.id, quickmeet::clock::unix_now(), ice.ttl_secs);
    let turn = |urls: Vec<String>| IceServer {
        urls,
        username: Some(cred.username.clone()),
        credential: Some(cred.password.clone()),
    };
    let ice_servers = match &ice.target {
        IceTarget::None => Vec::new(),
        IceTarget::Embedded { port } => {
            let host = requested_host(&headers, &uri)
                .ok_or_else(|| Error::invalid("the Host header is missing or malformed"))?;
            vec![
                IceServer { urls: vec![format!("stun:{host}:{port}")], username: None, credential: None },
                turn(vec![format!("turn:{host}:{port}?transport=udp")]),
            ]
        }
        IceTarget::External { urls } => {
            let (stun, turns): (Vec<String>, Vec<String>) = urls.iter().cloned().partition(|u| u.starts_with("stun:"));
            let mut v = Vec::new();
            if !stun.is_empty() {
                v.push(IceServer { urls: stun, username: None, credential: None });
            }
            if !turns.is_empty() {
                v.push(turn(turns));
            }
            v
        }
    };
    Ok(Json(IceServers { ice_servers, ttl: ice.ttl_secs }))
}
