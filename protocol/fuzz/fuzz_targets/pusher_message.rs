//! libFuzzer entry point of the `pusher_message` target; see `ringcast_protocol_fuzz::pusher_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringcast_protocol_fuzz::pusher_message::run(data));
