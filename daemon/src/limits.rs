//! Abuse limits, in tiers: token buckets keyed by client IP (signups and failed logins,
//! new connections), by user (API requests, uploads) and per WebSocket connection (chat,
//! typing and signaling frames counted apart), plus caps on open connections per IP and
//! WebSockets per user. A bucket holds one minute's worth of tokens, so a normal burst
//! passes and only sustained excess is refused.
//!
//! A small bucket of our own rather than a crate: we need a "peek, then charge only on
//! failure" check for logins, a backoff that grows while an IP keeps hammering, and an
//! "abusive" verdict for connections far over their budget; each is a few lines here.

use crate::http::error::{ErrorBody, ErrorDetail};
use crate::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use quickmeet::config::Config;
use quickmeet::ids::UserId;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest backoff an IP is locked out for after repeated refusals.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Keyed buckets kept before full (idle) ones are dropped.
const PRUNE_AT: usize = 4096;

/// A rate: `per_minute` tokens a minute, at most one minute's worth held.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub per_minute: u32,
    /// Whether repeated refusals lock the key out for exponentially longer.
    pub backoff: bool,
}

impl Rate {
    pub fn per_minute(per_minute: u32) -> Rate {
        Rate { per_minute: per_minute.max(1), backoff: false }
    }

    fn capacity(&self) -> f64 {
        f64::from(self.per_minute)
    }

    fn per_sec(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }
}

/// The answer of a bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    Allowed,
    /// Refused; try again after `retry_after`. `abusive` when the key has been refused
    /// another minute's worth on top of its budget (sustained ~3× over the limit, or a flood).
    Limited {
        retry_after: Duration,
        abusive: bool,
    },
}

/// One token bucket.
#[derive(Clone, Debug)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
    /// Refusals not yet forgiven; drains at the refill rate.
    excess: f64,
    strikes: u32,
    blocked_until: Option<Instant>,
}

impl Bucket {
    /// A full bucket.
    pub fn full(rate: Rate) -> Bucket {
        Bucket { tokens: rate.capacity(), at: Instant::now(), excess: 0.0, strikes: 0, blocked_until: None }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() * rate.per_sec();
        self.at = now;
        self.tokens = (self.tokens + gained).min(rate.capacity());
        self.excess = (self.excess - gained).max(0.0);
        if self.tokens >= rate.capacity() && self.blocked_until.is_none_or(|b| b <= now) {
            self.strikes = 0;
            self.blocked_until = None;
        }
    }

    /// Whether a token is there, without taking it.
    pub fn peek(&mut self, rate: Rate, now: Instant) -> Verdict {
        self.refill(rate, now);
        if let Some(until) = self.blocked_until.filter(|u| *u > now) {
            return self.refuse(rate, until - now);
        }
        if self.tokens >= 1.0 {
            return Verdict::Allowed;
        }
        let mut wait = Duration::from_secs_f64((1.0 - self.tokens) / rate.per_sec());
        if rate.backoff {
            self.strikes = self.strikes.saturating_add(1);
            wait = wait.saturating_mul(1 << self.strikes.min(16)).min(MAX_BACKOFF);
            self.blocked_until = Some(now + wait);
        }
        self.refuse(rate, wait)
    }

    fn refuse(&mut self, rate: Rate, wait: Duration) -> Verdict {
        self.excess += 1.0;
        Verdict::Limited { retry_after: wait, abusive: self.excess >= rate.capacity() }
    }

