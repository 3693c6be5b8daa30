//! Hot reload on SIGHUP: a valid new config answers its new routes while a keep-alive client
//! and a WebSocket opened before it keep working; an invalid one is refused with its
//! file:line:column and the running config stays; reloads under load lose no request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use support::ws::{EchoOrigin, handshake, read_frame, write_frame};
use support::{DEADLINE, DRIVERS, Gateway, eventually, read_response, request};

/// The config after `[server]`: a WebSocket route to `origin` and one answered route per
/// name in `routes` (answering its own name).
fn rest(origin: std::net::SocketAddr, routes: &[&str]) -> String {
    let mut s = format!(
        "[[upstream]]\nname = \"ws\"\ntargets = [\"{origin}\"]\n[[route]]\nname = \"ws\"\npath = \"/chat\"\nupstream = \"ws\"\n"
    );
    for r in routes {
        s += &format!(
            "[[route]]\nname = \"{r}\"\npath = \"/{r}\"\n[[route.policy]]\nkind = \"respond\"\nbody = \"{r}\"\n"
        );
    }
    s
}

/// Rewrites the running gateway's config file (its `[server]` table kept) and sends SIGHUP.
fn reload(g: &Gateway, driver: &str, text: &str) {
    let server =
        format!("[server]\nlisten = [\"127.0.0.1:0\"]\ndriver = \"{driver}\"\nshards = 2\n");
    std::fs::write(g.config_path(), format!("{server}{text}")).unwrap();
    g.signal("HUP");
}

