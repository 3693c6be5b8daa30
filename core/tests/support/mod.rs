//! Integration harness: starts the real `shardgate` binary with a temp config on 127.0.0.1:0,
//! a real test origin on 127.0.0.1, and speaks raw bytes with a deadline on every read.
#![allow(dead_code)]

pub mod browser;
pub mod fleet;
pub mod h2;
pub mod h2_origin;
pub mod inproc;
pub mod origin;
pub mod pg;
pub mod provider;
pub mod redis;
pub mod script;
pub mod tls;
pub mod tls_origin;
pub mod ws;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every read in these tests gives up after this long: a hang is a failure, not a stuck run.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The drivers each integration test runs under.
pub const DRIVERS: [&str; 2] = ["io_uring", "epoll"];

/// A running gateway; killed on drop.
pub struct Gateway {
    pub child: Child,
    /// The first listener's address.
    pub addr: SocketAddr,
    /// Every listener's address, in config order (`[server] listen`, then `[[listener]]`).
    pub addrs: Vec<SocketAddr>,
    pub log: Arc<Mutex<Vec<String>>>,
    lines: Receiver<String>,
    _dir: TempDir,
}

pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("shardgate-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary under test: this build's, or `SHARDGATE_TEST_BIN` (to show that a regression
/// test fails on an older build).
pub fn bin() -> String {
    std::env::var("SHARDGATE_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_shardgate").into())
}

impl Gateway {
    /// Starts shardgate with `config` (its `[server]` table must not set `listen` or
    /// `driver`: they are added here). `None` if the driver is unavailable (printed).
    pub fn start(driver: &str, server_extra: &str, rest: &str) -> Option<Gateway> {
        let dir = TempDir::new();
        let path = dir.0.join("shardgate.toml");
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\ndriver = \"{driver}\"\n{server_extra}\n{rest}"
        );
        std::fs::write(&path, text).unwrap();
        let mut child = Command::new(bin())
            .arg("--config")
            .arg(&path)
            .env("SHARDGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addrs: Vec<SocketAddr> = rest
                            .split(" (")
                            .next()
                            .unwrap()
                            .split_whitespace()
                            .map(|u| u.split("://").nth(1).unwrap().parse().unwrap())
                            .collect();
                        return Some(Gateway {
                            child,
                            addr: addrs[0],
                            addrs,
                            log,
                            lines: rx,
                            _dir: dir,
                        });
                    }
                    if line.contains("io_uring is not available") {
                        println!("skipping the io_uring run: {line}");
                        let _ = child.kill();
                        let _ = child.wait();
                        return None;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("shardgate did not start: {:?}", log.lock().unwrap());
                }
            }
        }
    }

    /// Sends SIGTERM.
    /// The config file it was started with (rewrite it, then `signal("HUP")` to reload).
    pub fn config_path(&self) -> std::path::PathBuf {
        self._dir.0.join("shardgate.toml")
    }

    /// Sends it a signal by name ("HUP", "TERM", …).
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status();
    }

    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Lines logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Resident memory of the gateway process in KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.set_write_timeout(Some(DEADLINE)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Config text routing everything to `origin`.
pub fn route_all(origin: SocketAddr, upstream_extra: &str) -> String {
    format!(
        "[[upstream]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n{upstream_extra}\n\n[[route]]\npath = \"/{{*rest}}\"\nupstream = \"origin\"\n"
    )
}

/// `route_all` with `policy` (`[[route.policy]]` tables in TOML) on its one route.
pub fn route_all_policy(origin: SocketAddr, policy: &str) -> String {
    format!("{}{policy}\n", route_all(origin, ""))
}

/// Sends `bytes` on a new connection and reads until the gateway closes (or the deadline).
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let end = Instant::now() + DEADLINE;
    let mut buf = [0u8; 65536];
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "read failed before close: {e}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    out
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Reads one response from `s` (`head_request`: no body), keeping leftover bytes in `pending`.
pub fn read_response(s: &mut TcpStream, pending: &mut Vec<u8>, head_request: bool) -> Response {
    loop {
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hdrs);
        if let Ok(httparse::Status::Complete(n)) = r.parse(pending) {
            let status = r.code.unwrap();
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            pending.drain(..n);
            if status < 200 {
                continue;
            }
            let mut resp = Response {
                status,
                headers,
                body: Vec::new(),
            };
            if head_request || status == 204 || status == 304 {
                return resp;
            }
            if resp
                .header("transfer-encoding")
                .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
            {
                resp.body = read_chunked(s, pending);
            } else if let Some(cl) = resp.header("content-length") {
                let n: usize = cl.parse().unwrap();
                fill(s, pending, n);
                resp.body = pending.drain(..n).collect();
            } else {
                let mut buf = [0u8; 65536];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(k) => pending.extend_from_slice(&buf[..k]),
                        Err(e) => panic!("read: {e}"),
                    }
                }
                resp.body = std::mem::take(pending);
            }
            return resp;
        }
        let mut buf = [0u8; 65536];
        match s.read(&mut buf) {
            Ok(0) => panic!(
                "connection closed before a complete response; got {:?}",
                String::from_utf8_lossy(pending)
            ),
            Ok(k) => pending.extend_from_slice(&buf[..k]),
            Err(e) => panic!("read: {e}; got {:?}", String::from_utf8_lossy(pending)),
        }
    }
}

