//! Login burst: 20 simultaneous logins (argon2id each) while chat traffic runs; their
//! latency, and the chat ack p99 before and during the burst.

use crate::client::Daemon;
use crate::stats::Samples;
use std::time::{Duration, Instant};

pub struct BurstResult {
    pub logins: Samples,
    pub chat_before: Samples,
    pub chat_during: Samples,
}

pub async fn run(d: &Daemon, logins: usize) -> anyhow::Result<BurstResult> {
    for i in 0..logins {
        d.signup(&format!("burst{i}")).await?;
    }
    let pairs = super::chat::connect_pairs(d, 10, "bc").await?;
    // Background chat at a steady pace: 10 senders, one message each 10 ms.
    let epoch = Instant::now();
    let mut chat_tasks = Vec::new();
    for (sender, receiver, to) in pairs {
        drop(receiver);
        chat_tasks.push(tokio::spawn(paced(sender, to, epoch)));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let burst_start = epoch.elapsed();
    let mut tasks = Vec::new();
    for i in 0..logins {
        let http = d.http.clone();
        let url = d.url("/api/auth/login");
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = http
                .post(url)
                .json(&serde_json::json!({"username": format!("burst{i}"), "password": "loadgen-password"}))
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "login failed: {}", r.status());
            Ok::<_, anyhow::Error>(t.elapsed())
        }));
    }
    let mut login_lat = Vec::new();
    for t in tasks {
        login_lat.push(t.await??);
    }
    let burst_end = epoch.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut before = Vec::new();
    let mut during = Vec::new();
    // Each paced sender stops by itself after 10 s and hands back its samples.
    for t in chat_tasks {
        if let Ok(Ok(samples)) = t.await {
            for (at, lat) in samples {
                if at < burst_start {
                    before.push(lat);
                } else if at <= burst_end {
                    during.push(lat);
                }
            }
        }
    }
    let mut r =
        BurstResult { logins: Samples::default(), chat_before: Samples::default(), chat_during: Samples::default() };
    r.logins.extend(login_lat);
    r.chat_before.extend(before);
    r.chat_during.extend(during);
    Ok(r)
}

/// Sends one message every 10 ms, waiting for each ack; records (send time, ack latency).
/// Runs until aborted, so the samples are shared through a channel-free Arc.
async fn paced(mut ws: crate::client::Ws, to: String, epoch: Instant) -> anyhow::Result<Vec<(Duration, Duration)>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = samples.clone();
    let work = async move {
        let mut n = 0u64;
        loop {
            n += 1;
            let at = epoch.elapsed();
            let t = Instant::now();
            let f = serde_json::json!({"type": "message:send", "ref": n, "data": {"to": to, "content": "paced"}});
            ws.send(Message::Text(f.to_string().into())).await?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(x))) if x.contains("\"ack\"") => break,
                    Some(Ok(_)) => {}
                    _ => anyhow::bail!("closed"),
                }
            }
            samples.lock().unwrap().push((at, t.elapsed()));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        #[allow(unreachable_code)]
        Ok::<_, anyhow::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), work).await;
    let v = out.lock().unwrap().clone();
    Ok(v)
}
