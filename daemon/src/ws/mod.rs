//! The WebSocket gateway at `/ws`: authentication (cookie on the upgrade, or an `auth`
//! first frame within 10 s, else close 4401), then one session loop per connection that
//! reads client frames, writes queued outbound frames, pings every 25 s and drops a
//! connection silent for 60 s. Frames over 64 KiB close the connection with 1009; malformed
//! frames get an `error` (or an error ack) and the connection lives on.

mod calls;
pub mod committed;
pub mod events;
pub mod hub;

use crate::http::extract::cookie_token;
use crate::limits::{retry_secs, Verdict, WsBuckets, WsTier};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use events::{ack_err, ack_ok, ClientEvent, Incoming, ServerEvent, Typing};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use hub::Conn;
use hyper_util::rt::TokioIo;
use quickmeet::accounts::UserRecord;
use quickmeet::auth::Claims;
use quickmeet::chat::{SendRequest, Target};
use quickmeet::Error;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

/// Largest frame or message a client may send.
pub const MAX_FRAME: usize = 64 * 1024;
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(25);
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// Sends of one connection waiting for their commit at once; more waits for these.
const IN_FLIGHT: usize = 256;
/// Queued frames written together before one flush.
const WRITE_BATCH: usize = 64;
/// What tungstenite buffers before writing even without a flush. Only its control frames
/// (pings, pongs, closes) go through it; queued frames are written past it (see
/// [`write_queued`]).
const WRITE_BUFFER: usize = 16 * 1024;
/// tungstenite's read buffer, allocated up front and kept for the connection's life. Client
/// frames are small (a chat send, a ping); a larger one is read in several passes over
/// rustls' decrypted data, which costs a little CPU, never memory per idle connection.
const READ_BUFFER: usize = 256;
/// Close code for a connection dropped by the abuse limits (policy violation).
const CLOSE_POLICY: u16 = 1008;

/// An upgraded connection as the gateway drives it.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Upgrades to a WebSocket, over HTTP/1.1 (`GET` + `Upgrade: websocket`) or HTTP/2
/// (extended `CONNECT`, RFC 8441), with small buffers: a 256-byte read buffer (it grows for
/// a larger frame) and data frames written past tungstenite's write buffer keep an idle
/// connection at a few KiB instead of tungstenite's ~134 KiB default.
///
/// The handshake is done here rather than by axum's `WebSocketUpgrade` because the
/// greeting and the queued frames are written to the raw stream (see [`greet`]).
pub async fn upgrade(State(state): State<AppState>, mut req: Request) -> Response {
    let accept = match check_handshake(&req) {
        Ok(accept) => accept,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (StatusCode::UPGRADE_REQUIRED, "this connection cannot be upgraded to a WebSocket").into_response();
    };
    let pre = cookie_token(req.headers()).and_then(|t| state.core.accounts.authenticate(&t).ok()).map(Box::new);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME));
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        run(state, ws, pre).await;
    });
    match accept {
        Some(accept) => Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
            .header(header::UPGRADE, HeaderValue::from_static("websocket"))
            .header(header::SEC_WEBSOCKET_ACCEPT, accept)
            .body(Body::empty())
            .unwrap_or_default(),
        None => StatusCode::OK.into_response(),
    }
}

/// Checks a WebSocket handshake request; answers the `Sec-WebSocket-Accept` value for
/// HTTP/1.1 (none for HTTP/2), or the refusal to send.
fn check_handshake(req: &Request) -> Result<Option<String>, (StatusCode, &'static str)> {
    let refuse = |status: StatusCode, why: &'static str| Err((status, why));
    let headers = req.headers();
    let accept = if req.version() <= Version::HTTP_11 {
        if req.method() != Method::GET {
            return refuse(StatusCode::METHOD_NOT_ALLOWED, "WebSocket upgrades use GET");
        }
        if !header_has_token(headers, header::CONNECTION, "upgrade") {
            return refuse(StatusCode::BAD_REQUEST, "Connection header did not include 'upgrade'");
        }
        if !header_has_token(headers, header::UPGRADE, "websocket") {
            return refuse(StatusCode::BAD_REQUEST, "Upgrade header did not include 'websocket'");
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
            return refuse(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key header missing");
        };
        Some(accept_key(key.as_bytes()))
    } else {
        if req.method() != Method::CONNECT {
            return refuse(StatusCode::METHOD_NOT_ALLOWED, "HTTP/2 WebSocket upgrades use CONNECT");
        }
        let protocol = req.extensions().get::<hyper::ext::Protocol>();
        if protocol.is_none_or(|p| p.as_str() != "websocket") {
            return refuse(StatusCode::BAD_REQUEST, ":protocol pseudo-header missing or not 'websocket'");
        }
        None
    };
    if headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        return refuse(StatusCode::BAD_REQUEST, "Sec-WebSocket-Version header did not include '13'");
    }
    Ok(accept)
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
}

