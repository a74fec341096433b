//! Idle connections: N authenticated WebSockets kept open; the daemon's RSS per
//! connection from /proc/<pid>/status.

use crate::client::{Daemon, Ws};

pub struct IdleResult {
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// RSS once every connection has received one message of [`MESSAGE_CHARS`] and gone
    /// idle again: what a connection keeps after activity.
    pub rss_after_message_kib: u64,
}

/// The message each account receives before the second reading (within the 10,000
/// characters a message may hold).
pub const MESSAGE_CHARS: usize = 8000;

impl IdleResult {
    pub fn per_connection_kib(&self) -> f64 {
        self.per_connection(self.rss_after_kib)
    }

    pub fn per_connection_after_message_kib(&self) -> f64 {
        self.per_connection(self.rss_after_message_kib)
    }

    fn per_connection(&self, rss_kib: u64) -> f64 {
        (rss_kib.saturating_sub(self.rss_before_kib)) as f64 / self.connections.max(1) as f64
    }
}

/// Opens `n` connections spread over `users` accounts and measures RSS.
pub async fn run(d: &Daemon, n: usize, users: usize) -> anyhow::Result<(IdleResult, Vec<Ws>)> {
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for u in 0..users {
        let (token, id) = d.signup(&format!("idle{u}")).await?;
        tokens.push(token);
        ids.push(id);
    }
    let (sender, _) = d.signup("idle-sender").await?;
    // Settle allocations from signups before the baseline reading.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let rss_before_kib = d.rss_kib();
    let mut sockets = Vec::with_capacity(n);
    let mut pending = Vec::new();
    for i in 0..n {
        let (token, port, tls) = (tokens[i % users].clone(), d.port, d.tls.clone());
        pending.push(tokio::spawn(async move { crate::client::ws_to(port, tls, &token).await }));
        if pending.len() == 64 {
            for p in pending.drain(..) {
                sockets.push(p.await??);
            }
        }
    }
    for p in pending {
        sockets.push(p.await??);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let rss_after_kib = d.rss_kib();
    // One message to each account reaches every one of its connections.
    let content = "x".repeat(MESSAGE_CHARS);
    for id in &ids {
        let r = d
            .http
            .post(d.url("/api/messages"))
            .bearer_auth(&sender)
            .json(&serde_json::json!({"to": id, "content": content}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "message to {id}: {}", r.status());
    }
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let r =
        IdleResult { connections: sockets.len(), rss_before_kib, rss_after_kib, rss_after_message_kib: d.rss_kib() };
    Ok((r, sockets))
}
