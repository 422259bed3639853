//! Any bytes as a delta against a fixed base: applied within bounds or refused, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sync_core::fuzzing::delta_patch(data));