/// `Sec-WebSocket-Accept`: base64(SHA-1(key + the RFC 6455 GUID)).
fn accept_key(key: &[u8]) -> String {
    use base64::Engine as _;
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(key);
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from_static(reason) }))
}

fn is_too_big(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Capacity(_))
}

async fn authenticate<R>(state: &AppState, stream: &mut R) -> Option<(Claims, UserRecord)>
where
    R: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    loop {
        let msg = tokio::time::timeout_at(deadline, stream.next()).await.ok()??.ok()?;
        match msg {
            Message::Text(t) => {
                return match serde_json::from_str::<Incoming>(&t) {
                    Ok(Incoming { event: ClientEvent::Auth(a), .. }) => state.core.accounts.authenticate(&a.token).ok(),
                    _ => None,
                };
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            _ => return None,
        }
    }
}

/// One connection from authentication to close.
pub async fn run(state: AppState, mut ws: Socket, pre: Option<Box<(Claims, UserRecord)>>) {
    let Some(conn) = Box::pin(open(&state, &mut ws, pre)).await else { return };
    session(state, Box::new(ws), conn).await
}

/// The life of an open, greeted connection. Generic over the socket's transport so tests
/// can drive it without a network; boxed, so that an idle session's future stays small.
///
/// The session's own future lives as long as the connection, and a future is as large as
/// its largest state, so everything that is only awaited now and then (handling a frame,
/// writing a batch) is boxed: its state is allocated while it runs instead of being
/// reserved in every idle connection. With [`AppState`] a single pointer, that took an idle
/// session's future from ~12 KiB to a few hundred bytes.
pub async fn session<S>(state: AppState, mut ws: Box<WebSocketStream<S>>, conn: Conn)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut buckets = WsBuckets::new(state.limits.ws);
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = state.shutdown.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.send(close_frame(1001, "server shutting down"))).await;
                break;
            }
            _ = conn.woken() => {
                if let Some(frame) = closing_frame(&conn) {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.send(frame)).await;
                    break;
                }
                // A write blocked by a client that does not read must not keep the session
                // from noticing it is being closed. Cut off, it may have left a frame half
                // sent, after which nothing else can be: the connection is dropped as it is.
                let written = tokio::select! {
                    sent = Box::pin(write_queued(&mut ws, &conn)) => sent.is_ok(),
                    _ = conn.closing() => false,
                    _ = state.shutdown.cancelled() => false,
                };
                if !written {
                    break;
                }
                // `closing` consumed the wake-ups of frames queued meanwhile, and of a close.
                conn.rewake();
            }
            msg = ws.next() => match msg {
                None | Some(Ok(Message::Close(_))) => break,
                Some(Err(e)) => {
                    if is_too_big(&e) {
                        let _ = ws.send(close_frame(1009, "frame too large")).await;
                    }
                    break;
                }
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    if Box::pin(handle(&state, &conn, &in_flight, &mut buckets, &text)).await.is_break() {
                        Box::pin(drop_flooder(&mut ws)).await;
                        break;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    last_heard = Instant::now();
                    match gate(&conn, &mut buckets, WsTier::Messages, None) {
                        Gate::Pass => conn.send(error_event("invalid_frame", "frames must be JSON text")),
                        Gate::Refused => {}
                        Gate::Drop => {
                            Box::pin(drop_flooder(&mut ws)).await;
                            break;
                        }
                    }
                }
                // Raw frames never come out of a read; pings are answered by tungstenite.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => last_heard = Instant::now(),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    let _ = ws.send(close_frame(1001, "idle timeout")).await;
                    break;
                }
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    state.hub.unregister(&conn);
    calls::disconnected(&state, &conn);
}

/// Authenticates (unless the upgrade carried a valid cookie), applies the per-account cap,
/// registers the connection with the hub and greets it with `ready` and the online list.
async fn open(state: &AppState, ws: &mut Socket, pre: Option<Box<(Claims, UserRecord)>>) -> Option<Conn> {
    let auth = match pre {
        Some(a) => Some(*a),
        None => authenticate(state, ws).await,
    };
    let Some((claims, user)) = auth else {
        let _ = ws.send(close_frame(4401, "unauthorized")).await;
        return None;
    };
    if state.hub.connections_of(&user.id) >= state.limits.max_ws_per_user {
        let too_many = error_event("rate_limited", "too many open connections for this account; close one first");
        let _ = ws.send(Message::Text(too_many)).await;
        let _ = ws.send(close_frame(CLOSE_POLICY, "too many connections")).await;
        return None;
    }
    let conn = state.hub.register(&user.id, &claims.jti, state.core.config.ws_outbound_queue);
    let ready = ServerEvent::Ready { user: user.public(true) }.to_frame();
    let online = ServerEvent::OnlineList { users: state.hub.online_users() }.to_frame();
    if greet(ws, &[&ready, &online]).await.is_err() {
        state.hub.unregister(&conn);
        return None;
    }
    Some(conn)
}

