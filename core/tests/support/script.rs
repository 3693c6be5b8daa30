//! A scripted origin on 127.0.0.1 for cache tests: each path has a queue of canned answers
//! taken in order (a 404 when none is left), every request is recorded, and an answer may be a
//! hang-up instead of a response. `{date}` and `{date-N}` / `{date+N}` in an answer become
//! HTTP dates of now and N seconds before / after, when it is sent.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// What the origin does for one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Sends this response (head and body; `Content-Length` is added unless it or
    /// `Transfer-Encoding` is present, so a chunked body is sent as given), after
    /// `delay` (a slow origin).
    Send {
        head: String,
        body: Vec<u8>,
        delay: std::time::Duration,
    },
    /// Closes the connection without answering.
    HangUp,
}

/// A response: the status line and fields (CRLF-separated, no final empty line) and body.
pub fn send(head: &str, body: &str) -> Answer {
    Answer::Send {
        head: head.replace('\n', "\r\n"),
        body: body.as_bytes().to_vec(),
        delay: std::time::Duration::ZERO,
    }
}

/// `send`, after `ms` milliseconds.
pub fn send_after(ms: u64, head: &str, body: &str) -> Answer {
    match send(head, body) {
        Answer::Send { head, body, .. } => Answer::Send {
            head,
            body,
            delay: std::time::Duration::from_millis(ms),
        },
        other => other,
    }
}

#[derive(Default)]
struct Shared {
    answers: HashMap<String, Vec<Answer>>,
    seen: Vec<(String, String)>,
}

/// The origin.
pub struct Script {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl Script {
    pub fn start() -> Script {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let sh = shared.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let sh = sh.clone();
                std::thread::spawn(move || serve(s, sh));
            }
        });
        Script { addr, shared }
    }

    /// Queues `answers` for `path` (what follows the ones already queued).
    pub fn on(&self, path: &str, answers: Vec<Answer>) {
        let mut sh = self.shared.lock().unwrap();
        sh.answers.entry(path.into()).or_default().extend(answers);
    }

    /// Requests that reached `path`: their raw heads.
    pub fn seen(&self, path: &str) -> Vec<String> {
        let sh = self.shared.lock().unwrap();
        sh.seen
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, h)| h.clone())
            .collect()
    }
}

/// An HTTP date `offset` seconds from now.
pub fn http_date(offset: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = u64::try_from(now + offset).unwrap();
    String::from_utf8(proto::date::imf_fixdate(t).to_vec()).unwrap()
}

fn dates(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("{date") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').map(|e| i + e).unwrap();
        let spec = &rest[i + 5..end];
        let offset: i64 = match spec.strip_prefix('-') {
            Some(n) => -n.parse::<i64>().unwrap(),
            None => spec.strip_prefix('+').map_or(0, |n| n.parse().unwrap()),
        };
        out.push_str(&http_date(offset));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn serve(mut s: TcpStream, sh: Arc<Mutex<Shared>>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    loop {
        let Some(end) = super::read_head_end(&mut s, &mut buf) else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < end + len {
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        buf.drain(..end + len);
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let head_req = head.starts_with("HEAD ");
        let answer = {
            let mut g = sh.lock().unwrap();
            g.seen.push((path.clone(), head.clone()));
            let q = g.answers.entry(path.clone()).or_default();
            if q.is_empty() {
                send("HTTP/1.1 404 Not Found", "no script")
            } else {
                q.remove(0)
            }
        };
        match answer {
            Answer::HangUp => return,
            Answer::Send { head, body, delay } => {
                std::thread::sleep(delay);
                let mut out = dates(&head);
                let is_304 = head.starts_with("HTTP/1.1 304");
                let lower = out.to_ascii_lowercase();
                if !is_304
                    && !head.starts_with("HTTP/1.1 204")
                    && !lower.contains("\r\ncontent-length:")
                    && !lower.contains("\r\ntransfer-encoding:")
                {
                    out.push_str(&format!("\r\nContent-Length: {}", body.len()));
                }
                out.push_str("\r\n\r\n");
                let mut bytes = out.into_bytes();
                let bodyless = head_req || is_304;
                if !bodyless {
                    bytes.extend_from_slice(&body);
                }
                if s.write_all(&bytes).is_err() {
                    return;
                }
            }
        }
    }
}

/// Stores a stale response (`ETag: "r1"`) at `path` through the gateway at `addr`, then sends
/// 50 requests for it at once while the origin takes 300 ms over each of `revalidations`
/// 304s; every client must get the stored body. Returns what the origin saw for `path`.
pub fn stale_burst(
    origin: &Script,
    addr: SocketAddr,
    path: &str,
    revalidations: usize,
) -> Vec<String> {
    let stale = "HTTP/1.1 200 OK\nCache-Control: max-age=1\nAge: 5\nETag: \"r1\"";
    origin.on(path, vec![send(stale, "body")]);
    assert_eq!(super::request(addr, "GET", path, "", b"").body, b"body");
    let fresh = "HTTP/1.1 304 Not Modified\nCache-Control: max-age=100\nETag: \"r1\"";
    origin.on(path, vec![send_after(300, fresh, ""); revalidations]);
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let path = path.to_string();
            std::thread::spawn(move || super::request(addr, "GET", &path, "", b""))
        })
        .collect();
    for c in clients {
        let r = c.join().unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"body"[..]), "{r:?}");
    }
    origin.seen(path)
}
