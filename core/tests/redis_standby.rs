//! `[redis] standbys`: the broker moves to the next server at a failure, so it settles on the
//! one that accepts writes — past a read-only replica to the primary, and to the replica once
//! it is promoted after the primary died — with `on_redis_down` deciding in between and no
//! request left hanging. Real `redis-server`s with real replication; skips, saying why,
//! without `redis-server`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use support::redis::Redis;
use support::{Gateway, request};

#[test]
fn leases_move_past_a_read_only_replica_and_to_it_once_promoted() {
    let Some(mut primary) = Redis::start() else {
        return;
    };
    let Some(replica) = Redis::start_replica(primary.port) else {
        return;
    };
    // the replica first: it refuses the scripts' writes (READONLY), the broker moves on
    let text = format!(
        "[redis]\naddress = \"127.0.0.1:{}\"\nstandbys = [\"127.0.0.1:{}\"]\nlease_ttl = \"200ms\"\ncommand_timeout = \"200ms\"\n\n[[route]]\nname = \"q\"\npath = \"/q\"\n[[route.policy]]\nkind = \"quota\"\nlimit = 1000000\nperiod = \"day\"\nkey = [\"route\"]\non_redis_down = \"deny\"\n[[route.policy]]\nkind = \"respond\"\n",
        replica.port, primary.port
    );
    let g = Gateway::start("auto", "shards = 1", &text).expect("gateway starts");
    let get = || request(g.addr, "GET", "/q", "", b"").status;
    let first = get();
    assert!(first == 503 || first == 200, "{first}");
    assert!(
        support::eventually(|| get() == 200),
        "never leased from the primary"
    );
    assert!(
        g.log_lines().iter().any(|l| l
            .contains(&format!("[redis] 127.0.0.1:{} unavailable", replica.port))
            && l.contains("read only replica")),
        "{:?}",
        g.log_lines()
    );
    // the primary dies: the replica is read-only, so the quota cannot be counted
    primary.stop();
    assert!(
        support::eventually(|| (0..5).all(|_| get() == 503)),
        "a read-only replica was leased from"
    );
    // promoted, it takes the writes: leasing resumes there
    assert_eq!(replica.command("REPLICAOF NO ONE"), "+OK");
    assert!(
        support::eventually(|| get() == 200),
        "leasing did not move to the promoted replica"
    );
}
