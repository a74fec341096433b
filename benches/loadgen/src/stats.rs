//! Latency samples and percentiles.

use std::time::Duration;

/// Latencies in milliseconds.
#[derive(Default, Clone)]
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn extend(&mut self, v: Vec<Duration>) {
        self.0.extend(v.into_iter().map(|d| d.as_secs_f64() * 1000.0));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `p`th percentile (nearest rank), 0 when empty.
    pub fn percentile(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_by(|a, b| a.total_cmp(b));
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    /// "p50 / p99 / p99.9" in ms.
    pub fn summary(&mut self) -> String {
        format!("{:.2} / {:.2} / {:.2} ms", self.percentile(50.0), self.percentile(99.0), self.percentile(99.9))
    }
}
