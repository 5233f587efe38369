//! A fixed number of decisions, for instruction counts under callgrind.
//!
//!     decide_count table|linear RULES LOOKUPS
//!
//! builds the same random profile as the criterion bench, then makes LOOKUPS
//! decisions in [`lookups`], cycling through 4096 random destinations. Run it
//! under `valgrind --tool=callgrind --toggle-collect='*lookups*'` with N and
//! 2N lookups: the difference divided by N is the cost of one decision,
//! without the set-up and without the call of `lookups` itself.

use std::hint::black_box;
use std::net::SocketAddr;
use std::process::ExitCode;

use bindto_benches::{LinearVerdict, destinations, linear, profile, random_rules};
use bindto_core::{Profile, Protocol, Table, Verdict};

const INTERFACES: [&str; 3] = ["wan0", "vpn0", "alt0"];

#[inline(never)]
fn lookups(table: &Table, dests: &[(SocketAddr, Protocol)], count: usize) -> usize {
    let mut bound = 0;
    for i in 0..count {
        let (dest, proto) = dests[i % dests.len()];
        let d = table.decide(black_box(dest), black_box(proto));
        bound += matches!(black_box(d.verdict), Verdict::Bind(_)) as usize;
    }
    bound
}

#[inline(never)]
fn linear_lookups(profile: &Profile, dests: &[(SocketAddr, Protocol)], count: usize) -> usize {
    let mut bound = 0;
    for i in 0..count {
        let (dest, proto) = dests[i % dests.len()];
        let (verdict, _) = linear(profile, black_box(dest), black_box(proto));
        bound += matches!(black_box(verdict), LinearVerdict::Bind(_)) as usize;
    }
    bound
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(kind), Some(Ok(rules)), Some(Ok(count))) = (
        args.first(),
        args.get(1).map(|a| a.parse::<usize>()),
        args.get(2).map(|a| a.parse::<usize>()),
    ) else {
        eprintln!("usage: decide_count table|linear RULES LOOKUPS");
        return ExitCode::from(2);
    };
    let specs = random_rules(rules, rules as u64, &INTERFACES);
    let profile = profile(&specs, "lo");
    let dests = destinations(&specs, 4096, 1);
    let bound = match kind.as_str() {
        "table" => lookups(&Table::compile(&profile), &dests, count),
        "linear" => linear_lookups(&profile, &dests, count),
        _ => {
            eprintln!("unknown kind {kind:?}");
            return ExitCode::from(2);
        }
    };
    eprintln!("{bound} of {count} bound");
    ExitCode::SUCCESS
}