/// Reads until `pending` holds at least `n` bytes.
pub fn fill(s: &mut TcpStream, pending: &mut Vec<u8>, n: usize) {
    let mut buf = [0u8; 65536];
    while pending.len() < n {
        match s.read(&mut buf) {
            Ok(0) => panic!("closed with {} of {n} bytes", pending.len()),
            Ok(k) => pending.extend_from_slice(&buf[..k]),
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn read_line(s: &mut TcpStream, pending: &mut Vec<u8>) -> Vec<u8> {
    origin::take_line(s, pending).expect("closed inside chunked body")
}

/// The size of a chunk-size line (extensions ignored).
pub fn chunk_size(line: &[u8]) -> usize {
    let hex = std::str::from_utf8(line)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    usize::from_str_radix(hex, 16).unwrap()
}

/// Decodes a chunked body from the stream (test side; strict enough for our own output).
pub fn read_chunked(s: &mut TcpStream, pending: &mut Vec<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line = read_line(s, pending);
        let size = chunk_size(&line);
        if size == 0 {
            loop {
                if read_line(s, pending).is_empty() {
                    return body;
                }
            }
        }
        fill(s, pending, size + 2);
        body.extend(pending.drain(..size));
        assert_eq!(&pending[..2], b"\r\n");
        pending.drain(..2);
    }
}

/// One request on a new connection (`Connection: close` added), its response.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n{headers}\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut pending = Vec::new();
    read_response(&mut s, &mut pending, method == "HEAD")
}

/// Encodes `body` as chunks of at most `chunk` bytes.
pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Retries `f` until it holds or `DEADLINE` passes (for effects the gateway makes in the
/// background: a key set fetched, an exchange finished after the client left).
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Reads from `s` into `buf` until it holds a whole head; where the head ends (after its
/// empty line), or `None` when the peer closed first.
pub fn read_head_end(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut tmp = [0u8; 16384];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

/// Deterministic test bytes.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// The admin address the gateway logged.
pub fn admin(g: &Gateway) -> SocketAddr {
    assert!(eventually(|| g
        .log_lines()
        .iter()
        .any(|l| l.contains("admin on http://"))));
    let line = g
        .log_lines()
        .into_iter()
        .find(|l| l.contains("admin on http://"))
        .unwrap();
    line.split("admin on http://")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The sum over shards of stage figure `name` of the `stage` stages, in `/metrics` text.
pub fn stage_figure(metrics: &str, stage: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.contains(&format!("stage=\"{stage}\"")) && l.contains(&format!("name=\"{name}\""))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}
