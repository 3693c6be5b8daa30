//! `[redis] tls = true`: leases go to a real `redis-server` speaking TLS only, its certificate
//! verified against `ca_file` and the gateway's own certificate shown when Redis asks for
//! one; a Redis the gateway cannot verify, or one that refuses the gateway, is a Redis that
//! is down (`on_redis_down`), never a request let through unchecked or left hanging. Skips,
//! saying why, without `redis-server`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::path::Path;

use support::redis::Redis;
use support::tls::Ca;
use support::{Gateway, TempDir, request};

/// A node whose `/q` has a quota of 3 an hour, counted in the TLS Redis on `port`.
fn node(port: u16, ca: &Path, client: Option<(&Path, &Path)>) -> Gateway {
    let client = client.map_or(String::new(), |(c, k)| {
        format!(
            "cert_file = \"{}\"\nkey_file = \"{}\"\n",
            c.display(),
            k.display()
        )
    });
    let text = format!(
        "[redis]\naddress = \"127.0.0.1:{port}\"\ntls = true\nca_file = \"{}\"\n{client}command_timeout = \"5s\"\nconnect_timeout = \"5s\"\n\n[[route]]\nname = \"q\"\npath = \"/q\"\n[[route.policy]]\nkind = \"quota\"\nlimit = 3\nperiod = \"hour\"\nkey = [\"route\"]\non_redis_down = \"deny\"\n[[route.policy]]\nkind = \"respond\"\n",
        ca.display()
    );
    Gateway::start("auto", "shards = 1", &text).expect("gateway starts")
}

#[test]
fn leases_go_over_verified_tls_and_a_redis_not_trusted_or_not_trusting_is_down() {
    let dir = TempDir::new();
    let ca = Ca::new("redis ca");
    let (cert, key) = ca
        .issue("redis", &["127.0.0.1"], false)
        .write(&dir.0, "redis");
    let (client_cert, client_key) = ca.issue("gateway", &["gateway"], false).write(&dir.0, "gw");
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let other_ca = dir.0.join("other.pem");
    std::fs::write(&other_ca, Ca::new("another ca").pem()).unwrap();
    let Some(redis) = Redis::start_tls(&cert, &key, &ca_file, true) else {
        return;
    };
    // counted in Redis over TLS: 3, then the quota is spent
    let g = node(redis.port, &ca_file, Some((&client_cert, &client_key)));
    let statuses: Vec<u16> = (0..5)
        .map(|_| request(g.addr, "GET", "/q", "", b"").status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // a gateway verifying against another CA never leases: on_redis_down = "deny" answers
    let wrong = node(redis.port, &other_ca, Some((&client_cert, &client_key)));
    let r = request(wrong.addr, "GET", "/q", "", b"");
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    assert!(
        support::eventually(|| wrong
            .log_lines()
            .iter()
            .any(|l| l.contains("[redis] ") && l.contains(" unavailable ("))),
        "{:?}",
        wrong.log_lines()
    );
    // nor does one without the client certificate this Redis asks for
    let anonymous = node(redis.port, &ca_file, None);
    assert_eq!(request(anonymous.addr, "GET", "/q", "", b"").status, 503);
}
