//! The config file: any text is a config or an error, never a panic, and a config that
//! parses either validates or says why.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(config) = toml::from_str::<longrun_server::Config>(text) {
        let _ = config.validate();
    }
});
