//! The table cache's decoder on untrusted bytes: whatever a cache file
//! holds, decoding either refuses it or gives a table whose every decision
//! is one it can give, without a panic. Inputs starting with 0 are edits
//! of a valid encoding (offset, byte), so that the fuzzer reaches the
//! checks deep inside it; with 1, a valid encoding cut short; anything
//! else is decoded as it is.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use bindto_core::cache::fuzzing::{decode, encode};
use bindto_core::{Config, Layer, Protocol, Source, Table, Verdict};
use libfuzzer_sys::fuzz_target;

const PROFILE: &str = include_str!("../../core/tests/fixtures/valid/everything.toml");

fn valid() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let layer = Layer { source: Source::Given, path: "everything.toml".into(), text: PROFILE.into(), stamp: None };
        let config = Config::from_layers(vec![layer]).expect("fixture loads");
        let table = Table::compile(config.profile("full").expect("fixture profile"));
        encode(&table).expect("a profile's table encodes")
    })
}

/// Destinations inside and around the fixture's rules, both families.
const DESTINATIONS: [&str; 8] = [
    "0.0.0.0", "10.1.2.3", "192.168.1.1", "255.255.255.255", "::", "2001:db8::1", "fd00::1",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

fuzz_target!(|data: &[u8]| {
    let bytes = match data.split_first() {
        Some((0, edits)) => {
            let mut bytes = valid().to_vec();
            for edit in edits.chunks_exact(3) {
                let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % bytes.len();
                bytes[at] = edit[2];
            }
            bytes
        }
        Some((1, cut)) => {
            let at = cut.first_chunk::<2>().map_or(0, |c| usize::from(u16::from_le_bytes(*c)));
            valid()[..at.min(valid().len())].to_vec()
        }
        _ => data.to_vec(),
    };
    let Some(table) = decode(&bytes) else { return };
    for dest in DESTINATIONS {
        let ip: IpAddr = dest.parse().expect("a literal address");
        for port in [0, 53, 80, 443, 65535] {
            for proto in [Protocol::Tcp, Protocol::Udp] {
                let d = table.decide(SocketAddr::new(ip, port), proto);
                if let Verdict::Bind(b) = d.verdict {
                    assert!(table.bindings().contains(b));
                }
            }
        }
    }
});
