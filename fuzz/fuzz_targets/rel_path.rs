//! Any bytes as a wire path: accepted only in normal form, never escaping the root.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sync_core::fuzzing::rel_path(data));
