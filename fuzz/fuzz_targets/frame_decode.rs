//! Any bytes as a frame body: a message or a protocol error, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sync_core::fuzzing::frame_decode(data));
