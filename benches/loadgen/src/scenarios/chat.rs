//! Durable 1-to-1 chat: P pairs, each sender to its own partner, closed loop with a
//! window. Measures acked messages/s, ack latency, and send→receive latency at the
//! partner's socket.

use crate::client::{Daemon, Ws};
use crate::stats::Samples;
use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub struct ChatResult {
    pub count: usize,
    pub elapsed: Duration,
    pub ack: Samples,
    pub deliver: Samples,
}

impl ChatResult {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

/// Signs up `pairs` sender/receiver pairs and connects them.
pub async fn connect_pairs(d: &Daemon, pairs: usize, tag: &str) -> anyhow::Result<Vec<(Ws, Ws, String)>> {
    let mut out = Vec::new();
    for i in 0..pairs {
        let (ta, _) = d.signup(&format!("{tag}s{i}")).await?;
        let (tb, b) = d.signup(&format!("{tag}r{i}")).await?;
        out.push((d.ws(&ta).await?, d.ws(&tb).await?, b));
    }
    Ok(out)
}

/// How senders make their `clientId`s. The daemon indexes (sender, clientId), so the
/// order of one sender's keys decides how many index pages each commit rewrites.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum ClientIds {
    /// As the web client makes them: the UUIDv7 layout, creation time in milliseconds
    /// first, so one sender's keys sort in the order sent.
    #[default]
    Time,
    /// Random (UUIDv4), as a client using `crypto.randomUUID()` would send.
    Random,
}

/// One sender's `clientId`s.
struct IdMaker {
    kind: ClientIds,
    state: u64,
}

impl IdMaker {
    fn new(kind: ClientIds, sender: &str) -> IdMaker {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        IdMaker { kind, state: fnv(sender) ^ nanos as u64 }
    }

    /// splitmix64
    fn random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    fn next(&mut self) -> String {
        let (r, lo) = (self.random(), self.random());
        let hi = match self.kind {
            ClientIds::Time => {
                let ms =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
                ((ms as u64) << 16) | 0x7000 | (r & 0x0fff)
            }
            ClientIds::Random => (r & !0xf000) | 0x4000,
        };
        let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// How senders pace themselves.
#[derive(Clone, Copy)]
pub enum Pace {
    /// Closed loop: the next message goes when fewer than this many are unacknowledged.
    Window(usize),
    /// Open loop: each sender sends at this many messages per second whatever the acks.
    Rate(f64),
}

/// Runs the chat load over connected pairs.
pub async fn run(
    pairs: Vec<(Ws, Ws, String)>,
    per_sender: usize,
    pace: Pace,
    ids: ClientIds,
) -> anyhow::Result<ChatResult> {
    let epoch = Instant::now();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (sender, receiver, to) in pairs {
        match pace {
            Pace::Window(w) => tasks.push(tokio::spawn(send_closed_loop(sender, to, per_sender, w, ids, epoch))),
            Pace::Rate(r) => tasks.push(tokio::spawn(send_open_loop(sender, to, per_sender, r, ids, epoch))),
        }
        tasks.push(tokio::spawn(receive(receiver, per_sender, epoch)));
    }
    let mut ack = Samples::default();
    let mut deliver = Samples::default();
    let mut count = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        let s = t.await??;
        if i % 2 == 0 {
            count += s.len();
            ack.extend(s);
        } else {
            deliver.extend(s);
        }
    }
    Ok(ChatResult { count, elapsed: start.elapsed(), ack, deliver })
}

/// Sends `count` messages to `to`, keeping `window` unacknowledged at most; returns the
/// ack latency of each. The content carries the send time for the receiver.
pub async fn send_closed_loop(
    mut ws: Ws,
    to: String,
    count: usize,
    window: usize,
    ids: ClientIds,
    epoch: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let mut ids = IdMaker::new(ids, &to);
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(count);
    let mut next = 0usize;
    while latencies.len() < count {
        while next < count && sent_at.len() < window {
            let r = next as u64 + 1;
            let frame = send_frame(r, &to, epoch, &mut ids);
            sent_at.insert(r, Instant::now());
            ws.send(Message::Text(frame.into())).await?;
            next += 1;
        }
        if let Some(at) = next_ack(&mut ws).await?.and_then(|r| sent_at.remove(&r)) {
            latencies.push(at.elapsed());
        }
    }
    Ok(latencies)
}

/// Sends `count` messages to `to` at `rate` per second on a fixed schedule, whether or
/// not earlier ones were acked, and returns each ack's latency measured from the time the
/// message was *due*, so a stall shows up in the figures instead of slowing the load
/// (no coordinated omission).
pub async fn send_open_loop(
    ws: Ws,
    to: String,
    count: usize,
    rate: f64,
    ids: ClientIds,
    epoch: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let mut ids = IdMaker::new(ids, &to);
    let period = Duration::from_secs_f64(1.0 / rate);
    let (mut sink, mut stream) = ws.split();
    // Senders start spread over one period, not all on the same tick.
    let start = Instant::now() + period.mul_f64(rand_fraction(&to));
    let writer = tokio::spawn(async move {
        for i in 0..count {
            let due = start + period * i as u32;
            tokio::time::sleep_until(due.into()).await;
            let frame = send_frame(i as u64, &to, epoch, &mut ids);
            sink.send(Message::Text(frame.into())).await?;
        }
        anyhow::Ok(())
    });
    let mut latencies = Vec::with_capacity(count);
    while latencies.len() < count {
        if let Some(i) = next_ack(&mut stream).await? {
            latencies.push((start + period * i as u32).elapsed());
        }
    }
    writer.await??;
    Ok(latencies)
}

/// Reads the next frame: the `ref` of a successful ack, `None` for any other frame; an
/// ack with an error ends the run.
async fn next_ack<S>(stream: &mut S) -> anyhow::Result<Option<u64>>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let msg = tokio::time::timeout(Duration::from_secs(30), stream.next()).await.context("ack timeout")?;
    let Some(Message::Text(t)) = msg.transpose()? else { return Ok(None) };
    let ack: Ack = serde_json::from_str(&t).with_context(|| format!("not a server frame: {t}"))?;
    if ack.kind != "ack" {
        return Ok(None);
    }
    if ack.error.is_some() {
        bail!("send refused: {t}");
    }
    Ok(ack.reference)
}

