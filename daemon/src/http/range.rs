//! The `Range` request header, as much of it as file downloads need: one byte range
//! (`bytes=a-b`, `bytes=a-`, `bytes=-n`). Several ranges, other units and malformed
//! values are ignored and the whole file is sent, as RFC 9110 allows.

/// What to send for a file of a given length.
#[derive(Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole file (200).
    Full,
    /// Bytes `start..=end` (206).
    Partial { start: u64, end: u64 },
    /// No byte of the file is in the range (416).
    Unsatisfiable,
}

/// Interprets a `Range` header value against a file of `len` bytes.
pub fn parse(header: Option<&str>, len: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let number =
        |s: &str| if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if len == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Partial { start: len.saturating_sub(n), end: len - 1 },
            None => ByteRange::Full,
        },
        (first, last) => {
            let Some(start) = number(first) else { return ByteRange::Full };
            let end = match last {
                "" => u64::MAX,
                l => match number(l) {
                    Some(e) if e >= start => e,
                    _ => return ByteRange::Full,
                },
            };
            if start >= len {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Partial { start, end: end.min(len - 1) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_are_served_in_part() {
        assert_eq!(parse(Some("bytes=0-9"), 100), ByteRange::Partial { start: 0, end: 9 });
        assert_eq!(parse(Some("bytes=90-"), 100), ByteRange::Partial { start: 90, end: 99 });
        assert_eq!(parse(Some("bytes=90-1000"), 100), ByteRange::Partial { start: 90, end: 99 });
        assert_eq!(parse(Some("bytes=-10"), 100), ByteRange::Partial { start: 90, end: 99 });
        assert_eq!(parse(Some("bytes=-1000"), 100), ByteRange::Partial { start: 0, end: 99 });
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        assert_eq!(parse(Some("bytes=100-"), 100), ByteRange::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 100), ByteRange::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), ByteRange::Unsatisfiable);
    }

    #[test]
    fn anything_else_means_the_whole_file() {
        for h in [None, Some("bytes=0-1,5-6"), Some("items=0-1"), Some("bytes=5-1"), Some("bytes=a-b"), Some("bytes=-")]
        {
            assert_eq!(parse(h, 100), ByteRange::Full, "{h:?}");
        }
    }
}
