//! Any base and new version: the sender's segmented delta rebuilds the new version exactly.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sync_core::fuzzing::delta_roundtrip(data));
