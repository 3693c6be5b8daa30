//! `policy/src/cache/store.rs`: get (hit) and insert-with-eviction at 100,000 entries for
//! each eviction policy, and — printed before the timings — the hit ratio of LRU and S3-FIFO
//! on a Zipf workload (1,000,000 keys, skew 0.8 and 1.0, a cache of 1 % and 10 % of them),
//! and the hit ratio of two shards' S3-FIFO stores on the same workload, each request on
//! either shard: a copy per shard (`shared = false`) against one copy per gateway, each key
//! kept by its owner (`shared = true`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use policy::cache::store::{Eviction, Store};

/// A Zipf sampler over `n` keys with skew `s` (inverse CDF over a precomputed table).
struct Zipf {
    cdf: Vec<f64>,
    x: u64,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(s);
            cdf.push(sum);
        }
        for v in &mut cdf {
            *v /= sum;
        }
        Zipf {
            cdf,
            x: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn next(&mut self) -> u64 {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        let u = (self.x >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c < u) as u64
    }
}

/// Hit ratio of `eviction` with room for `slots` unit-size objects over `requests` draws.
fn hit_ratio(eviction: Eviction, slots: u64, skew: f64, requests: usize) -> f64 {
    let mut z = Zipf::new(1_000_000, skew);
    let mut s = Store::new(eviction, slots);
    let mut hits = 0usize;
    for _ in 0..requests {
        let k = z.next();
        if s.get(k).is_some() {
            hits += 1;
        } else {
            s.insert(k, (), 1);
        }
    }
    hits as f64 / requests as f64
}

/// Hit ratio of two shards with room for `slots` each, every request landing on a random
/// shard: each shard keeping its own copies, or each key kept only by its owner.
fn two_shard_ratio(shared: bool, slots: u64, skew: f64, requests: usize) -> f64 {
    let mut z = Zipf::new(1_000_000, skew);
    let mut shards = [
        Store::new(Eviction::S3Fifo, slots),
        Store::new(Eviction::S3Fifo, slots),
    ];
    let mut pick = 0x2545_f491_4f6c_dd1du64;
    let mut hits = 0usize;
    for _ in 0..requests {
        let k = z.next();
        pick ^= pick << 13;
        pick ^= pick >> 7;
        pick ^= pick << 17;
        // the owner: a hash of the key (its low bit would follow the Zipf ranks)
        let owner = (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 63) as usize;
        let s = &mut shards[if shared { owner } else { (pick & 1) as usize }];
        if s.get(k).is_some() {
            hits += 1;
        } else {
            s.insert(k, (), 1);
        }
    }
    hits as f64 / requests as f64
}

fn ratios() {
    println!("hit ratio on Zipf, 1,000,000 keys, 2,000,000 requests, from empty:");
    for skew in [0.8, 1.0] {
        for slots in [10_000u64, 100_000] {
            let lru = hit_ratio(Eviction::Lru, slots, skew, 2_000_000);
            let s3 = hit_ratio(Eviction::S3Fifo, slots, skew, 2_000_000);
            println!("  skew {skew}, cache {slots:>7}: LRU {lru:.4}  S3-FIFO {s3:.4}");
        }
    }
    println!("two shards (S3-FIFO, room for N each), requests on either shard:");
    for skew in [0.8, 1.0] {
        for slots in [10_000u64, 100_000] {
            let own = two_shard_ratio(false, slots, skew, 2_000_000);
            let shared = two_shard_ratio(true, slots, skew, 2_000_000);
            println!("  skew {skew}, N {slots:>7}: per shard {own:.4}  shared {shared:.4}");
        }
    }
}

fn ops(c: &mut Criterion) {
    ratios();
    let mut g = c.benchmark_group("cache_store");
    for (name, eviction) in [("lru", Eviction::Lru), ("s3fifo", Eviction::S3Fifo)] {
        let mut s = Store::new(eviction, 100_000);
        for k in 0..100_000u64 {
            s.insert(k, k, 1);
        }
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new("get_hit_100k", name), |b| {
            b.iter(|| {
                i = (i + 7919) % 100_000;
                // a key that may have been evicted by the inserts below: hit or miss, same path
                s.get(i).is_some()
            })
        });
        let mut k = 100_000u64;
        g.bench_function(BenchmarkId::new("insert_evict_100k", name), |b| {
            b.iter(|| {
                k += 1;
                s.insert(k, k, 1)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, ops);
criterion_main!(benches);
