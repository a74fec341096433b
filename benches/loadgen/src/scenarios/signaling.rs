//! Signaling: an established call between two users; the caller renegotiates with an
//! offer of realistic size; latency from sending `call:offer` to the callee reading it.

use crate::client::{wait_for, Daemon};
use crate::stats::Samples;
use futures_util::SinkExt;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub async fn run(d: &Daemon, count: usize) -> anyhow::Result<Samples> {
    let (ta, a) = d.signup("caller").await?;
    let (tb, b) = d.signup("callee").await?;
    let (mut wa, mut wb) = (d.ws(&ta).await?, d.ws(&tb).await?);
    let sdp = format!("v=0\r\n{}", "a=candidate:1 1 udp 2130706431 192.168.1.10 50000 typ host\r\n".repeat(40));
    let offer = |n: usize| json!({"type": "call:offer", "ref": n, "data": {"to": b, "callId": "bench-call", "callType": "video", "sdp": sdp}});
    wa.send(Message::Text(offer(1).to_string().into())).await?;
    wait_for(&mut wb, Duration::from_secs(5), |v| v["type"] == "call:offer").await?;
    let ans = json!({"type": "call:answer", "ref": 1, "data": {"to": a, "callId": "bench-call", "sdp": "v=0 answer"}});
    wb.send(Message::Text(ans.to_string().into())).await?;
    wait_for(&mut wa, Duration::from_secs(5), |v| v["type"] == "call:answer").await?;
    let mut lat = Vec::with_capacity(count);
    for n in 0..count {
        let t = Instant::now();
        wa.send(Message::Text(offer(n + 2).to_string().into())).await?;
        wait_for(&mut wb, Duration::from_secs(5), |v| v["type"] == "call:offer").await?;
        lat.push(t.elapsed());
        // Keep the caller's socket drained of acks.
        wait_for(&mut wa, Duration::from_secs(5), |v| v["type"] == "ack").await?;
    }
    let mut s = Samples::default();
    s.extend(lat);
    Ok(s)
}
