//! Printing: aligned tables for people, pretty JSON for scripts, human sizes and times.

use crate::Failure;
use serde::Serialize;
use std::io::Write;

fn broken(e: std::io::Error) -> Failure {
    Failure::error(format!("cannot write output: {e}"))
}

/// Prints `v` as pretty JSON.
pub fn json(out: &mut dyn Write, v: &impl Serialize) -> Result<(), Failure> {
    serde_json::to_writer_pretty(&mut *out, v).map_err(|e| Failure::error(e.to_string()))?;
    writeln!(out).map_err(broken)
}

/// Prints rows under headers, columns padded to their widest cell.
pub fn table(out: &mut dyn Write, headers: &[&str], rows: &[Vec<String>]) -> Result<(), Failure> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(headers.iter().map(|h| h.to_string()).collect())).map_err(broken)?;
    for r in rows {
        writeln!(out, "{}", line(r.clone())).map_err(broken)?;
    }
    Ok(())
}

/// Prints `label: value` lines with the labels aligned.
pub fn fields(out: &mut dyn Write, pairs: &[(&str, String)]) -> Result<(), Failure> {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in pairs {
        writeln!(out, "{:<w$} {v}", format!("{k}:")).map_err(broken)?;
    }
    Ok(())
}

/// Prints one line.
pub fn say(out: &mut dyn Write, s: impl std::fmt::Display) -> Result<(), Failure> {
    writeln!(out, "{s}").map_err(broken)
}

/// `1.5 MiB` and the like.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `3d 4h 5m` from seconds.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

/// Days from now until an RFC 3339 time (negative when past).
pub fn days_until(rfc3339: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t - time::OffsetDateTime::now_utc()).whole_days())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_sizes_read_well() {
        let mut out = Vec::new();
        table(&mut out, &["NAME", "ROLE"], &[vec!["alice".into(), "admin".into()], vec!["bo".into(), "user".into()]])
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "NAME   ROLE\nalice  admin\nbo     user\n");
        assert_eq!((bytes(512), bytes(1536), bytes(3 << 30)), ("512 B".into(), "1.5 KiB".into(), "3.0 GiB".into()));
        assert_eq!((duration(59), duration(3720), duration(90_000)), ("59s".into(), "1h 2m".into(), "1d 1h 0m".into()));
    }
}