/// Writes the greeting frames straight to the stream, past tungstenite. Its write buffer
/// keeps the capacity of the largest frame it ever wrote for the life of the connection,
/// and the online list grows with everyone online (~39 bytes each): written through
/// tungstenite, 500 people online cost every connection ~20 KiB for as long as it is open.
async fn greet(ws: &mut Socket, frames: &[&str]) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    for text in frames {
        push_text_frame(&mut bytes, text);
    }
    write_raw(ws, &bytes).await
}

/// Writes whole frames straight to the transport, once nothing of tungstenite's (a pong
/// to a ping) is half-written.
async fn write_raw<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    bytes: &[u8],
) -> std::io::Result<()> {
    ws.flush().await.map_err(std::io::Error::other)?;
    let io = ws.get_mut();
    io.write_all(bytes).await?;
    io.flush().await
}

/// Appends an unmasked, final text frame (RFC 6455 §5.2).
fn push_text_frame(out: &mut Vec<u8>, text: &str) {
    let len = text.len();
    out.push(0x81);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(text.as_bytes());
}

/// The close frame for a connection the hub asked to close, if it did.
fn closing_frame(conn: &Conn) -> Option<Message> {
    match conn.close_code() {
        0 => None,
        hub::CLOSE_TOO_SLOW => Some(close_frame(hub::CLOSE_TOO_SLOW, "too slow to keep up")),
        code => Some(close_frame(code, "unauthorized")),
    }
}

/// Writes everything queued, [`WRITE_BATCH`] frames at a time with one write and flush
/// each: under fan-out a burst of frames becomes one TLS record and one system call. The
/// frames go past tungstenite, whose write buffer would keep the capacity of the largest
/// batch a connection ever received for as long as it stays open; this buffer is freed.
async fn write_queued<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    conn: &Conn,
) -> std::io::Result<()> {
    let mut batch = Vec::new();
    let mut bytes = Vec::new();
    loop {
        conn.take(WRITE_BATCH, &mut batch);
        if batch.is_empty() {
            return Ok(());
        }
        for frame in batch.drain(..) {
            push_text_frame(&mut bytes, frame.as_str());
        }
        write_raw(ws, &bytes).await?;
        bytes.clear();
    }
}

