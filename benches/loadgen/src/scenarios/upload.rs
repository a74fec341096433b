//! Uploads: 50 MiB files streamed from memory chunks (never one 50 MiB buffer in the
//! client either), MB/s and the daemon's RSS growth (sampled while uploading).

use crate::client::Daemon;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct UploadResult {
    pub files: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    pub rss_growth_kib: u64,
}

fn body(size: usize) -> reqwest::Body {
    // A valid MP4 header ("ftyp") followed by filler, so the content check accepts it.
    let mut head = vec![0u8; 32];
    head[..12].copy_from_slice(&[0, 0, 0, 0x20, b'f', b't', b'y', b'p', b'i', b's', b'o', b'm']);
    head[12..16].copy_from_slice(&[0, 0, 2, 0]);
    head[16..32].copy_from_slice(b"isomiso2avc1mp41");
    let chunk = bytes::Bytes::from(vec![0x42u8; 256 * 1024]);
    let mut left = size - head.len();
    let mut chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![Ok(bytes::Bytes::from(head))];
    while left > 0 {
        let n = left.min(chunk.len());
        chunks.push(Ok(chunk.slice(..n)));
        left -= n;
    }
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

pub async fn run(d: &Daemon, files: usize, size: usize) -> anyhow::Result<UploadResult> {
    let (token, _) = d.signup("uploader").await?;
    let base = d.rss_kib();
    let peak = Arc::new(AtomicU64::new(base));
    let done = Arc::new(AtomicBool::new(false));
    let pid = d.pid();
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(crate::client::proc_status(pid, "VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let start = Instant::now();
    for i in 0..files {
        let part =
            reqwest::multipart::Part::stream_with_length(body(size), size as u64).file_name(format!("clip{i}.mp4"));
        let form = reqwest::multipart::Form::new().part("file", part);
        let r = d.http.post(d.url("/api/files/upload")).bearer_auth(&token).multipart(form).send().await?;
        anyhow::ensure!(
            r.status().as_u16() == 201,
            "upload refused: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    let elapsed = start.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    Ok(UploadResult {
        files,
        bytes: (files * size) as u64,
        elapsed,
        rss_growth_kib: peak.load(Ordering::Relaxed).saturating_sub(base),
    })
}