    /// Takes a token when there is one.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Verdict {
        let v = self.peek(rate, now);
        if v == Verdict::Allowed {
            self.tokens -= 1.0;
        }
        v
    }

    /// Takes a token after the fact (a failed login), even when that empties the bucket.
    pub fn charge(&mut self, rate: Rate, now: Instant) {
        self.refill(rate, now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

/// Buckets by key, created full on first use and forgotten once full again.
pub struct Keyed<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    pub fn new(rate: Rate) -> Keyed<K> {
        Keyed { rate, buckets: Mutex::default() }
    }

    fn with<T>(&self, key: &K, f: impl FnOnce(&mut Bucket, Rate, Instant) -> T) -> T {
        let now = Instant::now();
        let mut map = self.buckets.lock().expect("rate limiter lock");
        if map.len() >= PRUNE_AT {
            let rate = self.rate;
            map.retain(|_, b| {
                b.refill(rate, now);
                b.tokens < rate.capacity() || b.blocked_until.is_some()
            });
        }
        let bucket = map.entry(key.clone()).or_insert_with(|| Bucket::full(self.rate));
        f(bucket, self.rate, now)
    }

    pub fn take(&self, key: &K) -> Verdict {
        self.with(key, Bucket::take)
    }

    pub fn peek(&self, key: &K) -> Verdict {
        self.with(key, Bucket::peek)
    }

    pub fn charge(&self, key: &K) {
        self.with(key, Bucket::charge)
    }
}

/// The three per-connection WebSocket tiers.
#[derive(Clone, Copy, Debug)]
pub struct WsRates {
    pub messages: Rate,
    pub typing: Rate,
    pub signaling: Rate,
}

/// Which WebSocket tier a frame counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsTier {
    Messages,
    Typing,
    Signaling,
}

/// The buckets of one WebSocket connection; owned by its session loop, so no lock.
pub struct WsBuckets {
    rates: WsRates,
    messages: Bucket,
    typing: Bucket,
    signaling: Bucket,
}

impl WsBuckets {
    pub fn new(rates: WsRates) -> WsBuckets {
        WsBuckets {
            rates,
            messages: Bucket::full(rates.messages),
            typing: Bucket::full(rates.typing),
            signaling: Bucket::full(rates.signaling),
        }
    }

    /// Counts one frame of `tier`.
    pub fn take(&mut self, tier: WsTier) -> Verdict {
        let now = Instant::now();
        match tier {
            WsTier::Messages => self.messages.take(self.rates.messages, now),
            WsTier::Typing => self.typing.take(self.rates.typing, now),
            WsTier::Signaling => self.signaling.take(self.rates.signaling, now),
        }
    }
}

/// Every limit of a running daemon, built from its configuration.
pub struct Limits {
    pub auth: Keyed<IpAddr>,
    pub api: Keyed<UserId>,
    pub upload: Keyed<UserId>,
    pub connections: Keyed<IpAddr>,
    pub ws: WsRates,
    pub max_connections_per_ip: usize,
    pub max_ws_per_user: usize,
    pub timeouts: Timeouts,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Timeouts against slow clients.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub handshake: Duration,
    pub header: Duration,
    pub body: Duration,
    pub idle: Duration,
}

/// A slot of one open connection from an IP; freed on drop.
pub struct ConnSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("connection count lock");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    pub fn new(c: &Config) -> Limits {
        let secs = Duration::from_secs;
        Limits {
            auth: Keyed::new(Rate { per_minute: c.rate_auth_per_minute.max(1), backoff: true }),
            api: Keyed::new(Rate::per_minute(c.rate_api_per_minute)),
            upload: Keyed::new(Rate::per_minute(c.rate_upload_per_minute)),
            connections: Keyed::new(Rate::per_minute(c.rate_connections_per_minute)),
            ws: WsRates {
                messages: Rate::per_minute(c.rate_ws_messages_per_minute),
                typing: Rate::per_minute(c.rate_ws_typing_per_minute),
                signaling: Rate::per_minute(c.rate_ws_signaling_per_minute),
            },
            max_connections_per_ip: c.max_connections_per_ip,
            max_ws_per_user: c.max_ws_per_user,
            timeouts: Timeouts {
                handshake: secs(c.timeout_handshake_secs),
                header: secs(c.timeout_header_secs),
                body: secs(c.timeout_body_secs),
                idle: secs(c.timeout_idle_secs),
            },
            open: Arc::default(),
        }
    }

    /// Admits a new TCP connection from `ip`: within its rate of new connections and
    /// under the cap of open ones. The slot is held for the connection's life.
    pub fn admit(&self, ip: IpAddr) -> Option<ConnSlot> {
        if self.connections.take(&ip) != Verdict::Allowed {
            return None;
        }
        let mut open = self.open.lock().expect("connection count lock");
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(ConnSlot { ip, open: self.open.clone() })
    }

    /// Counts an authenticated request of `user` against the API or the upload tier;
    /// refused, it says how long to wait.
    pub fn check_user(&self, user: &UserId, path: &str) -> Result<(), Duration> {
        let tier = if path.starts_with("/api/files/upload") { &self.upload } else { &self.api };
        match tier.take(user) {
            Verdict::Allowed => Ok(()),
            Verdict::Limited { retry_after, .. } => Err(retry_after),
        }
    }
}

