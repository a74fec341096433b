//! Names of files: the stored name `<uuid>.<ext>` that is the only thing ever joined to
//! a path, the uploaded name kept as harmless metadata, and the `Content-Disposition`
//! that gives it back to browsers.

use super::detect::EXTENSIONS;

/// Longest original name kept, in characters.
pub const MAX_ORIGINAL_NAME: usize = 200;

/// The name used when an upload has none, or nothing of it survives sanitising.
const FALLBACK_NAME: &str = "file";

/// Splits a stored name into its uuid and extension, or `None` unless it has exactly the
/// shape we generate: a lowercase hyphenated UUID, a dot, and a whitelisted extension.
/// Anything else (`..`, slashes, NUL, percent signs, upper case) is refused before any
/// path is built from it.
pub fn parse_stored_name(name: &str) -> Option<(&str, &'static str)> {
    let (id, ext) = name.split_once('.')?;
    if id.len() != 36 || !is_canonical_uuid(id) {
        return None;
    }
    let ext = EXTENSIONS.iter().find(|e| **e == ext)?;
    Some((id, ext))
}

fn is_canonical_uuid(s: &str) -> bool {
    s.bytes().enumerate().all(|(i, b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
    })
}

/// Makes an uploaded name safe to keep and show: no path components, no control or
/// bidirectional-override characters, no quotes, no leading dots, at most
/// [`MAX_ORIGINAL_NAME`] characters (keeping a short extension when cutting).
pub fn sanitize_original_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String =
        base.chars().filter(|c| !c.is_control() && !is_invisible_format(*c) && !"\"'`".contains(*c)).collect();
    // Dots and spaces may alternate (". .exe"): strip them together, not one after another.
    let trimmed = cleaned.trim_start_matches(|c: char| c == '.' || c.is_whitespace()).trim_end();
    if trimmed.is_empty() {
        return FALLBACK_NAME.to_string();
    }
    if trimmed.chars().count() <= MAX_ORIGINAL_NAME {
        return trimmed.to_string();
    }
    let ext: Option<&str> =
        trimmed.rsplit_once('.').map(|(_, e)| e).filter(|e| !e.is_empty() && e.chars().count() <= 16);
    match ext {
        Some(ext) => {
            let keep = MAX_ORIGINAL_NAME - ext.chars().count() - 1;
            let stem: String = trimmed.chars().take(keep).collect();
            format!("{}.{ext}", stem.trim_end())
        }
        None => trimmed.chars().take(MAX_ORIGINAL_NAME).collect::<String>().trim_end().to_string(),
    }
}

/// Zero-width and direction-changing characters that can make `exe.pdf` read as `fdp.exe`.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// A `Content-Disposition` value (RFC 6266): an ASCII `filename` fallback for old clients
/// and the exact name as UTF-8 in `filename*`.
pub fn content_disposition(original_name: &str, inline: bool) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let ascii: String = original_name
        .chars()
        .map(|c| if c.is_ascii_graphic() && !"\"\\%;".contains(c) || c == ' ' { c } else { '_' })
        .collect();
    let mut encoded = String::with_capacity(original_name.len() * 3);
    for b in original_name.bytes() {
        // RFC 5987 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~"
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_dots_and_spaces_in_any_mix_are_stripped() {
        // Found by the upload_name fuzz target: ". .exe" came out as ".exe".
        for raw in [". .exe", " . . .bashrc", "\u{202e}. \u{0}.exe", "..\t.. x.txt"] {
            let name = sanitize_original_name(raw);
            assert!(!name.starts_with('.') && !name.starts_with(' '), "{raw:?} -> {name:?}");
        }
        assert_eq!(sanitize_original_name(". .exe"), "exe");
    }

    const ID: &str = "01934f6e-7c1a-7b2e-9a3d-5f2e8c1b4a70";

    #[test]
    fn stored_names_of_our_exact_shape_are_accepted() {
        assert_eq!(parse_stored_name(&format!("{ID}.png")), Some((ID, "png")));
        assert_eq!(parse_stored_name(&format!("{ID}.docx")), Some((ID, "docx")));
    }

    #[test]
    fn anything_else_never_becomes_a_path() {
        for bad in [
            "..",
            ".",
            "",
            "../../etc/passwd",
            "..%2f..%2fetc%2fpasswd",
            "a/b.png",
            "a\\b.png",
            &format!("{ID}.png\0"),
            &format!("{ID}.png/"),
            &format!("../{ID}.png"),
            &format!("{ID}.exe"),
            &format!("{ID}.svg"),
            &format!("{ID}.PNG"),
            &format!("{}.png", ID.to_uppercase()),
            &format!("{ID}.png.png"),
            ID,
            "01934f6e-7c1a-7b2e-9a3d-5f2e8c1b4a7.png",
            "01934f6e_7c1a_7b2e_9a3d_5f2e8c1b4a70.png",
            "01934f6e-7c1a-7b2e-9a3d-5f2e8c1b4a70..png",
        ] {
            assert_eq!(parse_stored_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn original_names_lose_paths_controls_and_quotes() {
        assert_eq!(sanitize_original_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_original_name("C:\\Users\\me\\report.pdf"), "report.pdf");
        assert_eq!(sanitize_original_name("a\"b'c`d\n\r\t\0.txt"), "abcd.txt");
        assert_eq!(sanitize_original_name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(sanitize_original_name(".bashrc"), "bashrc");
        assert_eq!(sanitize_original_name(".."), "file");
        assert_eq!(sanitize_original_name("dir/"), "file");
        assert_eq!(sanitize_original_name("  "), "file");
        assert_eq!(sanitize_original_name("résumé 2026.pdf"), "résumé 2026.pdf");
    }

    #[test]
    fn long_names_are_cut_but_keep_their_extension() {
        let long = format!("{}.pdf", "é".repeat(500));
        let s = sanitize_original_name(&long);
        assert_eq!(s.chars().count(), MAX_ORIGINAL_NAME);
        assert!(s.ends_with(".pdf"));
        let no_ext = "x".repeat(300);
        assert_eq!(sanitize_original_name(&no_ext).chars().count(), MAX_ORIGINAL_NAME);
    }

    #[test]
    fn content_disposition_encodes_the_name_for_every_client() {
        assert_eq!(
            content_disposition("report.pdf", false),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("résumé v2;.png", true),
            "inline; filename=\"r_sum_ v2_.png\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20v2%3B.png"
        );
    }
}
