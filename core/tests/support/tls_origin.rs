//! A kept-alive TLS origin for the upstream-TLS tests: counts the connections it accepted,
//! can demand a client certificate from a CA, and can close each connection right after its
//! answer while still announcing keep-alive (a pooled connection gone stale behind the
//! gateway's back).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, StreamOwned};

use super::DEADLINE;
use super::tls::{Ca, Issued};

/// How the origin behaves.
#[derive(Default)]
pub struct Options<'a> {
    /// Refuse handshakes without a client certificate from this CA.
    pub client_ca: Option<&'a Ca>,
    /// Close (with close_notify) after every answer, though the answer said keep-alive.
    pub close_after_answer: bool,
    /// Answer with this many bytes (`a`…`z` repeated) instead of `conn <n> req <k>`.
    pub body_size: Option<usize>,
    /// Largest TLS record payload it sends (rustls' default: 16 KiB).
    pub fragment: Option<usize>,
}

/// The running origin.
pub struct TlsOrigin {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl TlsOrigin {
    /// Starts it with `cert`; every request gets `200` and `conn <n> req <k>` (or
    /// `body_size` bytes) as its body.
    pub fn start(cert: &Issued, o: Options<'_>) -> TlsOrigin {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match o.client_ca {
            Some(ca) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots()), provider)
                    .build()
                    .unwrap(),
            ),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(vec![cert.der.clone()], cert.key())
            .unwrap();
        config.max_fragment_size = o.fragment;
        let config = Arc::new(config);
        let close = o.close_after_answer;
        let size = o.body_size;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for tcp in l.incoming() {
                let Ok(tcp) = tcp else { continue };
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(DEADLINE));
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    serve(StreamOwned::new(conn, tcp), n, close, size);
                });
            }
        });
        TlsOrigin { addr, accepted }
    }

    /// Connections accepted so far (handshakes that failed included).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn serve(
    mut s: StreamOwned<rustls::ServerConnection, std::net::TcpStream>,
    n: usize,
    close: bool,
    size: Option<usize>,
) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    for k in 1.. {
        let end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(got) => pending.extend_from_slice(&buf[..got]),
            }
        };
        pending.drain(..end);
        let body = match size {
            Some(len) => (0..len).map(|i| b'a' + (i % 26) as u8).collect(),
            None => format!("conn {n} req {k}").into_bytes(),
        };
        let mut answer =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        answer.extend_from_slice(&body);
        if s.write_all(&answer).and_then(|()| s.flush()).is_err() {
            return;
        }
        if close {
            s.conn.send_close_notify();
            let _ = s.flush();
            return;
        }
    }
}
