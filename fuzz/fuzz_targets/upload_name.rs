//! The upload name sanitiser and the stored-name parser: whatever name a client gives,
//! what is kept has no path separators, control or bidi characters, quotes or leading
//! dots and is at most 200 characters; a stored name that parses is `<uuid>.<ext>` only.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quickmeet::files::names::{content_disposition, parse_stored_name, sanitize_original_name, MAX_ORIGINAL_NAME};

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let name = sanitize_original_name(&raw);
    assert!(!name.is_empty());
    assert!(name.chars().count() <= MAX_ORIGINAL_NAME, "{name:?}");
    assert!(!name.contains(['/', '\\', '"', '\'', '`']), "{name:?}");
    assert!(!name.starts_with('.'), "{name:?}");
    assert!(!name.chars().any(char::is_control), "{name:?}");
    let cd = content_disposition(&name, false);
    assert!(!cd.contains(['\r', '\n']), "{cd:?}");
    if let Some((id, ext)) = parse_stored_name(&raw) {
        assert_eq!(format!("{id}.{ext}"), raw);
        assert!(!raw.contains(['/', '\\']) && !raw.contains(".."));
    }
});
