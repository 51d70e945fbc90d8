//! libFuzzer target for a media worker's datagram routing: every input, read as records of
//! hostile datagrams (format in `sfu::worker::hostile`), must keep that module's promises.

#![no_main]

use libfuzzer_sys::fuzz_target;
use multiparty_meeting::sfu::worker::hostile;

fuzz_target!(|data: &[u8]| {
    hostile::check(data);
});
