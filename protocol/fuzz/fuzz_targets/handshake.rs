//! libFuzzer entry point of the `handshake` target; see `ringcast_protocol_fuzz::handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringcast_protocol_fuzz::handshake::run(data));
