//! Time as the protocol wants it: RFC 3339 in UTC with milliseconds.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Current time as an RFC 3339 UTC string with millisecond precision.
pub fn now_rfc3339() -> String {
    format_rfc3339(OffsetDateTime::now_utc())
}

/// Formats a time as `2026-11-25T21:58:30.123Z`.
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(t.millisecond() as u32 * 1_000_000).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    OffsetDateTime::now_utc().unix_timestamp().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let s = format_rfc3339(time::macros::datetime!(2026-11-25 21:58:30.123456 UTC));
        assert_eq!(s, "2026-11-25T21:58:30.123Z");
    }
}
