//! The config loader: any TOML text with any `CLAIMEX_*` overrides is a configuration that
//! validates, or a `ConfigError` naming what is wrong.
#![no_main]

use std::path::Path;

use claimex::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The file, then after a NUL byte `NAME=VALUE` lines of environment.
    let (file, env) = text.split_once('\0').unwrap_or((text, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (format!("CLAIMEX_{k}"), v.to_owned()))
        .collect();
    match Config::from_text(Some(file), Some(Path::new("/etc/claimex/claimex.toml")), &env) {
        Ok(config) => config.validate().expect("a loaded configuration validates"),
        Err(e) => assert!(e.to_string().starts_with("configuration: ")),
    }
});
