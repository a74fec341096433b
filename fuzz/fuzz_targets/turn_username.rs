//! The TURN credential username parser (`<expiry>:<userId>`): any string is accepted or
//! refused without panicking, and an accepted one has not expired.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quickmeet::turn_credentials::parse_username;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let now = u64::from_le_bytes(data[..8].try_into().unwrap());
    let Ok(name) = std::str::from_utf8(&data[8..]) else { return };
    if let Some((expiry, user)) = parse_username(name, now) {
        assert!(expiry >= now, "{name:?} accepted at {now}");
        assert!(name.ends_with(user.as_str()));
    }
});