/// Whole seconds to tell a client to wait, never 0.
pub fn retry_secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// The 429 answer: `Retry-After` and the protocol's error shape with code `rate_limited`.
pub fn too_many(retry_after: Duration) -> Response {
    let secs = retry_secs(retry_after);
    let body = ErrorBody {
        error: ErrorDetail {
            code: "rate_limited".into(),
            message: format!("too many requests; try again in {secs} s"),
        },
    };
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// Middleware of `/api/auth/*`: signups and failed logins spend the client IP's auth
/// budget; once it is empty every attempt, right or wrong, gets 429 until the backoff
/// ends, so guessing passwords gets slower the longer it goes on.
pub async fn auth_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let (signup, login) = (path == "/api/auth/signup", path == "/api/auth/login");
    if !signup && !login {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(a)| a.ip());
    let limits = &state.limits;
    if let Verdict::Limited { retry_after, .. } = limits.auth.peek(&ip) {
        tracing::info!(%ip, "auth rate limit reached");
        return too_many(retry_after);
    }
    let resp = next.run(req).await;
    if signup || !resp.status().is_success() {
        limits.auth.charge(&ip);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_minutes_worth_then_refuses_with_the_wait_for_one_token() {
        let rate = Rate::per_minute(60);
        let now = Instant::now();
        let mut b = Bucket::full(rate);
        for _ in 0..60 {
            assert_eq!(b.take(rate, now), Verdict::Allowed);
        }
        match b.take(rate, now) {
            Verdict::Limited { retry_after, abusive } => {
                assert!((retry_after.as_secs_f64() - 1.0).abs() < 0.01, "{retry_after:?}");
                assert!(!abusive);
            }
            v => panic!("{v:?}"),
        }
        assert_eq!(b.take(rate, now + Duration::from_secs(1)), Verdict::Allowed);
    }

    #[test]
    fn a_flood_of_another_minutes_worth_is_abusive() {
        let rate = Rate::per_minute(10);
        let now = Instant::now();
        let mut b = Bucket::full(rate);
        let verdicts: Vec<Verdict> = (0..30).map(|_| b.take(rate, now)).collect();
        let abusive = verdicts.iter().position(|v| matches!(v, Verdict::Limited { abusive: true, .. }));
        assert_eq!(abusive, Some(19), "{verdicts:?}");
    }

    #[test]
    fn backoff_doubles_while_the_key_keeps_hammering() {
        let rate = Rate { per_minute: 10, backoff: true };
        let mut now = Instant::now();
        let mut b = Bucket::full(rate);
        let mut waits = Vec::new();
        while waits.len() < 3 {
            match b.peek(rate, now) {
                Verdict::Allowed => b.charge(rate, now),
                Verdict::Limited { retry_after, .. } => {
                    waits.push(retry_after);
                    now += retry_after;
                }
            }
        }
        assert!(waits[1] > waits[0] && waits[2] > waits[1], "{waits:?}");
        assert!(waits.iter().all(|w| *w <= MAX_BACKOFF));
    }

    #[test]
    fn a_full_bucket_forgets_its_strikes() {
        let rate = Rate { per_minute: 10, backoff: true };
        let now = Instant::now();
        let mut b = Bucket::full(rate);
        for _ in 0..10 {
            b.charge(rate, now);
        }
        assert!(matches!(b.peek(rate, now), Verdict::Limited { .. }));
        let later = now + MAX_BACKOFF + Duration::from_secs(120);
        assert_eq!(b.peek(rate, later), Verdict::Allowed);
        assert_eq!(b.strikes, 0);
    }

    #[test]
    fn open_connections_per_ip_are_capped_and_freed_on_drop() {
        let c = Config { max_connections_per_ip: 2, ..Config::default() };
        let limits = Limits::new(&c);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = limits.admit(ip).unwrap();
        let _b = limits.admit(ip).unwrap();
        assert!(limits.admit(ip).is_none());
        assert!(limits.admit("10.0.0.2".parse().unwrap()).is_some());
        drop(a);
        assert!(limits.admit(ip).is_some());
    }
}
