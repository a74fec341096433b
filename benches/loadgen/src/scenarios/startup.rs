//! Start-up: process start to a successful `/api/health` with a data dir holding many
//! messages. The data dir is generated once through the core library (the same writer
//! the daemon uses) and kept under target/loadgen for later runs.

use crate::client::Daemon;
use quickmeet::chat::{SendRequest, Target};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Builds (or reuses) a data dir with `messages` DMs spread over 50 users.
pub async fn prepare(messages: usize) -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(format!("target/loadgen/startup-{messages}"));
    if dir.join("complete").exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let config = quickmeet::config::Config { data_dir: dir.clone(), ..Default::default() };
    let core = quickmeet::Core::open(config)?;
    let mut users = Vec::new();
    for i in 0..50 {
        users.push(core.accounts.signup(&format!("user{i}"), "loadgen-password", None).await?.1.id);
    }
    let writers = 1000;
    let per = messages / writers;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (core, from, to) = (core.clone(), users[w % 50].clone(), users[(w + 1) % 50].clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..per {
                let req = SendRequest { content: format!("history message {w}/{n}"), ..Default::default() };
                core.chat.send(&from, Target::User(to.clone()), req).await?;
            }
            Ok::<_, quickmeet::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    core.chat.close().await;
    drop(core);
    std::fs::write(dir.join("complete"), b"")?;
    Ok(dir)
}

/// Starts the daemon once on `dir`, uncounted (it migrates an older schema, or repairs the
/// file after a kill, if it must), then `runs` times; returns the first start's time to
/// health and each counted one.
pub async fn run(binary: &Path, dir: &Path, runs: usize) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let first = Daemon::spawn_on(binary, dir).await?;
    let first_in = first.started_in;
    first.stop();
    let mut out = Vec::new();
    for _ in 0..runs {
        let d = Daemon::spawn_on(binary, dir).await?;
        out.push(d.started_in);
        d.stop();
    }
    Ok((first_in, out))
}
