//! The WebSocket frame decoder: any text a client sends either decodes into an event or
//! yields an `invalid_frame` error; it never panics, and a decoded event has a tier.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quickmeet_daemon::ws::events::decode;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match decode(text) {
        Ok(frame) => {
            let _ = frame.event.tier();
        }
        Err(bad) => assert_eq!(bad.error.code(), "invalid_frame"),
    }
});
