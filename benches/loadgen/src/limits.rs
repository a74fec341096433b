//! Daemon settings for benchmarks: the abuse limits raised so that the deliberate,
//! bounded load of a benchmark measures the daemon, not its rate limiter (every load
//! comes from 127.0.0.1, which would look like one abusive client).
pub const RELAXED: &str = "\
rate-auth-per-minute = 1000000
rate-api-per-minute = 1000000
rate-upload-per-minute = 1000000
rate-ws-messages-per-minute = 1000000
rate-ws-typing-per-minute = 1000000
rate-ws-signaling-per-minute = 1000000
rate-connections-per-minute = 1000000
max-connections-per-ip = 100000
max-ws-per-user = 100000
";
