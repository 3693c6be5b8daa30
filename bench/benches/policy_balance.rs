//! `policy/src/balance/`: the time of one target pick per balancer over 3 and 50 targets
//! (idle, in-flight counts varied), the cost the data path pays per request to choose.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use policy::balance::{Balancer, Kind, TargetState, hash_bytes, pick_target};

fn pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("balance_pick");
    let kinds = [
        ("round_robin", Kind::RoundRobin),
        ("weighted_round_robin", Kind::WeightedRoundRobin),
        ("least_outstanding", Kind::LeastOutstanding),
        ("p2c", Kind::P2c),
        ("ring_hash", Kind::RingHash),
        ("maglev", Kind::Maglev),
        ("ip_hash", Kind::IpHash),
    ];
    for n in [3usize, 50] {
        let names: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("10.0.0.{i}:80").into_bytes())
            .collect();
        let ids: Vec<&[u8]> = names.iter().map(|v| v.as_slice()).collect();
        let weights = vec![1u32; n];
        let targets: Vec<TargetState> = (0..n)
            .map(|i| {
                let t = TargetState::new(1, false);
                t.in_flight.set((i % 7) as u32);
                t
            })
            .collect();
        let now = Instant::now();
        let key = Some(hash_bytes(b"user-42"));
        for (name, kind) in kinds {
            let b = Balancer::new(kind, &ids, &weights, 0, 1.25);
            g.bench_with_input(BenchmarkId::new(name, n), &n, |bench, _| {
                bench.iter(|| {
                    let t = pick_target(&b, std::hint::black_box(&targets), now, 0, key);
                    assert!(t.is_some());
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);
