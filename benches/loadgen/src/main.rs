//! `quickmeet-loadgen`: starts a real quickmeetd (release build, temp data dir on disk, so
//! every acknowledged message is fsync'd) on loopback and measures it over TLS and
//! WebSocket exactly as clients use it. Bounded in count and time; prints figures.
//!
//! Example: cargo run --release -p quickmeet-loadgen -- chat --senders 1,10,100 --messages 2000

mod client;
mod stats;

use anyhow::Context;
use clap::{Parser, Subcommand};
use client::Daemon;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Load generator for quickmeetd (loopback only)")]
struct Args {
    /// The quickmeetd binary to start [default: target/release/quickmeetd]
    #[arg(long, global = true)]
    daemon: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Durable 1-to-1 messages: each sender sends to its partner and waits for the ack
    /// before the next send (closed loop). Prints acked messages/s and ack latency.
    Chat {
        /// Comma-separated numbers of concurrent senders, one run each.
        #[arg(long, default_value = "1,10,100", value_delimiter = ',')]
        senders: Vec<usize>,
        /// Total messages per run (spread over the senders).
        #[arg(long, default_value_t = 5000)]
        messages: usize,
        /// Messages each sender keeps in flight before waiting for acks.
        #[arg(long, default_value_t = 1)]
        window: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = args.daemon.unwrap_or_else(|| PathBuf::from("target/release/quickmeetd"));
    anyhow::ensure!(
        binary.exists(),
        "{} not found: run `cargo build --release --bin quickmeetd` first",
        binary.display()
    );
    match args.scenario {
        Scenario::Chat { senders, messages, window } => {
            println!("scenario: chat (durable 1-to-1 sends, closed loop, window {window})");
            println!(
                "{:>8} {:>9} {:>10} {:>12} {:>10} {:>10} {:>10}",
                "senders", "messages", "seconds", "acked msg/s", "p50 ms", "p99 ms", "p99.9 ms"
            );
            for n in senders {
                let daemon = Daemon::spawn(&binary).await.context("starting quickmeetd")?;
                let per_sender = (messages / n).max(1);
                let mut r = chat(&daemon, n, per_sender, window).await?;
                println!(
                    "{:>8} {:>9} {:>10.2} {:>12.0} {:>10.2} {:>10.2} {:>10.2}",
                    n,
                    r.count,
                    r.elapsed.as_secs_f64(),
                    r.count as f64 / r.elapsed.as_secs_f64(),
                    r.latency.percentile(50.0),
                    r.latency.percentile(99.0),
                    r.latency.percentile(99.9)
                );
                daemon.stop();
            }
        }
    }
    Ok(())
}

struct ChatResult {
    count: usize,
    elapsed: Duration,
    latency: stats::Samples,
}

async fn chat(d: &Daemon, senders: usize, per_sender: usize, window: usize) -> anyhow::Result<ChatResult> {
    // Each sender gets a partner account so the load spreads over conversations.
    let mut pairs = Vec::new();
    for i in 0..senders {
        let (ta, _) = d.signup(&format!("sender{i}")).await?;
        let (_, b) = d.signup(&format!("recver{i}")).await?;
        pairs.push((ta, b));
    }
    let mut sockets = Vec::new();
    for (token, partner) in pairs {
        sockets.push((d.ws(&token).await?, partner));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (ws, partner) in sockets {
        tasks.push(tokio::spawn(client::send_closed_loop(ws, partner, per_sender, window)));
    }
    let mut latency = stats::Samples::default();
    let mut count = 0;
    for t in tasks {
        let s = t.await??;
        count += s.len();
        latency.extend(s);
    }
    Ok(ChatResult { count, elapsed: start.elapsed(), latency })
}
