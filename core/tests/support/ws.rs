//! A WebSocket echo origin (RFC 6455: handshake, frames of any size, ping, close) and the
//! client side of the same, for tunnel tests through the gateway.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;

/// The accept value for a key (RFC 6455 §4.2.2).
pub fn accept(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

pub struct EchoOrigin {
    pub addr: SocketAddr,
    /// Upgrade requests seen, and the Upgrade value of the last one.
    pub upgrades: Arc<AtomicUsize>,
}

impl EchoOrigin {
    pub fn start() -> EchoOrigin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let upgrades = Arc::new(AtomicUsize::new(0));
        let seen = upgrades.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || echo(s, &seen));
            }
        });
        EchoOrigin { addr, upgrades }
    }
}

fn head(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 {
            return None;
        }
        buf.push(b[0]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn echo(mut s: TcpStream, seen: &AtomicUsize) {
    let Some(h) = head(&mut s) else { return };
    let upgrade = field(&h, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = field(&h, "sec-websocket-key").filter(|_| upgrade) else {
        let _ = s.write_all(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    seen.fetch_add(1, Ordering::SeqCst);
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept(key)
    );
    s.write_all(reply.as_bytes()).unwrap();
    if h.starts_with("GET /raw ") {
        // a byte echo: each chunk written back as it is read, one at a time
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    }
    while let Some((opcode, payload)) = read_frame(&mut s) {
        match opcode {
            0x8 => {
                let _ = write_frame(&mut s, 0x8, &payload, None);
                return;
            }
            0x9 => {
                let _ = write_frame(&mut s, 0xA, &payload, None);
            }
            _ => {
                if write_frame(&mut s, opcode, &payload, None).is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads one frame (unmasking it); `None` on close of the socket.
pub fn read_frame(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).ok()?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).ok()?;
        len = u64::from_be_bytes(b);
    }
    let mut mask = [0u8; 4];
    if masked {
        s.read_exact(&mut mask).ok()?;
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).ok()?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Some((opcode, payload))
}

/// Writes one final frame, masked with `mask` when given (a client's frames are masked).
pub fn write_frame(
    s: &mut TcpStream,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> std::io::Result<()> {
    let mut out = vec![0x80 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    s.write_all(&out)
}

/// Sends the opening handshake on `s`; the response head.
pub fn handshake(s: &mut TcpStream, key: &str) -> String {
    handshake_at(s, "/chat", key)
}

/// The opening handshake for `path`.
pub fn handshake_at(s: &mut TcpStream, path: &str, key: &str) -> String {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    head(s).unwrap()
}
