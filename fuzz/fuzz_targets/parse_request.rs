//! libFuzzer target for the signaling parser: every input, as UTF-8 text (what a WebSocket
//! text frame can carry), must keep the promises of `fuzz/check.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../check.rs"]
mod check;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check::check(text);
    }
});
