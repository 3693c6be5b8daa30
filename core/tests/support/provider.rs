//! A fake model provider on 127.0.0.1: it records each request whole (head and body) and
//! answers from a queue: a whole response, or a server-sent event stream sent chunk by
//! chunk, which may wait for the test before its last event (so a test can read the first
//! event while the provider has not sent the last), and which notes when the gateway cut it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub head: String,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        super::origin::head_field(&self.head, name)
    }
}

/// One answer.
pub enum Reply {
    /// A whole JSON response.
    Whole { status: u16, body: String },
    /// An event stream: each event's text (`event: …\ndata: …`), sent as one chunk each.
    /// With `gate`, the last event waits until the test sends on it.
    Stream {
        events: Vec<String>,
        gate: Option<Receiver<()>>,
    },
    /// An endless stream: one event every 20 ms until the connection breaks (noted in
    /// `cut`), for at most 10 s.
    Endless { event: String },
}

#[derive(Default)]
struct Shared {
    replies: Mutex<Vec<Reply>>,
    seen: Mutex<Vec<Seen>>,
    cut: AtomicBool,
    sent: AtomicUsize,
}

pub struct Provider {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

/// A whole JSON answer.
pub fn whole(status: u16, body: &str) -> Reply {
    Reply::Whole {
        status,
        body: body.to_string(),
    }
}

/// A stream whose last event waits for the returned sender.
pub fn gated(events: &[&str]) -> (Reply, Sender<()>) {
    let (tx, rx) = channel();
    let r = Reply::Stream {
        events: events.iter().map(|e| e.to_string()).collect(),
        gate: Some(rx),
    };
    (r, tx)
}

/// A stream sent at once.
pub fn stream(events: &[&str]) -> Reply {
    Reply::Stream {
        events: events.iter().map(|e| e.to_string()).collect(),
        gate: None,
    }
}

impl Provider {
    pub fn start() -> Provider {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let sh = sh.clone();
                std::thread::spawn(move || serve(s, &sh));
            }
        });
        Provider { addr, shared }
    }

    /// Queues an answer.
    pub fn reply(&self, r: Reply) {
        self.shared.replies.lock().unwrap().push(r);
    }

    /// The requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// An endless stream was cut by the gateway.
    pub fn cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// Events an endless stream sent.
    pub fn sent(&self) -> usize {
        self.shared.sent.load(Ordering::SeqCst)
    }
}

fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Seen> {
    let mut tmp = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut tmp).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut first = head.split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let mut seen = Seen {
        method,
        target,
        head,
        body: String::new(),
    };
    let len: usize = seen
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < end + len {
        let n = s.read(&mut tmp).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&tmp[..n]);
    }
    seen.body = String::from_utf8_lossy(&buf[end..end + len]).to_string();
    buf.drain(..end + len);
    Some(seen)
}

fn chunk(s: &mut TcpStream, event: &str) -> std::io::Result<()> {
    let data = format!("{event}\n\n");
    s.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())?;
    s.flush()
}

fn serve(mut s: TcpStream, sh: &Shared) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    while let Some(seen) = read_request(&mut s, &mut buf) {
        sh.seen.lock().unwrap().push(seen);
        let reply = {
            let mut q = sh.replies.lock().unwrap();
            (!q.is_empty()).then(|| q.remove(0))
        };
        let reply = reply.unwrap_or_else(|| whole(500, r#"{"error":"no reply queued"}"#));
        let ok = match reply {
            Reply::Whole { status, body } => s
                .write_all(
                    format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .is_ok(),
            Reply::Stream { events, gate } => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
                let mut ok = s.write_all(head.as_bytes()).is_ok();
                let last = events.len().saturating_sub(1);
                for (i, e) in events.iter().enumerate() {
                    if i == last
                        && let Some(g) = &gate
                    {
                        let _ = g.recv_timeout(Duration::from_secs(10));
                    }
                    ok = ok && chunk(&mut s, e).is_ok();
                }
                ok && s.write_all(b"0\r\n\r\n").is_ok()
            }
            Reply::Endless { event } => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
                let _ = s.write_all(head.as_bytes());
                for _ in 0..500 {
                    if chunk(&mut s, &event).is_err() {
                        sh.cut.store(true, Ordering::SeqCst);
                        return;
                    }
                    sh.sent.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                }
                false
            }
        };
        if !ok {
            return;
        }
    }
}
