//! The config file: any text is a config or an error, and a config validates or says why.
//! The check is `longrun_testkit::fuzz::config` (its full statement there), which the kit's
//! tests also replay over `corpus/config` in `cargo test`.

#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| longrun_testkit::fuzz::config(text));
