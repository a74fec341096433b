//! The config parser: any text parses into a valid configuration or an error, and the
//! line-by-line checker (`quickmeet config check`) agrees with it and terminates.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quickmeet::config::{check, Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = Config::from_toml(text);
    if let Ok(cfg) = &parsed {
        cfg.validate().expect("a parsed config is valid");
    }
    let (checked, problems) = check(text);
    assert_eq!(checked.is_some(), problems.is_empty());
    if parsed.is_ok() {
        assert!(problems.is_empty(), "{problems:?}");
    }
});
