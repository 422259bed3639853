//! Any bytes after the sender's magic, fed to the real receiver into a scratch destination:
//! nothing is ever written outside it.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sync_core::fuzzing::handshake(data));
