//! Any text given as a profile file: loading and compiling it must return
//! a value or an error naming a position inside the file, never panic.
#![no_main]

use bindto_core::{Config, Layer, Protocol, Source, Table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let layer = Layer { source: Source::Given, path: "fuzz.toml".into(), text: text.to_owned(), stamp: None };
    match Config::from_layers(vec![layer]) {
        Ok(config) => {
            for name in config.names() {
                let table = Table::compile(config.profile(name).expect("listed profile"));
                for dest in ["198.18.0.1:53", "[2001:db8::1]:443", "[::ffff:10.0.0.1]:80", "0.0.0.0:0"] {
                    table.decide(dest.parse().unwrap(), Protocol::Udp);
                }
            }
        }
        Err(e) => {
            if let Some((line, column)) = e.position {
                let lines = text.lines().count().max(1) as u32;
                assert!(line >= 1 && line <= lines + 1 && column >= 1, "{e}");
            }
        }
    }
});
