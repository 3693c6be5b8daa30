//! The admin listener (`[admin]`): `GET /healthz`, `GET /readyz` (503 while draining) and
//! `GET /metrics` (Prometheus text from every shard's counters, asked for by message: the
//! shards copy their counters between requests, nothing is locked on their path). Its own
//! thread and socket, so no data listener can reach it; optional bearer token.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::control::Control;

/// Largest admin request head read.
const MAX_HEAD: usize = 8 * 1024;

/// How long a shard may take to send its counters for a scrape.
const SCRAPE_WAIT: Duration = Duration::from_secs(2);

/// Starts the admin listener on `addr`; the address it bound. It stops with the control side.
pub fn start(
    addr: SocketAddr,
    token: String,
    control: Weak<Control>,
    draining: Arc<AtomicBool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("sg-admin".into())
        .spawn(move || {
            while control.strong_count() > 0 {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        serve(s, &token, &control, &draining);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
    Ok(bound)
}

/// Answers one request on `s`, then closes it.
fn serve(mut s: TcpStream, token: &str, control: &Weak<Control>, draining: &AtomicBool) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::with_capacity(1024);
    let mut head = proto::RequestHead::with_capacity(64);
    let limits = proto::Limits::default();
    let mut chunk = [0u8; 1024];
    loop {
        match proto::parse_request(&buf, &mut head, &limits) {
            Ok(proto::Status::Complete(_)) => break,
            Ok(proto::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => {
                return answer(
                    &mut s,
                    400,
                    "application/problem+json",
                    &problem(400, "bad request"),
                );
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
    if !token.is_empty() {
        let want = format!("Bearer {token}");
        let got = head.value_of(&buf, b"authorization");
        if got != Some(want.as_bytes()) {
            return answer(
                &mut s,
                401,
                "application/problem+json",
                &problem(401, "admin token required"),
            );
        }
    }
    if head.method != proto::Method::Get {
        return answer(
            &mut s,
            405,
            "application/problem+json",
            &problem(405, "method not allowed"),
        );
    }
    match head.path_only(&buf) {
        b"/healthz" => answer(&mut s, 200, "text/plain; charset=utf-8", "ok\n"),
        b"/readyz" if draining.load(Ordering::Relaxed) => {
            answer(&mut s, 503, "text/plain; charset=utf-8", "draining\n")
        }
        b"/readyz" => answer(&mut s, 200, "text/plain; charset=utf-8", "ready\n"),
        b"/metrics" => {
            let Some(c) = control.upgrade() else {
                return answer(&mut s, 503, "text/plain; charset=utf-8", "stopping\n");
            };
            let text = crate::metrics::text(&c.counters(SCRAPE_WAIT));
            answer(
                &mut s,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &text,
            )
        }
        _ => answer(
            &mut s,
            404,
            "application/problem+json",
            &problem(404, "no such admin resource"),
        ),
    }
}

fn problem(status: u16, detail: &str) -> String {
    let mut out = Vec::new();
    policy::reply::problem_body(&mut out, status, detail);
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(s: &mut TcpStream, status: u16, content_type: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        proto::write::reason_phrase(status),
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body.as_bytes());
}
