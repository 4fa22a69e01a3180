//! Page tokens: only a token made for this parent and filter decodes, to its cursor.
//! The check is `longrun_testkit::fuzz::page_token` (its full statement there), which the kit's
//! tests also replay over `corpus/page_token` in `cargo test`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| longrun_testkit::fuzz::page_token(data));
