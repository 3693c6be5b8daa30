//! `shared = true` on the cache stage over two shards: each key is stored once for the whole
//! gateway (at its owner shard) and served from every shard; misses coalesce across shards;
//! purges find the one copy. Compared with the same traffic on per-shard caches.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use support::script::{Script, send, send_after};
use support::{Gateway, admin, request};

/// A gateway of two shards caching every route, `shared` or not, with an admin listener.
fn two_shards(origin: &Script, shared: bool) -> Option<Gateway> {
    let policy = format!("[[route.policy]]\nkind = \"cache\"\nshared = {shared}\n");
    let rest = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        support::route_all_policy(origin.addr, &policy)
    );
    Gateway::start("auto", "shards = 2", &rest)
}

/// The cache stage's figure `name` summed over shards.
fn figure(g: &Gateway, name: &str) -> u64 {
    let metrics = String::from_utf8(request(admin(g), "GET", "/metrics", "", b"").body).unwrap();
    support::stage_figure(&metrics, "cache", name)
}

/// Fills `paths` through 32 new connections each (so both shards see each path); returns
/// how many requests the origin saw for each.
fn fill(origin: &Script, g: &Gateway, paths: &[&str]) -> Vec<usize> {
    paths
        .iter()
        .map(|p| {
            origin.on(
                p,
                vec![
                    send(
                        "HTTP/1.1 200 OK\nCache-Control: max-age=1000\nCache-Tag: blue",
                        p
                    );
                    2
                ],
            );
            for _ in 0..32 {
                let r = request(g.addr, "GET", p, "", b"");
                assert_eq!((r.status, &r.body[..]), (200, p.as_bytes()), "{r:?}");
            }
            origin.seen(p).len()
        })
        .collect()
}

#[test]
fn one_copy_per_gateway_is_stored_once_and_served_from_every_shard() {
    let origin = Script::start();
    let paths = ["/s/one", "/s/two", "/s/three", "/s/four"];
    let Some(g) = two_shards(&origin, true) else {
        return;
    };
    assert_eq!(fill(&origin, &g, &paths), [1, 1, 1, 1], "one miss each");
    assert_eq!(
        (
            figure(&g, "hits"),
            figure(&g, "misses"),
            figure(&g, "stored")
        ),
        (124, 4, 4)
    );
    assert_eq!(figure(&g, "entries"), 4, "one copy of each");
    let asked = figure(&g, "asked");
    assert!(
        asked > 0,
        "the shard that does not own a key asks its owner"
    );
    assert_eq!(asked, figure(&g, "answered"), "every lookup answered");
    let purged = request(
        admin(&g),
        "POST",
        "/cache/purge?tag=blue",
        "Content-Length: 0\r\n",
        b"",
    );
    let v: serde_json::Value = serde_json::from_slice(&purged.body).unwrap();
    assert_eq!(v["purged"], 4, "{v}");
    // the same traffic on per-shard caches: each shard misses and keeps its own copy
    let origin = Script::start();
    let Some(g) = two_shards(&origin, false) else {
        return;
    };
    assert_eq!(
        fill(&origin, &g, &paths),
        [2, 2, 2, 2],
        "one miss per shard"
    );
    assert_eq!(figure(&g, "entries"), 8);
    assert_eq!(figure(&g, "asked"), 0);
}

#[test]
fn a_hundred_concurrent_misses_across_two_shards_cost_the_origin_one_request() {
    let origin = Script::start();
    let Some(g) = two_shards(&origin, true) else {
        return;
    };
    // the origin takes its time, so the misses overlap on both shards
    let slow = send_after(300, "HTTP/1.1 200 OK\nCache-Control: max-age=100", "once");
    origin.on("/co", vec![slow.clone(); 2]);
    let addr = g.addr;
    let burst = |path: &'static str| {
        let clients: Vec<_> = (0..100)
            .map(|_| std::thread::spawn(move || request(addr, "GET", path, "", b"")))
            .collect();
        for c in clients {
            let r = c.join().unwrap();
            assert_eq!((r.status, &r.body[..]), (200, &b"once"[..]), "{r:?}");
        }
    };
    burst("/co");
    assert_eq!(origin.seen("/co").len(), 1, "one request for the gateway");
    assert!(figure(&g, "coalesced") > 0);
    // per-shard caches coalesce per shard: the origin sees one request from each
    let origin = Script::start();
    let Some(g) = two_shards(&origin, false) else {
        return;
    };
    origin.on("/co", vec![slow; 2]);
    let addr = g.addr;
    let clients: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(move || request(addr, "GET", "/co", "", b"").status))
        .collect();
    assert!(clients.into_iter().all(|c| c.join().unwrap() == 200));
    assert_eq!(origin.seen("/co").len(), 2, "one per shard");
}

#[test]
fn an_unsafe_request_on_either_shard_invalidates_the_one_copy() {
    let origin = Script::start();
    let Some(g) = two_shards(&origin, true) else {
        return;
    };
    for round in 0..8 {
        let stored = format!("v{round}");
        origin.on(
            "/inv",
            vec![send(
                "HTTP/1.1 200 OK\nCache-Control: max-age=1000",
                &stored,
            )],
        );
        let before = origin.seen("/inv").len();
        for _ in 0..4 {
            assert_eq!(
                request(g.addr, "GET", "/inv", "", b"").body,
                stored.as_bytes()
            );
        }
        assert_eq!(
            origin.seen("/inv").len(),
            before + 1,
            "round {round}: stored once"
        );
        origin.on("/inv", vec![send("HTTP/1.1 204 No Content", "")]);
        let r = request(g.addr, "DELETE", "/inv", "", b"");
        assert_eq!(r.status, 204);
    }
    assert_eq!(figure(&g, "invalidated"), 8);
}

#[test]
fn concurrent_requests_for_a_stale_entry_revalidate_it_once_per_shard() {
    let origin = Script::start();
    let Some(g) = two_shards(&origin, true) else {
        return;
    };
    // the origin takes its time, so the requests for the stale entry overlap on both shards
    let seen = support::script::stale_burst(&origin, g.addr, "/reval", 2);
    // the fill, then one revalidation on the owner and at most one on the other shard
    assert!((2..=3).contains(&seen.len()), "{}", seen.len());
    assert!(
        seen.iter()
            .skip(1)
            .all(|r| r.contains("If-None-Match: \"r1\""))
    );
    // and what they brought is the one copy: fresh now, a hit on either shard
    for _ in 0..8 {
        let r = request(g.addr, "GET", "/reval", "", b"");
        assert!(r.header("cache-status").unwrap().contains("hit"), "{r:?}");
    }
    assert_eq!(origin.seen("/reval").len(), seen.len());
}
