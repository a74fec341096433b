//! Fan-out: groups of G members, one sender per group; every other member receives every
//! message. Measures delivered frames/s and the daemon's CPU use; the same shape through
//! the bare relay gives the baseline.

use super::baseline::Relay;
use crate::client::{Daemon, Ws};
use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub struct FanoutResult {
    pub delivered: u64,
    pub elapsed: Duration,
    pub daemon_cpu: f64,
}

impl FanoutResult {
    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }
}

/// `groups` groups of `members`, `messages` per sender kept `window` in flight.
pub async fn daemon(
    d: &Daemon,
    groups: usize,
    members: usize,
    messages: usize,
    window: usize,
) -> anyhow::Result<FanoutResult> {
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for g in 0..groups {
        let mut tokens = Vec::new();
        let mut ids = Vec::new();
        for m in 0..members {
            let (t, id) = d.signup(&format!("g{g}m{m}")).await?;
            tokens.push(t);
            ids.push(id);
        }
        let v: serde_json::Value = d
            .http
            .post(d.url("/api/groups"))
            .bearer_auth(&tokens[0])
            .json(&json!({"name": format!("group {g}"), "members": ids[1..]}))
            .send()
            .await?
            .json()
            .await?;
        let gid = v["group"]["id"].as_str().context("group create failed")?.to_string();
        senders.push((d.ws(&tokens[0]).await?, gid));
        for t in &tokens[1..] {
            receivers.push(d.ws(t).await?);
        }
    }
    let cpu0 = d.cpu_secs();
    let senders = senders
        .into_iter()
        .map(|(ws, gid)| {
            let frame: Frame = Box::new(move |n| {
                json!({"type": "message:group:send", "ref": n + 1, "data": {"groupId": gid, "content": format!("fan {n}")}})
                    .to_string()
            });
            (ws, frame)
        })
        .collect();
    let is_ack = |t: &str| t.contains("\"ack\"");
    let is_delivery = |t: &str| t.contains("message:group:receive");
    let (delivered, elapsed) = drive(receivers, senders, messages, window, is_ack, is_delivery).await?;
    Ok(FanoutResult { delivered, elapsed, daemon_cpu: (d.cpu_secs() - cpu0) / elapsed.as_secs_f64() })
}

/// The same fan-out through the bare relay.
pub async fn baseline(
    relay: &Relay,
    groups: usize,
    members: usize,
    messages: usize,
    window: usize,
) -> anyhow::Result<FanoutResult> {
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for g in 0..groups as u32 {
        let base = g * members as u32;
        let targets: Vec<String> = (1..members as u32).map(|m| (base + m).to_string()).collect();
        senders.push((relay.connect(base).await?, targets.join(",")));
        for m in 1..members as u32 {
            receivers.push(relay.connect(base + m).await?);
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let senders = senders
        .into_iter()
        .map(|(ws, targets)| {
            let frame: Frame =
                Box::new(move |n| format!("{targets}|{{\"type\":\"message:group:receive\",\"data\":{{\"n\":{n}}}}}"));
            (ws, frame)
        })
        .collect();
    let (delivered, elapsed) = drive(receivers, senders, messages, window, |t| t == "ack", |_| true).await?;
    Ok(FanoutResult { delivered, elapsed, daemon_cpu: 0.0 })
}

/// The `n`th frame a sender sends.
type Frame = Box<dyn Fn(usize) -> String + Send>;

/// One fan-out run, the same for the daemon and the relay: every sender keeps `window`
/// frames in flight until `messages` are acked; every receiver counts its deliveries.
/// Returns the frames delivered and the time taken.
async fn drive(
    receivers: Vec<Ws>,
    senders: Vec<(Ws, Frame)>,
    messages: usize,
    window: usize,
    is_ack: fn(&str) -> bool,
    is_delivery: fn(&str) -> bool,
) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut r in receivers {
        tasks.push(tokio::spawn(async move {
            let mut got = 0u64;
            while got < messages as u64 {
                match tokio::time::timeout(Duration::from_secs(60), r.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) if is_delivery(&t) => got += 1,
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            got
        }));
    }
    for (mut s, frame) in senders {
        tasks.push(tokio::spawn(async move {
            let (mut sent, mut acked, mut inflight) = (0usize, 0usize, 0usize);
            while acked < messages {
                while sent < messages && inflight < window {
                    if s.send(Message::Text(frame(sent).into())).await.is_err() {
                        return 0;
                    }
                    sent += 1;
                    inflight += 1;
                }
                match tokio::time::timeout(Duration::from_secs(60), s.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) if is_ack(&t) => {
                        inflight -= 1;
                        acked += 1;
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => return 0,
                }
            }
            0
        }));
    }
    let mut delivered = 0;
    for t in tasks {
        delivered += t.await?;
    }
    Ok((delivered, start.elapsed()))
}