/// What the sender reads of each frame. Borrowed and typed, so the load generator's own
/// parsing (the message in an ack is skipped, not built) costs little next to the
/// daemon's work, as the relay baseline's `"ack"` does.
#[derive(serde::Deserialize)]
struct Ack<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(rename = "ref")]
    reference: Option<u64>,
    error: Option<serde::de::IgnoredAny>,
}

/// A `message:send` frame whose content carries its send time for the receiver. `to` is
/// a user id (a UUID), so it goes in without escaping.
fn send_frame(reference: u64, to: &str, epoch: Instant, ids: &mut IdMaker) -> String {
    let micros = epoch.elapsed().as_micros();
    let client_id = ids.next();
    format!(
        r#"{{"type":"message:send","ref":{reference},"data":{{"to":"{to}","content":"t{micros}","clientId":"{client_id}"}}}}"#
    )
}

/// A stable fraction in [0, 1) derived from a name, to stagger senders.
fn rand_fraction(name: &str) -> f64 {
    (fnv(name) % 1000) as f64 / 1000.0
}

/// Receives `count` messages and returns each one's send→receive latency.
async fn receive(mut ws: Ws, count: usize, epoch: Instant) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.context("receive timeout")?;
        if let Some(Message::Text(t)) = msg.transpose()? {
            if let Some(sent) = sent_micros(&t) {
                let now = epoch.elapsed().as_micros();
                out.push(Duration::from_micros(now.saturating_sub(sent) as u64));
            }
        }
    }
    Ok(out)
}

/// The send time in a `message:receive` (or baseline) frame's content `t<micros>`.
pub fn sent_micros(frame: &str) -> Option<u128> {
    let key = "\"content\":\"t";
    let i = frame.find(key)?;
    let digits: String = frame[i + key.len()..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}
