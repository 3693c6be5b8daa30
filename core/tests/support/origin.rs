//! A real HTTP/1.1 origin on 127.0.0.1 for integration tests that records what reaches it and
//! misbehaves on request (the path picks the behaviour; see `respond`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What reached the origin.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    /// The raw head as received.
    pub head: String,
    /// Body bytes (only kept up to 1 MiB).
    pub body: Vec<u8>,
    pub body_len: u64,
    /// Sum of body bytes (checks large bodies without keeping them).
    pub body_sum: u64,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        head_field(&self.head, name)
    }
}

/// The first value of field `name` in a raw request head.
pub fn head_field(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

#[derive(Default)]
struct Shared {
    accepts: AtomicUsize,
    records: Mutex<Vec<Recorded>>,
    /// Close each connection shortly after answering (while advertising keep-alive).
    close_after_response: AtomicBool,
    /// Send an unsolicited `408` shortly after each answer, then close.
    stray_after_response: AtomicBool,
    /// Answer only the first request of each connection; close on receiving the second.
    hangup_on_second: AtomicBool,
}

pub struct Origin {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Origin {
    pub fn start() -> Origin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                sh.accepts.fetch_add(1, Ordering::SeqCst);
                let sh = sh.clone();
                std::thread::spawn(move || serve(s, sh));
            }
        });
        Origin { addr, shared }
    }

    pub fn accepts(&self) -> usize {
        self.shared.accepts.load(Ordering::SeqCst)
    }

    pub fn records(&self) -> Vec<Recorded> {
        self.shared.records.lock().unwrap().clone()
    }

    pub fn reset_counts(&self) {
        self.shared.accepts.store(0, Ordering::SeqCst);
        self.shared.records.lock().unwrap().clear();
    }

    pub fn close_after_response(&self, on: bool) {
        self.shared.close_after_response.store(on, Ordering::SeqCst);
    }

    pub fn hangup_on_second(&self, on: bool) {
        self.shared.hangup_on_second.store(on, Ordering::SeqCst);
    }

    pub fn stray_after_response(&self, on: bool) {
        self.shared.stray_after_response.store(on, Ordering::SeqCst);
    }
}

/// A port with nothing listening on it.
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut tmp = [0u8; 65536];
    match s.read(&mut tmp) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            true
        }
    }
}

/// Takes one CRLF-terminated line from `buf`, reading more as needed; `None` on close.
pub fn take_line(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = buf[..i].to_vec();
            buf.drain(..i + 2);
            return Some(line);
        }
        if !read_more(s, buf) {
            return None;
        }
    }
}

fn serve(mut s: TcpStream, sh: Arc<Shared>) {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    let mut answered = 0;
    loop {
        // head
        let (method, target, head, n, cl, chunked, close) = loop {
            let mut hdrs = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut hdrs);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let get = |name: &str| {
                        req.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).to_string())
                    };
                    let cl: u64 = get("content-length")
                        .map(|v| v.parse().unwrap())
                        .unwrap_or(0);
                    let chunked =
                        get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
                    let close = get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                    break (
                        req.method.unwrap().to_string(),
                        req.path.unwrap().to_string(),
                        String::from_utf8_lossy(&buf[..n]).to_string(),
                        n,
                        cl,
                        chunked,
                        close,
                    );
                }
                Ok(httparse::Status::Partial) => {
                    if !read_more(&mut s, &mut buf) {
                        return;
                    }
                }
                Err(_) => return,
            }
        };
        buf.drain(..n);
        if target == "/early-413" {
            // answer before reading the body and read no more of it; close a while later
            let _ = s.write_all(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\nConnection: close\r\nX-Origin: early\r\n\r\ntoo large");
            std::thread::sleep(Duration::from_millis(1500));
            return;
        }
        if target == "/early-garbage" {
            // an early answer whose chunked body is malformed
            let _ = s.write_all(
                b"HTTP/1.1 413 Content Too Large\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            );
            std::thread::sleep(Duration::from_millis(1500));
            return;
        }
        if answered > 0 && sh.hangup_on_second.load(Ordering::SeqCst) {
            return;
        }
        answered += 1;
        // body
        let mut rec = Recorded {
            method: method.clone(),
            target: target.clone(),
            head,
            body: Vec::new(),
            body_len: 0,
            body_sum: 0,
        };
        let keep = |data: &[u8], rec: &mut Recorded| {
            rec.body_len += data.len() as u64;
            rec.body_sum += data.iter().map(|&b| u64::from(b)).sum::<u64>();
            if rec.body.len() < (1 << 20) {
                rec.body.extend_from_slice(data);
            }
        };
        if chunked {
            loop {
                let Some(line) = take_line(&mut s, &mut buf) else {
                    return;
                };
                let size = super::chunk_size(&line);
                if size == 0 {
                    loop {
                        match take_line(&mut s, &mut buf) {
                            Some(l) if l.is_empty() => break,
                            Some(_) => {}
                            None => return,
                        }
                    }
                    break;
                }
                while buf.len() < size + 2 {
                    if !read_more(&mut s, &mut buf) {
                        return;
                    }
                }
                let data: Vec<u8> = buf.drain(..size).collect();
                keep(&data, &mut rec);
                buf.drain(..2);
            }
        } else {
            let mut left = cl;
            while left > 0 {
                if buf.is_empty() && !read_more(&mut s, &mut buf) {
                    return;
                }
                let take = (left as usize).min(buf.len());
                let data: Vec<u8> = buf.drain(..take).collect();
                keep(&data, &mut rec);
                left -= take as u64;
            }
        }
        sh.records.lock().unwrap().push(rec.clone());
        let head_req = method == "HEAD";
        let conn = if close { "close" } else { "keep-alive" };
        let ok = respond(&mut s, &target, head_req, conn, &rec);
        if !ok || close {
            return;
        }
        if sh.close_after_response.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            return;
        }
        if sh.stray_after_response.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            let _ = s.write_all(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 5\r\nConnection: close\r\n\r\nstray");
            std::thread::sleep(Duration::from_millis(200));
            return;
        }
    }
}

