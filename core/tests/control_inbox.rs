//! The per-shard inbox: a message reaches every shard and is answered while the shards are
//! idle and while they are busy serving; the counters it brings back follow the traffic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::DRIVERS;
use support::inproc::InProcess;

const ROUTES: &str =
    "[[route]]\npath = \"/{*rest}\"\n[[route.policy]]\nkind = \"respond\"\nbody = \"ok\"\n";

/// Asks every shard for its counters `n` times, `every` apart; the time each round took,
/// sorted.
fn ask(g: &InProcess, n: usize, every: Duration, last: &mut u64) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        std::thread::sleep(every);
        let t = Instant::now();
        // every shard answers (asserted by `counters`) within the deadline
        let all = g.counters(Duration::from_secs(2));
        took.push(t.elapsed());
        let requests: u64 = all.iter().map(|c| c.requests).sum();
        assert!(requests >= *last, "counters never go back");
        *last = requests;
    }
    took.sort();
    took
}

/// Keep-alive clients sending pipelined requests as fast as they are answered, until `stop`.
fn load(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(support::DEADLINE)).unwrap();
    s.set_nodelay(true).unwrap();
    let batch = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n".repeat(8);
    let reply = b"HTTP/1.1 200 OK";
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        s.write_all(&batch).unwrap();
        let mut seen = 0;
        while seen < 8 {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the gateway closed a busy connection");
            pending.extend_from_slice(&buf[..n]);
            // each answer ends with its 2-byte body "ok"
            while let Some(i) = pending.windows(reply.len()).position(|w| w == reply) {
                let Some(end) = pending[i..]
                    .windows(4)
                    .position(|w| w == b"\r\nok")
                    .map(|e| i + e + 4)
                else {
                    break;
                };
                pending.drain(..end);
                seen += 1;
            }
        }
        done.fetch_add(8, Ordering::Relaxed);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
fn every_shard_answers_its_inbox_idle_and_under_load() {
    for driver in DRIVERS {
        let Some(g) = InProcess::start(driver, "shards = 2", ROUTES) else {
            continue;
        };
        let mut last = 0;
        let idle = ask(&g, 20, Duration::ZERO, &mut last);

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let (stop, done) = (stop.clone(), done.clone());
                let addr = g.addr;
                std::thread::spawn(move || load(addr, stop, done))
            })
            .collect();
        // wait until the load is on
        let start = Instant::now();
        while done.load(Ordering::Relaxed) < 1000 && start.elapsed() < support::DEADLINE {
            std::thread::yield_now();
        }
        let before = last;
        // asked while the shards are busy: 50 times over about half a second
        let busy = ask(&g, 50, Duration::from_millis(10), &mut last);
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        assert!(last > before, "{driver}: the counters saw the traffic");
        let served = done.load(Ordering::Relaxed);
        assert!(served >= 1000, "{driver}: the load ran ({served} answers)");
        // figures for the record, not assertions (the machine is shared)
        println!(
            "{driver}: counters from 2 shards: idle median {:.3} ms max {:.3} ms; under load ({served} answers) median {:.3} ms max {:.3} ms",
            ms(idle[idle.len() / 2]),
            ms(idle[idle.len() - 1]),
            ms(busy[busy.len() / 2]),
            ms(busy[busy.len() - 1]),
        );
    }
}
