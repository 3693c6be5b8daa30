//! `policy/src/router.rs`: lookup time at 10, 1,000 and 10,000 routes (flat in route count),
//! with an exact-match `HashMap` of whole paths as the reference.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use policy::{Lookup, Router};

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("router_lookup");
    for n in [10usize, 1_000, 10_000] {
        let cfg = bench::routes_config(n);
        let router = Router::build(&cfg).unwrap();
        let path = format!("/svc{}/v1/items/12345", n / 2);
        g.bench_with_input(BenchmarkId::new("trie", n), &path, |b, path| {
            b.iter(|| {
                let r = router.lookup(
                    Some(b"api.example.com"),
                    std::hint::black_box(path.as_bytes()),
                    b"GET",
                );
                assert!(matches!(r, Lookup::Found(..)));
            })
        });
        let map: ahash::AHashMap<Vec<u8>, usize> = (0..n)
            .map(|i| (format!("/svc{i}/v1/items/12345").into_bytes(), i))
            .collect();
        g.bench_with_input(
            BenchmarkId::new("hashmap_exact_path", n),
            &path,
            |b, path| {
                b.iter(|| {
                    assert!(map.get(std::hint::black_box(path.as_bytes())).is_some());
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
