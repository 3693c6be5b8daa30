//! Targets that change while the gateway runs: names re-resolved through the resolver seam
//! (fed by the test, no network) and a watched targets file. A change reaches every shard,
//! requests in flight finish, idle connections to targets that stay are kept, and a new
//! target starts as `[upstream.health] start` says.
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
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::fleet::Target;
use support::inproc::InProcess;
use support::{DEADLINE, DRIVERS, TempDir, eventually, read_response, request};

/// A resolver that answers `svc.test:80` with what the test put in `addrs`.
fn resolver(addrs: &Arc<Mutex<Vec<SocketAddr>>>) -> shardgate::upstream::discovery::Resolver {
    let addrs = addrs.clone();
    Arc::new(move |name: &str| {
        assert_eq!(name, "svc.test:80", "only the configured name is resolved");
        Ok(addrs.lock().unwrap().clone())
    })
}

/// The targets of `pool` on every shard.
fn targets(g: &InProcess) -> Vec<SocketAddr> {
    g.counters(Duration::from_secs(5))
        .into_iter()
        .flat_map(|c| c.targets)
        .map(|t| t.addr)
        .collect()
}

fn config(driver: &str, server: &str, upstream: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\ndriver = \"{driver}\"\npin = false\n{server}\n[[upstream]]\nname = \"pool\"\n{upstream}\n[[route]]\npath = \"/{{*rest}}\"\nupstream = \"pool\"\n"
    )
}

/// One keep-alive client connection.
struct Client {
    s: TcpStream,
    pending: Vec<u8>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        Client {
            s,
            pending: Vec::new(),
        }
    }

    fn get(&mut self) -> u16 {
        self.s
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        read_response(&mut self.s, &mut self.pending, false).status
    }
}

#[test]
fn names_resolved_again_change_the_group_and_keep_what_stays() {
    for driver in DRIVERS {
        let (a, b) = (Target::start(), Target::start());
        let addrs = Arc::new(Mutex::new(vec![a.addr]));
        let upstream = "targets = [\"svc.test:80\"]\n[upstream.discovery]\nkind = \"dns\"\nrefresh = \"20ms\"\n";
        let text = config(driver, "shards = 1", upstream);
        let Some(g) = InProcess::start_resolving(&text, resolver(&addrs)) else {
            continue;
        };
        let mut c = Client::new(g.addr);
        assert!((0..10).all(|_| c.get() == 200));
        assert_eq!(
            (a.requests(), b.requests()),
            (10, 0),
            "{driver}: resolved at start"
        );
        // a second address: both get traffic
        addrs.lock().unwrap().push(b.addr);
        assert!(
            eventually(|| c.get() == 200 && b.requests() > 0),
            "{driver}"
        );
        for _ in 0..10 {
            assert_eq!(c.get(), 200);
        }
        // b goes away: only a, on the idle connection it had before the change
        let a_conns = a.accepts();
        addrs.lock().unwrap().retain(|x| *x == a.addr);
        assert!(
            eventually(|| targets(&g) == [a.addr]),
            "{driver}: the shard heard"
        );
        b.reset();
        a.reset();
        for _ in 0..20 {
            assert_eq!(c.get(), 200);
        }
        assert_eq!((a.requests(), b.requests()), (20, 0), "{driver}");
        assert_eq!(
            a.accepts(),
            a_conns,
            "{driver}: the pooled connection to a was kept"
        );
        // a request in flight when its target leaves still gets its answer
        a.delay(400);
        let addr = g.addr;
        a.reset();
        let slow = std::thread::spawn(move || request(addr, "GET", "/slow", "", b"").status);
        assert!(
            eventually(|| a.requests() == 1),
            "{driver}: the slow request reached a"
        );
        *addrs.lock().unwrap() = vec![b.addr];
        assert_eq!(
            slow.join().unwrap(),
            200,
            "{driver}: in flight through the change"
        );
        assert!(eventually(|| { c.get() == 200 && b.requests() > 0 }));
    }
}

#[test]
fn a_watched_file_changes_the_group_on_every_shard() {
    for driver in DRIVERS {
        let (a, b) = (Target::start(), Target::start());
        let dir = TempDir::new();
        let file = dir.0.join("targets.txt");
        std::fs::write(&file, format!("# the pool\n{}\n", a.addr)).unwrap();
        let upstream = format!(
            "[upstream.discovery]\nkind = \"file\"\nfile = \"{}\"\n",
            file.display()
        );
        let text = config(driver, "shards = 2", &upstream);
        let Some(g) =
            InProcess::start_resolving(&text, shardgate::upstream::discovery::system_resolver())
        else {
            continue;
        };
        for _ in 0..10 {
            assert_eq!(request(g.addr, "GET", "/", "", b"").status, 200);
        }
        assert_eq!(b.requests(), 0);
        std::fs::write(&file, format!("{} 1\n", b.addr)).unwrap();
        // both shards switch: new connections land on either
        assert!(
            eventually(|| {
                a.reset();
                (0..20).all(|_| request(g.addr, "GET", "/", "", b"").status == 200)
                    && a.requests() == 0
            }),
            "{driver}: every shard moved to b"
        );
        // a broken file keeps the last good targets (given the watcher's second to look)
        std::fs::write(&file, "not an address\n").unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            targets(&g),
            [b.addr, b.addr],
            "{driver}: both shards keep b"
        );
        b.reset();
        assert!((0..10).all(|_| request(g.addr, "GET", "/", "", b"").status == 200));
        assert_eq!(b.requests(), 10, "{driver}");
    }
}

#[test]
fn a_discovered_target_starts_as_the_health_checks_say() {
    for driver in DRIVERS {
        let (a, b) = (Target::start(), Target::start());
        b.sick(true);
        let addrs = Arc::new(Mutex::new(vec![a.addr]));
        let upstream = "targets = [\"svc.test:80\"]\n[upstream.discovery]\nkind = \"dns\"\nrefresh = \"20ms\"\n[upstream.health]\npath = \"/healthz\"\ninterval = \"30ms\"\ntimeout = \"30ms\"\njitter = \"0ms\"\nhealthy_threshold = 1\nstart = \"probing\"\n";
        let text = config(driver, "shards = 1", upstream);
        let Some(g) = InProcess::start_resolving(&text, resolver(&addrs)) else {
            continue;
        };
        assert!(
            eventually(|| request(g.addr, "GET", "/", "", b"").status == 200),
            "{driver}: a passes its check"
        );
        addrs.lock().unwrap().push(b.addr);
        // b is probed (it fails) and gets nothing while it does
        assert!(
            eventually(|| b.checks() > 2),
            "{driver}: the prober follows discovery"
        );
        for _ in 0..30 {
            assert_eq!(request(g.addr, "GET", "/", "", b"").status, 200);
        }
        assert_eq!(
            b.requests(),
            0,
            "{driver}: a probing target gets no requests"
        );
        b.sick(false);
        assert!(
            eventually(|| {
                request(g.addr, "GET", "/", "", b"");
                b.requests() > 0
            }),
            "{driver}: in once its check passes"
        );
    }
}
