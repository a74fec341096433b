//! `quickmeet-loadgen`: starts a real quickmeetd (release build, data dir on disk, so every
//! acknowledged message is fsync'd) on loopback and measures it over TLS and WebSocket
//! exactly as clients use it, next to a bare tokio-tungstenite relay (no auth, no
//! persistence) run in the same invocation as the baseline. Every scenario is bounded in
//! count and time and prints its figures.
//!
//! Example: cargo run --release -p quickmeet-loadgen -- all

mod client;
mod limits;
mod scenarios;
mod stats;

use anyhow::Context;
use clap::{Parser, Subcommand};
use client::Daemon;
use scenarios::chat::ClientIds;
use scenarios::*;
use std::path::{Path, PathBuf};

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
    /// Durable 1-to-1 chat, closed loop: acked msg/s, ack and send→receive latency, and
    /// the bare relay's rate for the same shape.
    Chat {
        /// Comma-separated numbers of sender/receiver pairs, one run each.
        #[arg(long, default_value = "1,10,100", value_delimiter = ',')]
        senders: Vec<usize>,
        /// Total messages per run (spread over the senders).
        #[arg(long, default_value_t = 5000)]
        messages: usize,
        /// Messages each sender keeps in flight (closed loop).
        #[arg(long, default_value_t = 1)]
        window: usize,
        /// Open loop instead: total messages per second over all senders, sent on a fixed
        /// schedule whatever the acks; latency counts from when each message was due.
        #[arg(long)]
        rate: Option<f64>,
        /// How senders make their clientIds: `time` as the web client does (creation time
        /// first), or `random` as a client using crypto.randomUUID() would.
        #[arg(long, value_enum, default_value_t = ClientIds::Time)]
        client_ids: ClientIds,
    },
    /// N idle authenticated WebSockets: daemon RSS per connection.
    Idle {
        #[arg(long, default_value_t = 2000)]
        connections: usize,
        /// Accounts the connections are spread over.
        #[arg(long, default_value_t = 100)]
        users: usize,
    },
    /// Group fan-out: delivered frames/s and daemon CPU, with the relay baseline.
    Fanout {
        #[arg(long, default_value_t = 4)]
        groups: usize,
        #[arg(long, default_value_t = 50)]
        members: usize,
        /// Messages per group sender.
        #[arg(long, default_value_t = 500)]
        messages: usize,
        #[arg(long, default_value_t = 16)]
        window: usize,
    },
    /// 20 simultaneous logins during steady chat: login p99 and chat p99 before/during.
    LoginBurst {
        #[arg(long, default_value_t = 20)]
        logins: usize,
    },
    /// 50 MiB uploads: MB/s and the daemon's RSS growth.
    Upload {
        #[arg(long, default_value_t = 4)]
        files: usize,
        #[arg(long, default_value_t = 50 * 1024 * 1024)]
        size: usize,
    },
    /// Call signaling: offer → relayed offer latency.
    Signaling {
        #[arg(long, default_value_t = 2000)]
        count: usize,
    },
    /// Process start to /api/health with a data dir of many stored messages.
    Startup {
        #[arg(long, default_value_t = 1_000_000)]
        messages: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Every scenario with its defaults (startup with 1 M messages).
    All,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = args.daemon.unwrap_or_else(|| PathBuf::from("target/release/quickmeetd"));
    anyhow::ensure!(
        binary.exists(),
        "{} not found: run `cargo build --release -p quickmeet-daemon` first",
        binary.display()
    );
    let nofile = client::raise_nofile();
    println!("open-files limit of the load generator: {nofile}");
    match args.scenario {
        Scenario::Chat { senders, messages, window, rate, client_ids } => {
            chat(&binary, &senders, messages, window, rate, client_ids).await?
        }
        Scenario::Idle { connections, users } => idle(&binary, connections, users).await?,
        Scenario::Fanout { groups, members, messages, window } => {
            fanout(&binary, groups, members, messages, window).await?
        }
        Scenario::LoginBurst { logins } => burst(&binary, logins).await?,
        Scenario::Upload { files, size } => upload(&binary, files, size).await?,
        Scenario::Signaling { count } => signaling(&binary, count).await?,
        Scenario::Startup { messages, runs } => startup(&binary, messages, runs).await?,
        Scenario::All => {
            chat(&binary, &[1, 10, 100], 5000, 1, None, ClientIds::Time).await?;
            chat(&binary, &[100], 20000, 16, None, ClientIds::Time).await?;
            chat(&binary, &[100], 50000, 1, Some(5000.0), ClientIds::Time).await?;
            fanout(&binary, 4, 50, 500, 16).await?;
            burst(&binary, 20).await?;
            upload(&binary, 4, 50 * 1024 * 1024).await?;
            signaling(&binary, 2000).await?;
            idle(&binary, 2000, 100).await?;
            startup(&binary, 1_000_000, 5).await?;
        }
    }
    Ok(())
}

