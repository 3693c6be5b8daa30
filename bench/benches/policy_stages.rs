//! `policy/src/stages/*` and their tables: JWT verification uncached vs from the
//! verified-token cache (HS256, RS256, ES256), a rate-limit token-bucket take, the LRU table
//! (hit, and insert with eviction, at 10,000 entries), and a CIDR lookup among 10,000
//! networks — each through the stage's real `on_request` where there is one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use policy::cidr::CidrSet;
use policy::stages::build_stage;
use policy::{Exchange, Params, RouteId, Stage, StageContext, Verdict};
use proto::{Limits, RequestHead};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/keys");

fn stage(toml_text: &str) -> policy::AnyStage {
    let ctx = StageContext::alone(1, Path::new(KEYS));
    build_stage(toml::from_str(toml_text).unwrap(), &ctx).unwrap()
}

fn request(extra: &str) -> (Vec<u8>, RequestHead) {
    let raw =
        format!("GET /orders/1 HTTP/1.1\r\nHost: api.example.com\r\n{extra}\r\n").into_bytes();
    let mut head = RequestHead::with_capacity(16);
    proto::parse_request(&raw, &mut head, &Limits::default()).unwrap();
    (raw, head)
}

fn exchange() -> Exchange {
    let peer: SocketAddr = "203.0.113.9:4000".parse().unwrap();
    Exchange::new(peer, Instant::now(), RouteId(0), Params::default())
}

fn jwt(c: &mut Criterion) {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = serde_json::json!({ "sub": "alice", "exp": exp, "scope": "read write" });
    let keys = [
        (
            "HS256",
            Algorithm::HS256,
            EncodingKey::from_secret(b"bench-secret"),
            "secret = \"bench-secret\"",
        ),
        (
            "RS256",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&std::fs::read(format!("{KEYS}/rsa_private.pem")).unwrap())
                .unwrap(),
            "public_key_file = \"rsa_public.pem\"",
        ),
        (
            "ES256",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&std::fs::read(format!("{KEYS}/ec_private.pem")).unwrap())
                .unwrap(),
            "public_key_file = \"ec_public.pem\"",
        ),
    ];
    let mut g = c.benchmark_group("jwt_verify");
    for (name, alg, key, source) in keys {
        let token = encode(&Header::new(alg), &claims, &key).unwrap();
        let (raw, head) = request(&format!("Authorization: Bearer {token}\r\n"));
        for (cached, size) in [("uncached", 0), ("cached", 10_000)] {
            let s = stage(&format!(
                "kind = \"jwt\"\nalgorithms = [\"{name}\"]\n{source}\ncache_size = {size}\n"
            ));
            g.bench_function(BenchmarkId::new(name, cached), |b| {
                b.iter(|| {
                    let mut ex = exchange();
                    let v = s.on_request(&head, std::hint::black_box(&raw), &mut ex);
                    assert!(matches!(v, Verdict::Continue));
                })
            });
        }
    }
    g.finish();
}

fn rate_limit(c: &mut Criterion) {
    let s = stage("kind = \"rate_limit\"\nrate = 1000000000\nkey = [\"ip\"]\n");
    let (raw, head) = request("");
    c.bench_function("rate_limit_take", |b| {
        b.iter(|| {
            let mut ex = exchange();
            let v = s.on_request(&head, std::hint::black_box(&raw), &mut ex);
            assert!(matches!(v, Verdict::Continue));
        })
    });
}

fn cidr(c: &mut Criterion) {
    let mut g = c.benchmark_group("cidr_lookup");
    for n in [10usize, 10_000] {
        let mut x: u32 = 0x9e37_79b9;
        let nets: Vec<String> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                format!("{}/{}", std::net::Ipv4Addr::from(x), 16 + x % 17)
            })
            .collect();
        let set = CidrSet::parse(&nets).unwrap();
        let probe: IpAddr = "198.51.100.77".parse().unwrap();
        g.bench_with_input(BenchmarkId::new("ipv4", n), &probe, |b, ip| {
            b.iter(|| set.contains(std::hint::black_box(*ip)))
        });
    }
    g.finish();
}

fn lru(c: &mut Criterion) {
    let mut g = c.benchmark_group("lru_10k");
    let mut table: policy::lru::Lru<u64> = policy::lru::Lru::new(10_000);
    for k in 0..10_000u64 {
        table.insert(k, k);
    }
    let mut k = 0u64;
    g.bench_function("get_hit", |b| {
        b.iter(|| {
            k = (k + 7919) % 10_000;
            assert!(table.get(std::hint::black_box(k)).is_some());
        })
    });
    let mut next = 10_000u64;
    g.bench_function("insert_evicting", |b| {
        b.iter(|| {
            next += 1;
            table.insert(std::hint::black_box(next), next);
        })
    });
    g.finish();
}

criterion_group!(benches, jwt, rate_limit, lru, cidr);
criterion_main!(benches);
