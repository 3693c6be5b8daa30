//! Call analytics (`core/src/calls.rs`, `core/src/manage/`): what a shard pays per finished
//! exchange to count it (`Tally::record`, one hash-map update keyed by minute, route,
//! consumer and class, with 1,000 consumers in the minute), and what the management thread
//! pays to add one flush's rows to the SQLite store (`add_calls`, 1,000 rows in one
//! transaction) and to read an hour of them back.
//!
//! `store_choice`: why that store is SQLite rather than redb — the same work in both: adding
//! one flush of 1,000 call rows (a row with the same key gets its sums added: an upsert in
//! SQLite, a read-modify-write in redb, one transaction each), and reading one tenant's hour
//! back decoded (60,000 rows: a range over a (tenant, minute) index in SQLite, over keys that
//! begin with tenant and minute in redb). redb is only here, for this comparison.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
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
    // (empty when a filter skipped the bench above)
    let _: Vec<CallRow> = tally.take().0;
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

const CALLS: TableDefinition<&str, &[u8]> = TableDefinition::new("calls");

/// The redb key: tenant and minute first, so a tenant's time range is one key range.
fn key(r: &Stored) -> String {
    format!(
        "{}\0{:020}\0{}\0{}\0{}\0{}",
        r.tenant, r.start_ms, r.api, r.route, r.consumer, r.class
    )
}

fn encode(s: &Sums) -> Vec<u8> {
    let mut v = Vec::with_capacity(18 * 8);
    for n in [s.count, s.errors, s.bytes_in, s.bytes_out]
        .iter()
        .chain(&s.latency)
    {
        v.extend_from_slice(&n.to_le_bytes());
    }
    v
}

fn add(into: &mut [u8], more: &[u8]) {
    for (a, b) in into.chunks_exact_mut(8).zip(more.chunks_exact(8)) {
        let n =
            u64::from_le_bytes(a.try_into().unwrap()) + u64::from_le_bytes(b.try_into().unwrap());
        a.copy_from_slice(&n.to_le_bytes());
    }
}

fn redb_add(db: &redb::Database, rows: &[Stored]) {
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(CALLS).unwrap();
        for r in rows {
            let k = key(r);
            let mut v = encode(&r.sums);
            if let Some(old) = t.get(k.as_str()).unwrap() {
                add(&mut v, old.value());
            }
            t.insert(k.as_str(), v.as_slice()).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// A tenant's rows in a time range, decoded into what the store hands the queries (as the
/// SQLite side does).
fn redb_read(db: &redb::Database, tenant: &str, from_ms: u64, to_ms: u64) -> Vec<Stored> {
    let tx = db.begin_read().unwrap();
    let t = tx.open_table(CALLS).unwrap();
    let lo = format!("{tenant}\0{from_ms:020}");
    let hi = format!("{tenant}\0{to_ms:020}");
    let mut out = Vec::new();
    for e in t.range(lo.as_str()..hi.as_str()).unwrap() {
        let (k, v) = e.unwrap();
        let parts: Vec<&str> = k.value().split('\0').collect();
        let n: Vec<u64> = v
            .value()
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mut latency = [0u64; 14];
        latency.copy_from_slice(&n[4..18]);
        out.push(Stored {
            period: Period::Minute,
            start_ms: parts[1].parse().unwrap(),
            tenant: parts[0].into(),
            api: parts[2].into(),
            route: parts[3].into(),
            consumer: parts[4].into(),
            class: parts[5].parse().unwrap(),
            sums: Sums {
                count: n[0],
                errors: n[1],
                bytes_in: n[2],
                bytes_out: n[3],
                latency,
            },
        });
    }
    out
}

/// SQLite against redb on the same work (see the top of the file).
fn store_choice(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("sg-store-choice-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut sqlite = shardgate::manage::sqlite::open(&dir.join("c.db")).unwrap();
    let redb = redb::Database::create(dir.join("c.redb")).unwrap();
    // an hour of one tenant's minutes in both, to read back
    for m in 0..60 {
        let r = rows(1000, 1_000_000 + m);
        sqlite.add_calls(&r).unwrap();
        redb_add(&redb, &r);
    }
    let (from, to) = (1_000_000 * 60_000, 1_000_060 * 60_000);
    assert_eq!(
        sqlite.calls(Some("acme"), from, to, None).unwrap().len(),
        60_000
    );
    assert_eq!(redb_read(&redb, "acme", from, to).len(), 60_000);
    let mut g = c.benchmark_group("store_choice");
    g.sample_size(20);
    let mut minute = 2_000_000u64;
    g.bench_function("sqlite_add_1000_rows", |b| {
        b.iter(|| {
            minute += 1;
            sqlite.add_calls(&rows(1000, minute)).unwrap();
        })
    });
    g.bench_function("redb_add_1000_rows", |b| {
        b.iter(|| {
            minute += 1;
            redb_add(&redb, &rows(1000, minute));
        })
    });
    g.bench_function("sqlite_read_hour_60000_rows", |b| {
        b.iter(|| sqlite.calls(Some("acme"), from, to, None).unwrap().len())
    });
    g.bench_function("redb_read_hour_60000_rows", |b| {
        b.iter(|| redb_read(&redb, "acme", from, to))
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, ops, store_choice);
criterion_main!(benches);
