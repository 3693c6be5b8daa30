//! Call analytics (`core/src/calls.rs`, `core/src/manage/`): what a shard pays per finished
//! exchange to count it (`Tally::record`, one hash-map update keyed by minute, route,
//! consumer and class, with 1,000 consumers in the minute), and what the management thread
//! pays to add one flush's rows to the SQLite store (`add_calls`, 1,000 rows in one
//! transaction) and to read an hour of them back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use shardgate::calls::{CallRow, Sums, Tally};
use shardgate::manage::analytics::{Period, Stored};
use shardgate::manage::store::Store;

fn exchange(consumer: &str) -> policy::Exchange {
    let mut ex = policy::Exchange::new(
        "127.0.0.1:1".parse().unwrap(),
        Instant::now(),
        policy::RouteId(0),
        policy::Params::default(),
    );
    ex.wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    ex.status = 200;
    ex.bytes_in = 100;
    ex.bytes_out = 200;
    ex.identity = Some(Rc::new(policy::Identity {
        consumer: consumer.into(),
        scopes: Rc::from(Vec::new()),
        roles: Rc::from(Vec::new()),
        claims: Rc::from(Vec::new()),
    }));
    ex
}

fn rows(n: u64, minute: u64) -> Vec<Stored> {
    (0..n)
        .map(|i| Stored {
            period: Period::Minute,
            start_ms: minute * 60_000,
            tenant: "acme".into(),
            api: "orders".into(),
            route: "orders".into(),
            consumer: format!("acme/c{i}"),
            class: 2,
            sums: Sums {
                count: 3,
                bytes_in: 300,
                bytes_out: 600,
                ..Sums::default()
            },
        })
        .collect()
}

fn ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("manage_calls");
    let tally = Tally::default();
    let route: Rc<str> = "orders".into();
    let exchanges: Vec<policy::Exchange> =
        (0..1000).map(|i| exchange(&format!("acme/c{i}"))).collect();
    let mut i = 0usize;
    g.bench_function("tally_record_1000_consumers", |b| {
        b.iter(|| {
            i = (i + 1) % exchanges.len();
            tally.record(Some(&route), &exchanges[i], Duration::from_micros(300));
        })
    });
    let taken: Vec<CallRow> = tally.take().0;
    assert!(!taken.is_empty());
    let path = std::env::temp_dir().join(format!("sg-bench-calls-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut store = shardgate::manage::sqlite::open(&path).unwrap();
    let mut minute = 30_000_000u64;
    g.sample_size(20);
    g.bench_function("sqlite_add_calls_1000_rows", |b| {
        b.iter(|| {
            minute += 1;
            store.add_calls(&rows(1000, minute)).unwrap();
        })
    });
    g.bench_function("sqlite_calls_read_hour", |b| {
        b.iter(|| {
            store
                .calls(
                    Some("acme"),
                    minute * 60_000 - 3_600_000,
                    (minute + 1) * 60_000,
                    None,
                )
                .unwrap()
        })
    });
    g.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, ops);
criterion_main!(benches);
