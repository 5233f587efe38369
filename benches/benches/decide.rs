//! `Table::decide` against the rule count, with the naive linear scan as the
//! reference line.
//!
//! Each iteration decides the next of 4096 pre-generated random destinations
//! (half inside some rule's network, half anywhere), so neither the branch
//! predictor nor the cache sees one destination over and over.

use std::hint::black_box;
use std::time::Duration;

use bindto_benches::{destinations, linear, profile, random_rules};
use bindto_core::Table;
use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};

const SIZES: [usize; 4] = [10, 1_000, 10_000, 100_000];
const INTERFACES: [&str; 3] = ["wan0", "vpn0", "alt0"];
const DESTINATIONS: usize = 4096;

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group.measurement_time(Duration::from_secs(3));
    for n in SIZES {
        let rules = random_rules(n, n as u64, &INTERFACES);
        let profile = profile(&rules, "lo");
        let table = Table::compile(&profile);
        let dests = destinations(&rules, DESTINATIONS, 1);

        group.bench_with_input(BenchmarkId::new("table", n), &dests, |b, dests| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % DESTINATIONS;
                let (dest, proto) = dests[i];
                table.decide(black_box(dest), black_box(proto)).verdict
            })
        });

        // At 100 000 rules one linear decision takes about a millisecond:
        // fewer, flat samples keep it to seconds.
        if n >= 100_000 {
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
        }
        group.bench_with_input(BenchmarkId::new("linear", n), &dests, |b, dests| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % DESTINATIONS;
                let (dest, proto) = dests[i];
                linear(&profile, black_box(dest), black_box(proto)).0
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
