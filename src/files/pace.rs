//! A floor on upload speed. The body timeout bounds each stall of a request body, but a
//! client that sends a byte just before every stall would otherwise keep an upload (its
//! connection, its temp file, its quota reservation) for as long as it likes. [`Pace`]
//! holds an upload to an average speed instead: once the grace period is over, the bytes
//! received must cover the time spent waiting for them at `upload-min-bytes-per-sec`.
//!
//! Only the time spent waiting for the client counts, not the time the daemon spends
//! writing or checking what arrived, so a daemon slowed by its own disk never blames the
//! client for it.

use super::human_bytes;
use crate::config::Config;
use std::time::Duration;

/// The speed an upload is held to, and how well it has kept it so far.
#[derive(Clone, Debug)]
pub struct Pace {
    /// Bytes per second; 0 when there is no floor.
    floor: u64,
    grace: Duration,
    waited: Duration,
    received: u64,
}

impl Pace {
    /// An upload held to `floor` bytes per second once `grace` is over; a floor of 0 holds
    /// it to nothing.
    pub fn new(floor: u64, grace: Duration) -> Pace {
        Pace { floor, grace, waited: Duration::ZERO, received: 0 }
    }

    /// The floor and grace of `upload-min-bytes-per-sec` and `upload-min-rate-grace-secs`.
    pub fn from_config(config: &Config) -> Pace {
        Pace::new(config.upload_min_bytes_per_sec, Duration::from_secs(config.upload_min_rate_grace_secs))
    }

    /// How much longer the daemon waits for the client's next bytes before its average
    /// falls under the floor; `None` when there is no floor.
    pub fn allowance(&self) -> Option<Duration> {
        if self.floor == 0 {
            return None;
        }
        let earned = Duration::try_from_secs_f64(self.received as f64 / self.floor as f64).unwrap_or(Duration::MAX);
        Some(self.grace.max(earned).saturating_sub(self.waited))
    }

    /// Counts time spent waiting for the client.
    pub fn waited(&mut self, d: Duration) {
        self.waited = self.waited.saturating_add(d);
    }

    /// Counts body bytes the client delivered.
    pub fn received(&mut self, bytes: u64) {
        self.received = self.received.saturating_add(bytes);
    }

    /// What a client too slow for the floor is told.
    pub fn too_slow_message(&self) -> String {
        format!(
            "the upload averaged less than {}/s, the least this appliance accepts, and was stopped; \
             try again from a faster connection",
            human_bytes(self.floor)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Waits `waited` for the client, which then delivers `bytes`.
    fn record(p: &mut Pace, waited: Duration, bytes: u64) {
        p.waited(waited);
        p.received(bytes);
    }

    #[test]
    fn the_grace_period_is_allowed_whatever_arrives() {
        let mut p = Pace::new(1000, 10 * S);
        assert_eq!(p.allowance(), Some(10 * S));
        record(&mut p, 4 * S, 1);
        assert_eq!(p.allowance(), Some(6 * S));
        record(&mut p, 6 * S, 0);
        assert_eq!(p.allowance(), Some(Duration::ZERO));
    }

    #[test]
    fn after_the_grace_each_byte_buys_its_share_of_a_second() {
        let mut p = Pace::new(1000, 10 * S);
        record(&mut p, 2 * S, 15_000); // 15 s earned
        assert_eq!(p.allowance(), Some(13 * S));
        record(&mut p, 13 * S, 0);
        assert_eq!(p.allowance(), Some(Duration::ZERO), "15 s of waiting for 15,000 bytes is exactly the floor");
        record(&mut p, Duration::ZERO, 500);
        assert_eq!(p.allowance(), Some(S / 2));
    }

    /// Seconds a client sending `rate` bytes each second lasts against 1000 bytes/s after 2 s
    /// of grace; `None` when it is still going after 100 s.
    fn lasts(rate: u64) -> Option<u32> {
        let mut p = Pace::new(1000, 2 * S);
        for t in 0..100 {
            if p.allowance().unwrap() < S {
                return Some(t);
            }
            record(&mut p, S, rate);
        }
        None
    }

    #[test]
    fn a_trickle_under_the_floor_is_cut_when_the_grace_ends_and_a_steady_sender_never_is() {
        assert_eq!(lasts(999), Some(2));
        assert_eq!(lasts(1), Some(2));
        assert_eq!(lasts(2000), None);
    }

    #[test]
    fn a_floor_of_zero_never_runs_out() {
        let mut p = Pace::new(0, S);
        record(&mut p, 3600 * S, 1);
        assert_eq!(p.allowance(), None);
    }

    #[test]
    fn the_refusal_names_the_floor() {
        assert!(Pace::new(16 * 1024, S).too_slow_message().contains("16 KiB/s"));
    }
}