fn respond(s: &mut TcpStream, target: &str, head_req: bool, conn: &str, rec: &Recorded) -> bool {
    let num = |p: &str| target.strip_prefix(p).and_then(|n| n.parse::<u64>().ok());
    if let Some(n) = num("/size/") {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: {conn}\r\nX-Origin: yes\r\n\r\n"
        );
        if s.write_all(head.as_bytes()).is_err() {
            return false;
        }
        if head_req {
            return true;
        }
        let block: Vec<u8> = (0..65536usize).map(|i| (i * 31 % 251) as u8).collect();
        let mut left = n;
        let mut off = 0usize;
        while left > 0 {
            // keep the pattern continuous across blocks: pattern(i) depends on i mod 251
            let take = left.min(65536 - 251) as usize;
            let start = off % 251;
            if s.write_all(&block[start..start + take]).is_err() {
                return false;
            }
            off += take;
            left -= take as u64;
        }
        return true;
    }
    if let Some(n) = num("/chunked/") {
        let head =
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: {conn}\r\n\r\n");
        let mut out = head.into_bytes();
        if !head_req {
            let body: Vec<u8> = (0..n as usize).map(|i| (i * 31 % 251) as u8).collect();
            for c in body.chunks(4000) {
                out.extend_from_slice(format!("{:x};ext=1\r\n", c.len()).as_bytes());
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
        }
        return s.write_all(&out).is_ok();
    }
    if let Some(ms) = num("/slow/") {
        std::thread::sleep(Duration::from_millis(ms));
    }
    match target {
        "/close-mid" => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789");
            std::thread::sleep(Duration::from_millis(50));
            return false;
        }
        "/reset" => {
            let sock = socket2::SockRef::from(&*s);
            let _ = sock.set_linger(Some(Duration::ZERO));
            return false;
        }
        "/hangup" => return false,
        // read the whole request, then close without a word
        "/swallow" => return false,
        // a body delimited by the close, cut by a reset
        "/no-length-reset" => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the re");
            std::thread::sleep(Duration::from_millis(50));
            let sock = socket2::SockRef::from(&*s);
            let _ = sock.set_linger(Some(Duration::ZERO));
            return false;
        }
        "/no-length" => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close");
            return false;
        }
        "/204" => {
            return s
                .write_all(
                    format!("HTTP/1.1 204 No Content\r\nConnection: {conn}\r\n\r\n").as_bytes(),
                )
                .is_ok();
        }
        "/304" => {
            let h = format!(
                "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\nConnection: {conn}\r\n\r\n"
            );
            return s.write_all(h.as_bytes()).is_ok();
        }
        "/early-hints" => {
            let _ = s.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
            let h =
                format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: {conn}\r\n\r\nfinal");
            return s.write_all(h.as_bytes()).is_ok();
        }
        "/gzip-te" => {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            );
            return true;
        }
        "/interim" => {
            for _ in 0..20 {
                if s.write_all(b"HTTP/1.1 102 Processing\r\n\r\n").is_err() {
                    return false;
                }
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            return false;
        }
        // issue 9: sizes no real body has
        "/huge-chunk" => {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc",
            );
            std::thread::sleep(Duration::from_millis(50));
            return false;
        }
        "/huge-length" => {
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nabc");
            std::thread::sleep(Duration::from_millis(50));
            return false;
        }
        "/i64-length" => {
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\nabc");
            std::thread::sleep(Duration::from_millis(50));
            return false;
        }
        "/garbage" => {
            let _ = s.write_all(b"NOT HTTP AT ALL\r\n\r\n");
            return false;
        }
        _ => {}
    }
    let body = &rec.body;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: {conn}\r\nX-Body-Len: {}\r\nKeep-Alive: timeout=5\r\nX-Drop-Me: 1\r\nConnection: X-Drop-Me\r\n\r\n",
        body.len(),
        rec.body_len
    );
    let mut out = head.into_bytes();
    if !head_req {
        out.extend_from_slice(body);
    }
    s.write_all(&out).is_ok()
}
