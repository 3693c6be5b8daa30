//! `policy/src/cache/table.rs`, the cache stage's table at 100,000 stored responses: a hit
//! looked up by key text built per lookup as a request builds it (hash, then the text
//! compared; random keys over ~150 MB, so mostly cache-cold), a hit through a `Vary` marker
//! (two lookups and a variant key built; one hot key), and storing a 1 KiB response that
//! evicts another.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use criterion::{Criterion, criterion_group, criterion_main};
use policy::cache::entry::Entry;
use policy::cache::freshness::ResponseFacts;
use policy::cache::store::Eviction;
use policy::cache::table::{Fill, Found, Table};

const ENTRIES: u64 = 100_000;
const BODY: usize = 1024;

fn primary(i: u64) -> Vec<u8> {
    format!("bench.local\n/items/{i}").into_bytes()
}

fn fill(vary: Vec<Vec<u8>>) -> Fill {
    Fill {
        vary,
        facts: ResponseFacts::default(),
        fields: b"Content-Type: application/json\r\nCache-Control: max-age=60\r\n".to_vec(),
        body: vec![b'x'; BODY],
    }
}

fn ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_table");
    // room for ENTRIES of these responses (the largest key's size each), so every insert
    // below evicts
    let f = fill(Vec::new());
    let one = Entry::new(
        primary(ENTRIES).into(),
        Box::from(&b"u"[..]),
        f.facts,
        f.fields.into(),
        bytes::Bytes::from(f.body),
    )
    .size();
    let t = Table::new(Eviction::S3Fifo, one * ENTRIES);
    for i in 0..ENTRIES {
        let p = primary(i);
        t.insert(fill(Vec::new()), &p, b"u", |_| None);
    }
    let mut i = 0u64;
    g.bench_function("find_hit_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % ENTRIES;
            matches!(t.find(&primary(i), |_| None), Found::Entry(_))
        })
    });
    let vp = b"bench.local\n/varied".to_vec();
    let gz = |_: &[u8]| Some(&b"gzip"[..]);
    t.insert(fill(vec![b"accept-encoding".to_vec()]), &vp, b"u", gz);
    g.bench_function("find_vary_hit", |b| {
        b.iter(|| matches!(t.find(&vp, gz), Found::Entry(_)))
    });
    let mut k = ENTRIES;
    g.bench_function("insert_1k_evicting_100k", |b| {
        b.iter(|| {
            k += 1;
            let p = primary(k);
            t.insert(fill(Vec::new()), &p, b"u", |_| None);
        })
    });
    g.finish();
}

criterion_group!(benches, ops);
criterion_main!(benches);
