//! libFuzzer entry point of the `api_auth` target; see `ringcast_protocol_fuzz::api_auth`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringcast_protocol_fuzz::api_auth::run(data));
