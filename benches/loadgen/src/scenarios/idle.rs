//! Idle connections: N authenticated WebSockets kept open; the daemon's RSS per
//! connection from /proc/<pid>/status.

use crate::client::{Daemon, Ws};

pub struct IdleResult {
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
}

impl IdleResult {
    pub fn per_connection_kib(&self) -> f64 {
        (self.rss_after_kib.saturating_sub(self.rss_before_kib)) as f64 / self.connections.max(1) as f64
    }
}

/// Opens `n` connections spread over `users` accounts and measures RSS.
pub async fn run(d: &Daemon, n: usize, users: usize) -> anyhow::Result<(IdleResult, Vec<Ws>)> {
    let mut tokens = Vec::new();
    for u in 0..users {
        tokens.push(d.signup(&format!("idle{u}")).await?.0);
    }
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
    Ok((IdleResult { connections: sockets.len(), rss_before_kib, rss_after_kib: d.rss_kib() }, sockets))
}
