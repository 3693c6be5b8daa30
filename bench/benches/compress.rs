//! `policy/src/stages/compress/encoder.rs`: compressing a 16 KiB JSON response, fed in 4 KiB
//! pieces as the relay feeds it, per coding and level (throughput in input bytes), each with
//! the state of the response before it reset (`compress_16k_json`, as the stage does) and
//! with a state built for it (`compress_16k_json_new_state`); and — printed before the
//! timings — the compressed size at each.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use policy::stages::compress::Coding;
use policy::stages::compress::encoder::{Encoder, Levels, Spares};

/// A JSON array of about `n` bytes.
fn json(n: usize) -> Vec<u8> {
    let mut s = String::from("[");
    let mut i = 0u64;
    while s.len() < n {
        s += &format!(
            "{{\"id\":{i},\"sku\":\"SKU-{:05}\",\"name\":\"item {}\",\"price\":{}.{:02},\"tags\":[\"a\",\"b{}\"]}},",
            i * 7919 % 100_000,
            i % 13,
            i % 500,
            i % 100,
            i % 7
        );
        i += 1;
    }
    s.push_str("{}]");
    s.into_bytes()
}

fn compress(coding: Coding, level: i64, body: &[u8], out: &mut Vec<u8>, spares: &mut Spares) {
    let levels = Levels {
        gzip: u32::try_from(level).unwrap_or(6),
        brotli: u32::try_from(level).unwrap_or(4),
        zstd: i32::try_from(level).unwrap_or(3),
    };
    out.clear();
    let mut e = Encoder::new(coding, levels, Some(body.len() as u64), spares).unwrap();
    for piece in body.chunks(4096) {
        e.write(piece, out).unwrap();
    }
    e.finish(out, spares).unwrap();
}

fn ops(c: &mut Criterion) {
    let body = json(16 * 1024);
    let runs: [(&str, Coding, &[i64]); 3] = [
        ("gzip", Coding::Gzip, &[1, 2, 6, 9]),
        ("br", Coding::Br, &[1, 4, 9]),
        ("zstd", Coding::Zstd, &[1, 3, 9]),
    ];
    let mut out = Vec::with_capacity(body.len());
    println!("16 KiB JSON ({} bytes) compressed to:", body.len());
    for (name, coding, levels) in runs {
        for &l in levels {
            compress(coding, l, &body, &mut out, &mut Spares::default());
            println!("  {name} level {l}: {} bytes", out.len());
        }
    }
    for (group, keep) in [
        ("compress_16k_json", true),
        ("compress_16k_json_new_state", false),
    ] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Bytes(body.len() as u64));
        for (name, coding, levels) in runs {
            for &l in levels {
                let mut spares = Spares::default();
                g.bench_function(BenchmarkId::new(name, l), |b| {
                    b.iter(|| {
                        if !keep {
                            spares = Spares::default();
                        }
                        compress(coding, l, &body, &mut out, &mut spares)
                    });
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, ops);
criterion_main!(benches);
