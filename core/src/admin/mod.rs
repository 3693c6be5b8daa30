//! The admin listener (`[admin]`): its own thread and socket, so no data listener can reach
//! it; optional token (`Authorization: Bearer …`, or Basic with the token as password, which
//! browsers prompt for on the status page).
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | the live status page (HTML, refreshes itself) |
//! | `GET /healthz`, `GET /readyz` | 200; `/readyz` 503 while draining |
//! | `GET /metrics` | Prometheus text |
//! | `GET /stats` | JSON per shard, listener, route and target |
//! | `GET /config` | the running config file, secrets redacted |
//! | `POST /reload` | reload (as SIGHUP); 422 with the error when refused |
//! | `POST /cache/purge?key=…` (or `prefix=`, `tag=`) | purge on every shard |
//! | `/tenants…`, `/audit`, `/analytics`, `/trends` | the management catalogue and call analytics (`[management]`, see `manage::api`) |
//!
//! Counters come from the shards by message (they copy them between requests); reloads and
//! the running config come from the main thread by message (`Ask`): nothing is locked.

// The one lock here (`Mutex<Rates>`) is shared by admin connection threads only; no shard
// ever takes it.
#![allow(clippy::disallowed_types)]

mod config;
pub mod page;
mod stats;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::control::{Control, Message, Purge};

/// Largest admin request head read.
const MAX_HEAD: usize = 8 * 1024;

/// Largest admin request body read (a management entry as JSON).
const MAX_BODY: usize = 64 * 1024;

/// How long a shard may take to send its counters for a scrape.
const SCRAPE_WAIT: Duration = Duration::from_secs(2);

/// How long the main thread may take to answer (a reload compiles the whole config).
const ASK_WAIT: Duration = Duration::from_secs(30);

/// What the admin thread asks of the main thread.
#[derive(Debug)]
pub enum Ask {
    /// Reload the config file; the answer is what was reloaded, or why not.
    Reload(Sender<Result<String, String>>),
    /// The running config.
    Config(Sender<Arc<conf::Config>>),
}

/// What the admin thread works with.
pub struct Admin {
    /// The bearer token (empty: none).
    pub token: String,
    /// The shards' inboxes.
    pub control: Weak<Control>,
    /// Set while draining.
    pub draining: Arc<AtomicBool>,
    /// The main thread's side.
    pub asks: Sender<Ask>,
    /// The management thread, with `[management]`.
    pub manage: Option<Sender<(crate::manage::Call, Sender<crate::manage::Reply>)>>,
}

/// Most admin connections served at once; more wait in the listen queue.
const MAX_CLIENTS: usize = 16;

