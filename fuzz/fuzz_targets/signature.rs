//! Any bytes as a signature from a hostile receiver: refused, or a delta against it stays inside
//! the base it describes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sync_core::fuzzing::signature(data));
