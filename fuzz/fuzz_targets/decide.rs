//! decide() on arbitrary destinations, read from bytes laid out like a
//! sockaddr (family, port, address, scope), against a table with rules of
//! every kind: no panic, and the answer is one the table can give.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::OnceLock;

use bindto_core::{Config, Layer, Protocol, Source, Table, Verdict};
use libfuzzer_sys::fuzz_target;

const PROFILE: &str = include_str!("../../core/tests/fixtures/valid/everything.toml");

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let layer = Layer { source: Source::Given, path: "everything.toml".into(), text: PROFILE.into(), stamp: None };
        let config = Config::from_layers(vec![layer]).expect("fixture loads");
        Table::compile(config.profile("full").expect("fixture profile"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&[kind, p0, p1], rest)) = data.split_first_chunk::<3>().map(|(a, r)| (a, r)) else { return };
    let port = u16::from_be_bytes([p0, p1]);
    let proto = if kind & 1 == 0 { Protocol::Tcp } else { Protocol::Udp };
    let dest = if kind & 2 == 0 {
        let Some(a) = rest.first_chunk::<4>() else { return };
        SocketAddr::new(Ipv4Addr::from(*a).into(), port)
    } else {
        let Some((a, rest)) = rest.split_first_chunk::<16>() else { return };
        let scope = rest.first_chunk::<4>().map_or(0, |s| u32::from_ne_bytes(*s));
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(*a), port, 0, scope))
    };
    let table = table();
    let d = table.decide(dest, proto);
    if let Verdict::Bind(b) = d.verdict {
        assert!(table.bindings().contains(b));
    }
    assert!(d.rewrite.is_none() || d.destination.port() == 53 || d.destination.port() == 853);
});
