//! Upstream targets for traffic-management tests: real HTTP/1.1 servers on 127.0.0.1 that
//! count what reaches them, answer a status the test sets, fail their health path on demand,
//! and can be killed (listener closed, every connection cut) and revived on the same port.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    /// Requests other than health checks.
    requests: AtomicUsize,
    /// Health checks (`GET /healthz`).
    checks: AtomicUsize,
    /// Status of ordinary answers (0: 200).
    status: AtomicU16,
    /// Answer health checks 503.
    sick: AtomicBool,
    /// Stops the acceptor.
    dead: AtomicBool,
    /// Open connections, to cut on kill.
    conns: Mutex<Vec<TcpStream>>,
    /// Host fields received.
    hosts: Mutex<Vec<String>>,
    /// Connections accepted.
    accepts: AtomicUsize,
    /// Wait this long (ms) before answering an ordinary request.
    delay_ms: std::sync::atomic::AtomicU64,
}

pub struct Target {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Target {
    pub fn start() -> Target {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let t = Target {
            addr: l.local_addr().unwrap(),
            state: Arc::default(),
        };
        t.accept_on(l);
        t
    }

    fn accept_on(&self, l: TcpListener) {
        l.set_nonblocking(true).unwrap();
        let st = self.state.clone();
        std::thread::spawn(move || {
            while !st.dead.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        st.accepts.fetch_add(1, Ordering::SeqCst);
                        s.set_nonblocking(false).unwrap();
                        st.conns.lock().unwrap().push(s.try_clone().unwrap());
                        let st = st.clone();
                        std::thread::spawn(move || serve(s, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
    }

    /// Requests served (health checks not counted).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted.
    pub fn accepts(&self) -> usize {
        self.state.accepts.load(Ordering::SeqCst)
    }

    pub fn checks(&self) -> usize {
        self.state.checks.load(Ordering::SeqCst)
    }

    pub fn reset(&self) {
        self.state.requests.store(0, Ordering::SeqCst);
    }

    pub fn answer(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Answers ordinary requests only after `ms` milliseconds.
    pub fn delay(&self, ms: u64) {
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn sick(&self, on: bool) {
        self.state.sick.store(on, Ordering::SeqCst);
    }

    pub fn hosts(&self) -> Vec<String> {
        self.state.hosts.lock().unwrap().clone()
    }

    /// Closes the listener and cuts every open connection.
    pub fn kill(&self) {
        self.state.dead.store(true, Ordering::SeqCst);
        // the acceptor polls every 2 ms: once it has seen `dead` the port is closed
        std::thread::sleep(Duration::from_millis(20));
        for c in self.state.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    pub fn revive(&self) {
        self.state.dead.store(false, Ordering::SeqCst);
        let l = TcpListener::bind(self.addr).unwrap();
        self.accept_on(l);
    }
}

fn serve(mut s: TcpStream, st: &State) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    loop {
        let Some(end) = super::read_head_end(&mut s, &mut buf) else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let field = |name: &str| {
            head.split("\r\n").skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let len: usize = field("content-length").map_or(0, |v| v.parse().unwrap());
        while buf.len() < end + len {
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        buf.drain(..end + len);
        let check = head.starts_with("GET /healthz ");
        let status = if check {
            st.checks.fetch_add(1, Ordering::SeqCst);
            if st.sick.load(Ordering::SeqCst) {
                503
            } else {
                200
            }
        } else {
            st.requests.fetch_add(1, Ordering::SeqCst);
            st.hosts
                .lock()
                .unwrap()
                .push(field("host").unwrap_or_default());
            let ms = st.delay_ms.load(Ordering::SeqCst);
            if ms > 0 {
                std::thread::sleep(Duration::from_millis(ms));
            }
            match st.status.load(Ordering::SeqCst) {
                0 => 200,
                n => n,
            }
        };
        let body = s.local_addr().unwrap().port().to_string();
        let out = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}
