//! Feeds arbitrary text to the loader of the combined `floorwatch up`
//! configuration: TOML parsing into `UpConfig`, then the validation of its
//! `[bridge]`, `[scheduler]`, `[[sensors]]` and `[broker]` sections. Both
//! steps must return an error instead of panicking.

#![no_main]

use floorwatch::config::UpConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = toml::from_str::<UpConfig>(text) else {
        return;
    };
    if let Err(error) = config.validate() {
        assert!(!format!("{error:#}").is_empty());
    }
});