/// Closes a connection dropped by the rate limits with 1008, then reads (and discards)
/// what it still sends for up to a second: closing a TCP socket with unread data resets
/// it, and the client would lose the close frame that tells it why.
async fn drop_flooder<W>(ws: &mut W)
where
    W: Sink<Message> + Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let _ = ws.send(close_frame(CLOSE_POLICY, "rate limited")).await;
    let drain = async {
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

fn error_event(code: &str, message: &str) -> Utf8Bytes {
    ServerEvent::Error { code: code.to_string(), message: message.to_string() }.to_frame().into()
}

/// Replies with an error ack when the frame had a `ref`, else an `error` event.
fn reply_err(conn: &Conn, reference: Option<u64>, e: &Error) {
    let msg = e.public_message();
    match reference {
        Some(r) => conn.send(ack_err(r, e.code(), &msg).into()),
        None => conn.send(error_event(e.code(), &msg)),
    }
}

fn reply_ok(conn: &Conn, reference: Option<u64>, data: &impl serde::Serialize) {
    if let Some(r) = reference {
        conn.send(ack_ok(r, data).into());
    }
}

/// What the rate limits make of a frame.
#[derive(PartialEq, Eq)]
enum Gate {
    Pass,
    /// Refused with a `rate_limited` reply; the frame is not handled.
    Refused,
    /// Far over budget: the connection is dropped.
    Drop,
}

/// Counts a frame against its tier, replying `rate_limited` when it is refused.
fn gate(conn: &Conn, buckets: &mut WsBuckets, tier: WsTier, reference: Option<u64>) -> Gate {
    match buckets.take(tier) {
        Verdict::Allowed => Gate::Pass,
        Verdict::Limited { abusive: true, .. } => {
            tracing::info!(user = %conn.user, ?tier, "dropping a connection far over its rate limit");
            Gate::Drop
        }
        Verdict::Limited { retry_after, .. } => {
            let what = match tier {
                WsTier::Messages => "chat",
                WsTier::Typing => "typing",
                WsTier::Signaling => "signaling",
            };
            let msg = format!("too many {what} frames; try again in {} s", retry_secs(retry_after));
            match reference {
                Some(r) => conn.send(ack_err(r, "rate_limited", &msg).into()),
                None => conn.send(error_event("rate_limited", &msg)),
            }
            Gate::Refused
        }
    }
}

async fn handle(
    state: &AppState,
    conn: &Conn,
    in_flight: &Arc<Semaphore>,
    buckets: &mut WsBuckets,
    text: &str,
) -> ControlFlow<()> {
    let decoded = events::decode(text);
    let (tier, reference) = match &decoded {
        Ok(f) => (f.event.tier(), f.reference),
        Err(bad) => (WsTier::Messages, bad.reference),
    };
    match gate(conn, buckets, tier, reference) {
        Gate::Pass => {}
        Gate::Refused => return ControlFlow::Continue(()),
        Gate::Drop => return ControlFlow::Break(()),
    }
    let frame = match decoded {
        Ok(f) => f,
        Err(bad) => {
            reply_err(conn, bad.reference, &bad.error);
            return ControlFlow::Continue(());
        }
    };
    handle_frame(state, conn, in_flight, frame).await;
    ControlFlow::Continue(())
}

async fn handle_frame(state: &AppState, conn: &Conn, in_flight: &Arc<Semaphore>, frame: Incoming) {
    let reference = frame.reference;
    let me = &conn.user;
    let result: Result<Option<serde_json::Value>, Error> = match frame.event {
        // A client that sends `auth` although its cookie already authenticated the upgrade
        // is fine, as long as the token is for the same account.
        ClientEvent::Auth(a) => match state.core.accounts.authenticate(&a.token) {
            Ok((_, u)) if &u.id == me => Ok(None),
            _ => Err(Error::invalid("this connection is already authenticated as another account")),
        },
        ClientEvent::TypingStart(w) | ClientEvent::TypingStop(w) if w.to.is_some() == w.group_id.is_some() => {
            Err(Error::invalid("give exactly one of to or groupId"))
        }
        ClientEvent::TypingStart(w) => typing(state, conn, true, w),
        ClientEvent::TypingStop(w) => typing(state, conn, false, w),
        ClientEvent::MessageSend(m) => {
            let req = SendRequest { content: m.content, kind: m.kind, file_id: m.file_id, client_id: m.client_id };
            return send(state, conn, in_flight, reference, Target::User(m.to), req).await;
        }
        ClientEvent::MessageGroupSend(m) => {
            let req = SendRequest { content: m.content, kind: m.kind, file_id: m.file_id, client_id: m.client_id };
            return send(state, conn, in_flight, reference, Target::Group(m.group_id), req).await;
        }
        ClientEvent::MessageRead(r) => match (r.user_id, r.group_id) {
            (Some(peer), None) => state.core.chat.mark_dm_read(me, &peer).await.map(|rc| {
                state.hub.announce_dm_read(me, &peer, &rc, Some(conn.id));
                Some(serde_json::json!({"updated": rc.updated, "upTo": rc.up_to}))
            }),
            (None, Some(g)) => state.core.chat.mark_group_read(me, &g).await.map(|rc| {
                state.hub.announce_group_read(me, &g, &rc);
                Some(serde_json::json!({"updated": rc.updated, "upTo": rc.up_to}))
            }),
            _ => Err(Error::invalid("give exactly one of userId or groupId")),
        },
        ClientEvent::Sync(s) => {
            state.core.chat.sync(me, s.since.as_deref()).await.map(|page| serde_json::to_value(page).ok())
        }
        call_event => calls::handle(state, conn, call_event).map(Some),
    };
    match result {
        Ok(data) => reply_ok(conn, reference, &data.unwrap_or_else(|| serde_json::json!({}))),
        Err(e) => reply_err(conn, reference, &e),
    }
}

fn typing(state: &AppState, conn: &Conn, start: bool, w: events::Where) -> Result<Option<serde_json::Value>, Error> {
    if let Some(to) = &w.to {
        if !state.core.accounts.exists(to) || to == &conn.user {
            return Err(Error::NotFound("user"));
        }
    }
    if let Some(g) = &w.group_id {
        state.core.groups.get_as_member(g, &conn.user)?;
    }
    state.hub.relay_typing(start, Typing { from: conn.user.clone(), to: w.to, group_id: w.group_id });
    Ok(None)
}

/// Queues a send in order; its ack and delivery go out from [`committed`] once the message
/// is durable.
async fn send(
    state: &AppState,
    conn: &Conn,
    in_flight: &Arc<Semaphore>,
    reference: Option<u64>,
    target: Target,
    req: SendRequest,
) {
    let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
    let (committed, c) = (state.committed.clone(), conn.clone());
    let then = move |result| committed.push(committed::Outcome { conn: c, reference, permit, result });
    if let Err(e) = state.core.chat.submit_then(&conn.user, target, req, then).await {
        reply_err(conn, reference, &e);
    }
}