async fn chat(
    binary: &Path,
    senders: &[usize],
    messages: usize,
    window: usize,
    rate: Option<f64>,
    ids: ClientIds,
) -> anyhow::Result<()> {
    match rate {
        Some(r) => println!("\n## chat: durable 1-to-1 sends, open loop at {r:.0} msg/s in all"),
        None => println!("\n## chat: durable 1-to-1 sends, closed loop, window {window}"),
    }
    println!("| pairs | messages | acked msg/s | ack p50 / p99 / p99.9 | send→receive p50 / p99 / p99.9 | relay msg/s | ratio |");
    println!("|---:|---:|---:|---|---|---:|---:|");
    for &n in senders {
        let d = Daemon::spawn(binary).await.context("starting quickmeetd")?;
        let per_sender = (messages / n).max(1);
        let pairs = chat::connect_pairs(&d, n, "c").await?;
        let pace = match rate {
            Some(r) => chat::Pace::Rate(r / n as f64),
            None => chat::Pace::Window(window),
        };
        let mut r = chat::run(pairs, per_sender, pace, ids).await?;
        // The relay ratio compares flat-out rates; an open-loop run has none.
        let relay_columns = if rate.is_none() {
            let relay = baseline::start(&d.data_dir, d.tls.clone()).await?;
            let (bc, be, _) = baseline::chat(&relay, n, per_sender, window).await?;
            relay.stop();
            let base_rate = bc as f64 / be.as_secs_f64();
            format!("{base_rate:.0} | {:.0}%", 100.0 * r.rate() / base_rate)
        } else {
            "— | —".to_string()
        };
        println!(
            "| {n} | {} | {:.0} | {} | {} | {relay_columns} |",
            r.count,
            r.rate(),
            r.ack.summary(),
            r.deliver.summary(),
        );
        d.stop();
    }
    Ok(())
}

async fn idle(binary: &Path, connections: usize, users: usize) -> anyhow::Result<()> {
    println!("\n## idle: {connections} authenticated WebSockets over {users} accounts");
    let d = Daemon::spawn(binary).await?;
    let (r, sockets) = idle::run(&d, connections, users).await?;
    println!(
        "connections {} | daemon RSS {} KiB → {} KiB | {:.1} KiB per connection | after one {}-character message each: {} KiB, {:.1} KiB per connection",
        r.connections,
        r.rss_before_kib,
        r.rss_after_kib,
        r.per_connection_kib(),
        idle::MESSAGE_CHARS,
        r.rss_after_message_kib,
        r.per_connection_after_message_kib()
    );
    drop(sockets);
    d.stop();
    Ok(())
}

async fn fanout(binary: &Path, groups: usize, members: usize, messages: usize, window: usize) -> anyhow::Result<()> {
    println!("\n## fan-out: {groups} groups × {members} members, {messages} messages per group, window {window}");
    let d = Daemon::spawn(binary).await?;
    let r = fanout::daemon(&d, groups, members, messages, window).await?;
    let relay = baseline::start(&d.data_dir, d.tls.clone()).await?;
    let b = fanout::baseline(&relay, groups, members, messages, window).await?;
    println!(
        "quickmeetd: {} frames in {:.2} s = {:.0} frames/s, daemon CPU {:.0}% of one core | relay: {:.0} frames/s | ratio {:.0}%",
        r.delivered,
        r.elapsed.as_secs_f64(),
        r.rate(),
        100.0 * r.daemon_cpu,
        b.rate(),
        100.0 * r.rate() / b.rate()
    );
    relay.stop();
    d.stop();
    Ok(())
}

async fn burst(binary: &Path, logins: usize) -> anyhow::Result<()> {
    println!("\n## login burst: {logins} simultaneous logins during steady chat (10 senders, 1 msg / 10 ms each)");
    let d = Daemon::spawn(binary).await?;
    let mut r = burst::run(&d, logins).await?;
    println!(
        "login p50 / p99: {:.0} / {:.0} ms | chat ack p99 before: {:.2} ms ({} samples), during: {:.2} ms ({} samples)",
        r.logins.percentile(50.0),
        r.logins.percentile(99.0),
        r.chat_before.percentile(99.0),
        r.chat_before.len(),
        r.chat_during.percentile(99.0),
        r.chat_during.len()
    );
    d.stop();
    Ok(())
}

async fn upload(binary: &Path, files: usize, size: usize) -> anyhow::Result<()> {
    println!("\n## upload: {files} × {} MiB", size / (1024 * 1024));
    let d = Daemon::spawn(binary).await?;
    let r = upload::run(&d, files, size).await?;
    println!(
        "{} files, {} MiB in {:.2} s = {:.0} MB/s | daemon peak RSS growth {} KiB",
        r.files,
        r.bytes / (1024 * 1024),
        r.elapsed.as_secs_f64(),
        r.bytes as f64 / 1e6 / r.elapsed.as_secs_f64(),
        r.rss_growth_kib
    );
    d.stop();
    Ok(())
}

async fn signaling(binary: &Path, count: usize) -> anyhow::Result<()> {
    println!("\n## signaling: {count} call:offer relays (2.4 KB SDP)");
    let d = Daemon::spawn(binary).await?;
    let mut s = signaling::run(&d, count).await?;
    println!("offer → relayed offer p50 / p99 / p99.9: {}", s.summary());
    d.stop();
    Ok(())
}

async fn startup(binary: &Path, messages: usize, runs: usize) -> anyhow::Result<()> {
    println!("\n## start-up with {messages} stored messages");
    let t = std::time::Instant::now();
    let dir = startup::prepare(messages).await?;
    println!("data dir ready in {:.1} s ({})", t.elapsed().as_secs_f64(), dir.display());
    let (first, times) = startup::run(binary, &dir, runs).await?;
    println!("first start on this data dir, not counted: {:.0} ms", first.as_secs_f64() * 1000.0);
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "process start → /api/health: min {:.0} ms, median {:.0} ms, max {:.0} ms",
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
    Ok(())
}
