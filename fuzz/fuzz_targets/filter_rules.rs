//! Any exclude patterns and paths: secrets stay excluded, user exclusions hold, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sync_core::fuzzing::filter_rules(data));
