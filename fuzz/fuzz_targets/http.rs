//! The HTTP surface of a real server: never a 5xx but 501, errors in Google's envelope.
//! The check is `longrun_testkit::fuzz::http` (its full statement there), which the kit's
//! tests also replay over `corpus/http` in `cargo test`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| longrun_testkit::fuzz::http(data));
