//! libFuzzer entry point of the `frame_decoder` target; see `ringcast_protocol_fuzz::frame_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringcast_protocol_fuzz::frame_decoder::run(data));