#[test]
fn a_reload_adds_routes_keeps_connections_and_refuses_a_broken_file() {
    for driver in DRIVERS {
        let origin = EchoOrigin::start();
        let Some(g) = Gateway::start(driver, "shards = 2", &rest(origin.addr, &["one"])) else {
            continue;
        };
        assert_eq!(request(g.addr, "GET", "/one", "", b"").body, b"one");
        assert_eq!(request(g.addr, "GET", "/two", "", b"").status, 404);
        // opened before the reload: a keep-alive client and a WebSocket
        let mut keep = g.connect();
        let mut pending = Vec::new();
        let mut ws = TcpStream::connect(g.addr).unwrap();
        ws.set_read_timeout(Some(DEADLINE)).unwrap();
        assert!(handshake(&mut ws, "dGhlIHNhbXBsZSBub25jZQ==").starts_with("HTTP/1.1 101"));
        reload(&g, driver, &rest(origin.addr, &["one", "two"]));
        assert!(
            eventually(|| request(g.addr, "GET", "/two", "", b"").body == b"two"),
            "{driver}: the new route answers"
        );
        keep.write_all(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(
            read_response(&mut keep, &mut pending, false).body,
            b"one",
            "{driver}"
        );
        write_frame(&mut ws, 0x1, b"still here", Some([9, 9, 9, 9])).unwrap();
        assert_eq!(
            read_frame(&mut ws),
            Some((0x1, b"still here".to_vec())),
            "{driver}: the WebSocket survived"
        );
        // a broken file: refused with where, the running config stays
        reload(
            &g,
            driver,
            "[[route]]\npath = \"/three\"\nupstream = \"nowhere\"\n",
        );
        assert!(
            eventually(|| g
                .log_lines()
                .iter()
                .any(|l| l.contains("reload of") && l.contains("refused"))),
            "{driver}: {:?}",
            g.log_lines()
        );
        let log = g.log_lines().join("\n");
        assert!(
            log.contains("shardgate.toml:7:12"),
            "{driver}: the error is located: {log}"
        );
        assert_eq!(
            request(g.addr, "GET", "/two", "", b"").body,
            b"two",
            "{driver}"
        );
        assert_eq!(request(g.addr, "GET", "/three", "", b"").status, 404);
    }
}

/// Reloads refused so far.
fn refused(g: &Gateway) -> usize {
    g.log_lines()
        .iter()
        .filter(|l| l.contains("refused"))
        .count()
}

#[test]
fn twenty_reloads_under_load_lose_no_request() {
    for driver in DRIVERS {
        let origin = EchoOrigin::start();
        let Some(g) = Gateway::start(driver, "shards = 2", &rest(origin.addr, &["one"])) else {
            continue;
        };
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let (addr, stop, served) = (g.addr, stop.clone(), served.clone());
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(DEADLINE)).unwrap();
                    let mut pending = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        s.write_all(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n")
                            .unwrap();
                        let r = read_response(&mut s, &mut pending, false);
                        assert_eq!(r.status, 200);
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for i in 0..20 {
            let text = if i % 2 == 0 {
                rest(origin.addr, &["one", &format!("r{i}")])
            } else {
                "this is not toml".to_string()
            };
            reload(&g, driver, &text);
            let done = served.load(Ordering::SeqCst);
            assert!(eventually(|| served.load(Ordering::SeqCst) > done + 20));
            if i % 2 == 0 {
                let path = format!("/r{i}");
                assert!(
                    eventually(|| request(g.addr, "GET", &path, "", b"").status == 200),
                    "{driver}: reload {i}"
                );
            } else {
                // each refusal is reported (signals that arrive together are one reload)
                let want = i / 2 + 1;
                assert!(eventually(|| refused(&g) == want), "{driver}: reload {i}");
            }
        }
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
        assert_eq!(refused(&g), 10, "{driver}: every invalid file reported");
    }
}

/// The address a reload logged it now listens on, for `ip`.
fn listening_on(g: &Gateway, ip: &str) -> std::net::SocketAddr {
    let key = format!("reload: listening on {ip}:");
    assert!(eventually(|| g
        .log_lines()
        .iter()
        .any(|l| l.contains(&key))));
    let line = g
        .log_lines()
        .into_iter()
        .find(|l| l.contains(&key))
        .unwrap();
    line.split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_reload_adds_and_removes_listeners_and_their_connections_finish() {
    for driver in DRIVERS {
        let origin = EchoOrigin::start();
        let Some(g) = Gateway::start(driver, "shards = 2", &rest(origin.addr, &["one"])) else {
            continue;
        };
        let server = |listen: &str| {
            format!("[server]\nlisten = [{listen}]\ndriver = \"{driver}\"\nshards = 2\n")
        };
        let mut keep = g.connect();
        let mut pending = Vec::new();
        let ask = |s: &mut TcpStream, pending: &mut Vec<u8>| {
            s.write_all(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            read_response(s, pending, false)
        };
        assert_eq!(ask(&mut keep, &mut pending).status, 200);
        // a second listener, on another loopback address (port 0: the reload binds one)
        let text = rest(origin.addr, &["one"]);
        let both = format!("{}{text}", server("\"127.0.0.1:0\", \"127.0.0.2:0\""));
        std::fs::write(g.config_path(), both).unwrap();
        g.signal("HUP");
        let second = listening_on(&g, "127.0.0.2");
        assert_eq!(
            request(second, "GET", "/one", "", b"").body,
            b"one",
            "{driver}"
        );
        assert_eq!(request(g.addr, "GET", "/one", "", b"").status, 200);
        // the first one removed: no new connections there, the open one is still served
        let only = format!("{}{text}", server("\"127.0.0.2:0\""));
        std::fs::write(g.config_path(), only).unwrap();
        g.signal("HUP");
        assert!(eventually(|| g
            .log_lines()
            .iter()
            .any(|l| l.contains("no longer listening on 127.0.0.1:0"))));
        assert!(
            eventually(|| TcpStream::connect(g.addr).is_err()),
            "{driver}: the removed listener still accepts"
        );
        assert_eq!(ask(&mut keep, &mut pending).status, 200, "{driver}");
        assert_eq!(request(second, "GET", "/one", "", b"").body, b"one");
    }
}

#[test]
fn a_reload_serves_renewed_certificates_to_new_connections() {
    use support::tls::{self, Ca};
    let origin = EchoOrigin::start();
    let dir = support::TempDir::new();
    let ca = Ca::new("reload CA");
    let old = ca.issue("old", &["gw.test"], false);
    old.write(&dir.0, "gw");
    let d = dir.0.display();
    let rest = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[listener.tls]\ncertificates = [{{ cert = \"{d}/gw.pem\", key = \"{d}/gw.key\" }}]\n{}",
        rest(origin.addr, &["one"])
    );
    let Some(g) = Gateway::start("auto", "shards = 2", &rest) else {
        return;
    };
    let client = tls::client_config(&ca, &[&rustls::version::TLS13], None);
    let leaf = |s: &tls::Tls| s.conn.peer_certificates().unwrap()[0].clone();
    let mut before = tls::connect(g.addrs[1], "gw.test", &client).unwrap();
    assert_eq!(leaf(&before), old.der);
    // renewed on disk (as certbot would), then SIGHUP
    let new = ca.issue("new", &["gw.test"], false);
    new.write(&dir.0, "gw");
    let server = "[server]\nlisten = [\"127.0.0.1:0\"]\ndriver = \"auto\"\nshards = 2\n";
    std::fs::write(g.config_path(), format!("{server}{rest}")).unwrap();
    g.signal("HUP");
    assert!(eventually(|| g
        .log_lines()
        .iter()
        .any(|l| l.contains("SIGHUP: reloaded"))));
    // every shard switches: each new connection gets the new certificate
    for _ in 0..6 {
        let s = tls::connect(g.addrs[1], "gw.test", &client).unwrap();
        assert_eq!(leaf(&s), new.der);
    }
    // the connection from before goes on with its session
    let answer = tls::exchange(
        &mut before,
        "GET /one HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(answer.ends_with("one"), "{answer}");
}
