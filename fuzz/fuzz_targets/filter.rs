//! The list filter: parsing never panics; what parses evaluates and translates to SQL.
//! The check is `longrun_testkit::fuzz::filter` (its full statement there), which the kit's
//! tests also replay over `corpus/filter` in `cargo test`.

#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| longrun_testkit::fuzz::filter(text));
