//! A real shardgate started inside the test process (the library the binary runs), for tests
//! that talk to its shards through the control side: counters, inbox delivery.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shardgate::control::ShardCounters;
use shardgate::runtime::Started;

/// Running shards; drained and joined on drop.
pub struct InProcess {
    pub addr: SocketAddr,
    pub addrs: Vec<SocketAddr>,
    started: Option<Started>,
}

impl InProcess {
    /// Starts shards for `[server]` extras and the rest of a config, like `Gateway::start`.
    /// `None` when the driver is unavailable (printed).
    pub fn start(driver: &str, server_extra: &str, rest: &str) -> Option<InProcess> {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\ndriver = \"{driver}\"\npin = false\n{server_extra}\n{rest}"
        );
        shardgate::log::init_from_env();
        Self::start_text(&text)
    }

    /// Starts shards for a whole config text (which sets `listen` or `[[listener]]` itself).
    pub fn start_text(text: &str) -> Option<InProcess> {
        Self::start_resolving(text, shardgate::upstream::discovery::system_resolver())
    }

    /// `start_text` with the resolver discovery uses.
    pub fn start_resolving(
        text: &str,
        resolve: shardgate::upstream::discovery::Resolver,
    ) -> Option<InProcess> {
        shardgate::log::init_from_env();
        let config = conf::load_str("inproc.toml", text).unwrap();
        let started = match shardgate::runtime::start_all_with(Arc::new(config), resolve) {
            Ok(s) => s,
            Err(e) if e.contains("io_uring is not available") => {
                println!("skipping the io_uring run: {e}");
                return None;
            }
            Err(e) => panic!("shardgate did not start: {e}"),
        };
        Some(InProcess {
            addr: started.bound[0],
            addrs: started.bound.clone(),
            started: Some(started),
        })
    }

    /// Starts the drain (as SIGTERM would) without waiting for it.
    pub fn begin_drain(&self) {
        if let Some(s) = &self.started {
            s.control.request_drain();
        }
    }

    /// Every shard's counters (asserting each answered within `limit`).
    pub fn counters(&self, limit: Duration) -> Vec<ShardCounters> {
        let s = self.started.as_ref().unwrap();
        let all = s.control.counters(limit);
        assert_eq!(
            all.len(),
            s.handles.len(),
            "every shard answers within {limit:?}"
        );
        all
    }

    /// Counters summed over the shards.
    pub fn total(&self) -> ShardCounters {
        let mut t = ShardCounters::default();
        for c in self.counters(Duration::from_secs(5)) {
            t.accepted += c.accepted;
            t.open += c.open;
            t.parked += c.parked;
            t.over_limit += c.over_limit;
            t.requests += c.requests;
            t.retries += c.retries;
            t.tunnels += c.tunnels;
            t.finished += c.finished;
            for (a, b) in t.outcomes.iter_mut().zip(c.outcomes) {
                *a += b;
            }
            for (a, b) in t.classes.iter_mut().zip(c.classes) {
                *a += b;
            }
            t.refusals.extend(c.refusals);
            for (a, b) in t.h2.iter_mut().zip(c.h2) {
                *a += b;
            }
            for (a, b) in t.tls_handshakes.iter_mut().zip(c.tls_handshakes) {
                *a += b;
            }
            for (reason, n) in c.tls_failures {
                match t.tls_failures.iter_mut().find(|(r, _)| *r == reason) {
                    Some((_, m)) => *m += n,
                    None => t.tls_failures.push((reason, n)),
                }
            }
        }
        t
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(s) = self.started.take() {
            s.control.request_drain();
            for h in s.handles {
                let _ = h.join();
            }
        }
    }
}
