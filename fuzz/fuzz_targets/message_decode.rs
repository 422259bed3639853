//! First byte picks a message variant, the rest is its body (and each struct alone): decoded or
//! refused, never a panic; what decodes re-encodes to itself.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sync_core::fuzzing::message_decode(data));