/// Starts the admin listener on `addr`; the address it bound. It stops with the control side.
/// Each connection is served on a thread of its own, so a client that stalls holds up no
/// scrape.
pub fn start(addr: SocketAddr, admin: Admin) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let admin = Arc::new(admin);
    let rates = Arc::new(Mutex::new(stats::Rates::default()));
    let busy = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("sg-admin".into())
        .spawn(move || {
            while admin.control.strong_count() > 0 {
                if busy.load(Ordering::Relaxed) >= MAX_CLIENTS {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let (admin, rates, busy) = (admin.clone(), rates.clone(), busy.clone());
                        busy.fetch_add(1, Ordering::Relaxed);
                        let spawned = std::thread::Builder::new()
                            .name("sg-admin-conn".into())
                            .spawn(move || {
                                serve(s, &admin, &rates);
                                busy.fetch_sub(1, Ordering::Relaxed);
                            });
                        if spawned.is_err() {
                            crate::log!(Warn, "admin: cannot start a thread for a connection");
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
    Ok(bound)
}

/// A request as far as the admin needs it.
struct Request {
    method: proto::Method,
    path: String,
    query: String,
    authorization: Option<Vec<u8>>,
    api_key: Option<Vec<u8>>,
    body: Vec<u8>,
}

/// Reads one request head from `s`; `None` after answering a malformed one.
fn read_request(s: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::with_capacity(1024);
    let mut head = proto::RequestHead::with_capacity(64);
    let limits = proto::Limits::default();
    let mut chunk = [0u8; 1024];
    let at = loop {
        match proto::parse_request(&buf, &mut head, &limits) {
            Ok(proto::Status::Complete(n)) => break n,
            Ok(proto::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => {
                problem(s, 400, "bad request", "");
                return None;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    };
    let body = read_body(s, &head, &buf, at)?;
    let target = String::from_utf8_lossy(head.path(&buf)).into_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Request {
        method: head.method,
        path,
        query,
        authorization: head.value_of(&buf, b"authorization").map(<[u8]>::to_vec),
        api_key: head.value_of(&buf, b"x-api-key").map(<[u8]>::to_vec),
        body,
    })
}

/// Reads the body `head` announces with `Content-Length` (what of it came with the head is
/// in `buf` from `at`); `None` after answering one that is too large or not framed so.
fn read_body(
    s: &mut TcpStream,
    head: &proto::RequestHead,
    buf: &[u8],
    at: usize,
) -> Option<Vec<u8>> {
    if head.value_of(buf, b"transfer-encoding").is_some() {
        problem(s, 411, "send the body with Content-Length", "");
        return None;
    }
    let len = match head
        .value_of(buf, b"content-length")
        .map(|v| std::str::from_utf8(v).ok()?.parse::<usize>().ok())
    {
        None => 0,
        Some(Some(n)) if n <= MAX_BODY => n,
        Some(Some(_)) => {
            problem(s, 413, "an admin request body is 64 KiB at most", "");
            return None;
        }
        Some(None) => {
            problem(s, 400, "bad Content-Length", "");
            return None;
        }
    };
    let mut body = buf.get(at..).unwrap_or_default().to_vec();
    body.truncate(len);
    let mut chunk = [0u8; 4096];
    while body.len() < len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => {
                let want = (len - body.len()).min(n);
                body.extend_from_slice(chunk.get(..want).unwrap_or_default());
            }
        }
    }
    Some(body)
}

/// True when `auth` carries `token` as a bearer token or as a Basic password.
fn authorized(token: &str, auth: Option<&[u8]>) -> bool {
    use base64::Engine;
    if token.is_empty() {
        return true;
    }
    let Some(auth) = auth else { return false };
    if let Some(t) = auth.strip_prefix(b"Bearer ") {
        return policy::catalogue::ct_eq(t, token.as_bytes());
    }
    let Some(b) = auth.strip_prefix(b"Basic ") else {
        return false;
    };
    let Ok(pair) = base64::engine::general_purpose::STANDARD.decode(b) else {
        return false;
    };
    let password = pair
        .iter()
        .position(|&c| c == b':')
        .and_then(|i| pair.get(i + 1..))
        .unwrap_or_default();
    policy::catalogue::ct_eq(password, token.as_bytes())
}

/// Answers one request on `s`, then closes it.
fn serve(mut s: TcpStream, admin: &Admin, rates: &Mutex<stats::Rates>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let Some(req) = read_request(&mut s) else {
        return;
    };
    let managed = matches!(
        req.path.as_str(),
        "/audit" | "/tenants" | "/analytics" | "/trends"
    ) || req.path.starts_with("/tenants/");
    if managed {
        return manage(&mut s, admin, req);
    }
    if !authorized(&admin.token, req.authorization.as_deref()) {
        let realm = "WWW-Authenticate: Basic realm=\"shardgate admin\"\r\n";
        return problem(&mut s, 401, "admin token required", realm);
    }
    use proto::Method::{Get, Post};
    let counters = || {
        admin
            .control
            .upgrade()
            .map(|c| c.counters(SCRAPE_WAIT))
            .unwrap_or_default()
    };
    match (req.method, req.path.as_str()) {
        (Get, "/healthz") => answer(&mut s, 200, "text/plain; charset=utf-8", "ok\n"),
        (Get, "/readyz") if admin.draining.load(Ordering::Relaxed) => {
            answer(&mut s, 503, "text/plain; charset=utf-8", "draining\n");
        }
        (Get, "/readyz") => answer(&mut s, 200, "text/plain; charset=utf-8", "ready\n"),
        (Get, "/metrics") => {
            let text = crate::metrics::text(&counters());
            answer(
                &mut s,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &text,
            );
        }
        (Get, "/stats") => {
            let v = stats_of(rates, &counters());
            answer(&mut s, 200, "application/json", &v.to_string());
        }
        (Get, "/") => {
            let v = stats_of(rates, &counters());
            let draining = admin.draining.load(Ordering::Relaxed);
            answer(
                &mut s,
                200,
                "text/html; charset=utf-8",
                &page::render(&v, draining, admin.manage.is_some()),
            );
        }
        (Get, "/config") => match ask(admin, Ask::Config) {
            Some(c) => answer(
                &mut s,
                200,
                "text/plain; charset=utf-8",
                &config::redacted(&c),
            ),
            None => problem(&mut s, 503, "the control thread did not answer", ""),
        },
        (Post, "/reload") => match ask(admin, Ask::Reload) {
            Some(Ok(what)) => {
                let body = serde_json::json!({ "reloaded": what }).to_string();
                answer(&mut s, 200, "application/json", &body);
            }
            Some(Err(why)) => problem(&mut s, 422, &why, ""),
            None => problem(&mut s, 503, "the control thread did not answer", ""),
        },
        (Post, "/cache/purge") => purge(&mut s, admin, &req.query),
        (_, "/" | "/healthz" | "/readyz" | "/metrics" | "/stats" | "/config") => {
            problem(&mut s, 405, "method not allowed", "Allow: GET\r\n");
        }
        (_, "/reload" | "/cache/purge") => {
            problem(&mut s, 405, "method not allowed", "Allow: POST\r\n");
        }
        _ => problem(&mut s, 404, "no such admin resource", ""),
    }
}

/// The `/stats` document (rates shared by every admin connection; a poisoned lock only means
/// another connection's thread panicked while computing, the figures stay usable).
fn stats_of(rates: &Mutex<stats::Rates>, c: &[crate::control::ShardCounters]) -> serde_json::Value {
    let mut r = rates
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    r.stats(c, Instant::now())
}

/// Asks the main thread and waits for its answer (`None`: it did not answer in time).
fn ask<T>(admin: &Admin, make: impl FnOnce(Sender<T>) -> Ask) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    admin.asks.send(make(tx)).ok()?;
    rx.recv_timeout(ASK_WAIT).ok()
}

/// Hands a management request to the management thread and writes its answer.
fn manage(s: &mut TcpStream, admin: &Admin, req: Request) {
    let Some(to) = &admin.manage else {
        return problem(
            s,
            404,
            "management is off: the config has no [management]",
            "",
        );
    };
    let root = authorized(&admin.token, req.authorization.as_deref());
    let bearer = req
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix(b"Bearer "))
        .map(<[u8]>::to_vec);
    let call = crate::manage::Call {
        method: req.method,
        path: req.path,
        query: req.query,
        body: req.body,
        root,
        bearer: bearer.filter(|_| !root),
        api_key: req.api_key,
    };
    let (tx, rx) = mpsc::channel();
    if to.send((call, tx)).is_err() {
        return problem(s, 503, "the management thread has stopped", "");
    }
    match rx.recv_timeout(ASK_WAIT) {
        Ok(crate::manage::Reply::Done(status, body)) => {
            answer(s, status, "application/json", &body)
        }
        Ok(crate::manage::Reply::Problem(401, why)) => {
            // Bearer for programs; Basic (the token as password) for browsers on the trend pages
            let challenge = "WWW-Authenticate: Bearer realm=\"shardgate management\"\r\nWWW-Authenticate: Basic realm=\"shardgate admin\"\r\n";
            problem(s, 401, &why, challenge)
        }
        Ok(crate::manage::Reply::Problem(status, why)) => problem(s, status, &why, ""),
        Ok(crate::manage::Reply::Page(html)) => answer(s, 200, "text/html; charset=utf-8", &html),
        Err(_) => problem(s, 503, "the management thread did not answer", ""),
    }
}

/// `POST /cache/purge?key=K` (or `prefix=P`, `tag=T`): every shard purges what matches and
/// says how many objects it dropped.
fn purge(s: &mut TcpStream, admin: &Admin, query: &str) {
    let mut what = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = String::from_utf8_lossy(&policy::query::percent_decode(v.as_bytes())).into_owned();
        let p = match k {
            "key" => Purge::Key(v),
            "prefix" => Purge::Prefix(v),
            "tag" => Purge::Tag(v),
            _ => return problem(s, 400, &format!("unknown purge parameter `{k}`"), ""),
        };
        if what.replace(p).is_some() {
            return problem(s, 400, "one of key, prefix or tag", "");
        }
    }
    let Some(what) = what.filter(|p| !p.value().is_empty()) else {
        return problem(s, 400, "purge needs key=, prefix= or tag= with a value", "");
    };
    let Some(control) = admin.control.upgrade() else {
        return problem(s, 503, "stopping", "");
    };
    let counts = control.gather(|tx| Message::Purge(what.clone(), tx), SCRAPE_WAIT);
    let (shards, purged) = (counts.len(), counts.iter().sum::<u64>());
    let body = serde_json::json!({ "purged": purged, "shards": shards }).to_string();
    answer(s, 200, "application/json", &body);
}

fn problem(s: &mut TcpStream, status: u16, detail: &str, fields: &str) {
    let mut out = Vec::new();
    policy::reply::problem_body(&mut out, status, detail);
    let body = String::from_utf8_lossy(&out);
    write(s, status, "application/problem+json", fields, &body);
}

fn answer(s: &mut TcpStream, status: u16, content_type: &str, body: &str) {
    write(s, status, content_type, "", body);
}

fn write(s: &mut TcpStream, status: u16, content_type: &str, fields: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{fields}Connection: close\r\n\r\n",
        proto::write::reason_phrase(status),
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_accepted_as_bearer_or_basic_password_only() {
        assert!(authorized("", None));
        assert!(!authorized("s3", None));
        assert!(authorized("s3", Some(b"Bearer s3")));
        assert!(!authorized("s3", Some(b"Bearer s4")));
        assert!(!authorized("s3", Some(b"Bearer s3x")));
        // "admin:s3" and "anyone:s3", "s3:" (the token as user name is not enough)
        assert!(authorized("s3", Some(b"Basic YWRtaW46czM=")));
        assert!(authorized("s3", Some(b"Basic YW55b25lOnMz")));
        assert!(!authorized("s3", Some(b"Basic czM6")));
        assert!(!authorized("s3", Some(b"Basic !!!")));
        assert!(!authorized("s3", Some(b"Digest s3")));
    }
}
