//! Content-type detection from magic bytes: any bytes give a whitelisted type or a
//! refusal, never a panic, and a type's extension is one a stored name may have.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quickmeet::files::detect::{detect, EXTENSIONS};

fuzz_target!(|data: &[u8]| {
    if let Ok(found) = detect(&mut std::io::Cursor::new(data)) {
        assert!(EXTENSIONS.contains(&found.ext), "{found:?}");
        assert!(!data.is_empty());
    }
});
