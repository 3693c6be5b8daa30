//! `proto/src/parse.rs` and `chunked.rs`: our parser vs httparse on the same bytes (ours also
//! does framing, Host and field kinds, which httparse leaves to its caller), chunked decoding.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use proto::{Limits, RequestHead, Status, parse_request};

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_request");
    for (name, bytes) in bench::REQUESTS {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        let mut head = RequestHead::with_capacity(100);
        let limits = Limits::default();
        g.bench_with_input(BenchmarkId::new("shardgate", name), bytes, |b, bytes| {
            b.iter(|| {
                let r = parse_request(std::hint::black_box(bytes), &mut head, &limits);
                assert!(matches!(r, Ok(Status::Complete(_))));
            })
        });
        g.bench_with_input(BenchmarkId::new("httparse", name), bytes, |b, bytes| {
            b.iter(|| {
                let mut hdrs = [httparse::EMPTY_HEADER; 100];
                let mut req = httparse::Request::new(&mut hdrs);
                let r = req.parse(std::hint::black_box(bytes));
                assert!(matches!(r, Ok(httparse::Status::Complete(_))));
            })
        });
    }
    g.finish();
}

fn chunked(c: &mut Criterion) {
    let mut body = Vec::new();
    for _ in 0..16 {
        body.extend_from_slice(b"1000\r\n");
        body.extend(std::iter::repeat_n(b'x', 4096));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let mut g = c.benchmark_group("chunked_decode");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("shardgate_64KiB_in_4KiB_chunks", |b| {
        b.iter(|| {
            let mut dec = proto::ChunkedDecoder::new();
            let mut pos = 0;
            let mut data = 0;
            loop {
                match dec.step(&body[pos..]).unwrap() {
                    proto::Step::Data { len, consumed, .. } => {
                        data += len;
                        pos += consumed;
                    }
                    proto::Step::Done { .. } => break,
                    proto::Step::NeedMore => unreachable!(),
                }
            }
            std::hint::black_box(data)
        })
    });
    g.finish();
}

fn serialize(c: &mut Criterion) {
    let mut out = Vec::with_capacity(1024);
    c.bench_function("write_status_and_fields", |b| {
        b.iter(|| {
            out.clear();
            proto::write::put_status_line(&mut out, 200, b"OK");
            proto::write::put_field(&mut out, b"Content-Type", b"application/json");
            proto::write::put_field(&mut out, b"Via", b"1.1 shardgate");
            proto::write::put_content_length(&mut out, 16384);
            out.extend_from_slice(b"\r\n");
            std::hint::black_box(out.len())
        })
    });
}

criterion_group!(benches, parse, chunked, serialize);
criterion_main!(benches);
