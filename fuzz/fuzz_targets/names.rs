//! Operation and project names: parsing never panics and what parses is canonical.
//! The check is `longrun_testkit::fuzz::names` (its full statement there), which the kit's
//! tests also replay over `corpus/names` in `cargo test`.

#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| longrun_testkit::fuzz::names(text));
