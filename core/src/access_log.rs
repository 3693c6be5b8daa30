//! The access log (`[access_log]`): one line per finished exchange, JSON or a template,
//! gathered per shard and handed in batches to the shard's writer thread, so a slow disk or
//! pipe never stalls a shard: when the writer is `MAX_BATCHES` behind, lines are dropped and
//! counted. The writer appends to a file (reopened on SIGUSR1, the logrotate convention) or
//! writes to stdout in whole lines of at most `PIPE_BUF` per write, so lines of several
//! shards never interleave.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use conf::observe::{AccessLogConf, LOG_FIELDS};
use policy::{Exchange, Outcome};
use proto::write::put_decimal as put_uint;

/// Batches a shard may have at its writer before it drops lines.
const MAX_BATCHES: usize = 4;

/// Largest write that a pipe keeps whole beside other writers' (POSIX `PIPE_BUF`).
const PIPE_BUF: usize = 4096;

/// A line's layout.
#[derive(Debug, Clone, PartialEq)]
enum Layout {
    /// Every field, as a JSON object.
    Json,
    /// Text and fields (indices into `LOG_FIELDS`), in order.
    Template(Vec<Piece>),
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(Box<[u8]>),
    Field(Field),
}

/// The fields of a line, in `LOG_FIELDS` order (a test checks the two agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Time,
    Shard,
    ClientIp,
    Method,
    Path,
    Status,
    Outcome,
    BytesIn,
    BytesOut,
    DurationMs,
    UpstreamMs,
    Route,
    Upstream,
    Target,
    RequestId,
    TraceId,
    Consumer,
    Refusal,
    Tls,
    Model,
    Provider,
    PromptTokens,
    CompletionTokens,
    CostUsd,
}

impl Field {
    /// Every field, in `LOG_FIELDS` order.
    const ALL: [Field; 24] = [
        Field::Time,
        Field::Shard,
        Field::ClientIp,
        Field::Method,
        Field::Path,
        Field::Status,
        Field::Outcome,
        Field::BytesIn,
        Field::BytesOut,
        Field::DurationMs,
        Field::UpstreamMs,
        Field::Route,
        Field::Upstream,
        Field::Target,
        Field::RequestId,
        Field::TraceId,
        Field::Consumer,
        Field::Refusal,
        Field::Tls,
        Field::Model,
        Field::Provider,
        Field::PromptTokens,
        Field::CompletionTokens,
        Field::CostUsd,
    ];
}

/// `[access_log]` compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Format {
    layout: Layout,
    /// Where lines go.
    pub path: String,
    /// An exchange below 400 is logged when a random `u64` falls below this.
    threshold: u64,
    /// Bytes a shard gathers before it hands them over.
    pub buffer: usize,
    /// Longest a line waits in the shard.
    pub flush: Duration,
}

impl Format {
    /// Compiles a (validated) `[access_log]`; a relative file path is taken from `dir`
    /// (the config file's).
    pub fn new(c: &AccessLogConf, dir: &std::path::Path) -> Format {
        let layout = match c.format.get_ref().as_str() {
            "json" => Layout::Json,
            t => Layout::Template(template(t)),
        };
        let sample = c.sample.get_ref().clamp(0.0, 1.0);
        Format {
            layout,
            path: match c.path.get_ref().as_str() {
                "stdout" => "stdout".into(),
                p => dir.join(p).display().to_string(),
            },
            threshold: if sample >= 1.0 {
                u64::MAX
            } else {
                (sample * u64::MAX as f64) as u64
            },
            buffer: c.buffer.as_usize().max(1024),
            flush: c.flush.0.max(Duration::from_millis(1)),
        }
    }
}

/// The pieces of a (validated) template.
fn template(t: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(at) = rest.find("${") {
        let after = rest.get(at + 2..).unwrap_or_default();
        let Some(end) = after.find('}') else { break };
        if at > 0 {
            out.push(Piece::Text(
                rest.get(..at).unwrap_or_default().as_bytes().into(),
            ));
        }
        let name = after.get(..end).unwrap_or_default();
        if let Some(f) = LOG_FIELDS
            .iter()
            .position(|f| *f == name)
            .and_then(|i| Field::ALL.get(i))
        {
            out.push(Piece::Field(*f));
        }
        rest = after.get(end + 1..).unwrap_or_default();
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.as_bytes().into()));
    }
    out
}

/// A message to a writer thread.
enum ToWriter {
    Lines(Vec<u8>),
    Reopen,
}

/// A shard's writer thread: where its batches go, and where emptied buffers come back.
struct Writer {
    path: String,
    tx: Sender<ToWriter>,
    back: Receiver<Vec<u8>>,
    /// Batches sent and not yet back.
    out: usize,
}

/// A shard's side of its access log.
#[derive(Default)]
pub struct Sink {
    buf: RefCell<Vec<u8>>,
    writer: RefCell<Option<Writer>>,
    /// Lines written into a batch.
    pub lines: Cell<u64>,
    /// Lines dropped because the writer was behind.
    pub dropped: Cell<u64>,
    /// Lines the writer could not write (the file could not be opened or written).
    pub lost: Arc<AtomicU64>,
    /// The current second, rendered once.
    clock: TimeCache,
}

/// `YYYY-MM-DDTHH:MM:SS` of the last second a line was written in.
#[derive(Default)]
struct TimeCache(Cell<(u64, [u8; 19])>);

impl TimeCache {
    /// Writes `t` as RFC 3339 UTC with milliseconds (24 bytes) into `out`.
    fn render(&self, t: std::time::SystemTime, out: &mut [u8; 24]) {
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let (secs, mut head) = self.0.get();
        if secs != d.as_secs() || head == [0; 19] {
            let mut v = Vec::with_capacity(24);
            put_time(&mut v, t);
            if let Some(h) = v.get(..19) {
                head.copy_from_slice(h);
            }
            self.0.set((d.as_secs(), head));
        }
        let ms = d.subsec_millis();
        let (h, tail) = out.split_at_mut(19);
        h.copy_from_slice(&head);
        let digit = |n: u32| b'0' + (n % 10) as u8;
        tail.copy_from_slice(&[b'.', digit(ms / 100), digit(ms / 10), digit(ms), b'Z']);
    }
}

impl Sink {
    /// Records `ex` (finished after `took` on shard `shard`, its route and group `names`) if
    /// it is sampled.
    pub fn record(
        &self,
        f: &Format,
        shard: usize,
        names: Names<'_>,
        ex: &Exchange,
        took: Duration,
        rng: &policy::balance::Rng,
    ) {
        let plain = ex.status < 400 && matches!(ex.outcome, Outcome::Answered | Outcome::Forwarded);
        if plain && f.threshold < u64::MAX && rng.next() >= f.threshold {
            return;
        }
        let full = self.buf.borrow().len() >= f.buffer;
        if full && !self.hand_over(f) {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        {
            let mut buf = self.buf.borrow_mut();
            let line = Line {
                shard,
                names,
                ex,
                took,
            };
            match &f.layout {
                Layout::Json => line.json(&mut buf, &self.clock),
                Layout::Template(pieces) => line.template(pieces, &mut buf, &self.clock),
            }
            buf.push(b'\n');
        }
        self.lines.set(self.lines.get() + 1);
        if self.buf.borrow().len() >= f.buffer {
            self.hand_over(f);
        }
    }

    /// Hands the lines gathered to the writer (starting it, or a new one when the path
    /// changed); false when it is too far behind to take them.
    pub fn hand_over(&self, f: &Format) -> bool {
        let mut w = self.writer.borrow_mut();
        if w.as_ref().is_none_or(|w| w.path != f.path) {
            *w = start_writer(&f.path, self.lost.clone());
        }
        let Some(w) = w.as_mut() else {
            return false;
        };
        let mut spare = None;
        while let Ok(b) = w.back.try_recv() {
            w.out = w.out.saturating_sub(1);
            spare = Some(b);
        }
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            return true;
        }
        if w.out >= MAX_BATCHES {
            return false;
        }
        let next = spare.unwrap_or_else(|| Vec::with_capacity(f.buffer + 1024));
        let batch = std::mem::replace(&mut *buf, next);
        if w.tx.send(ToWriter::Lines(batch)).is_ok() {
            w.out += 1;
        }
        true
    }

    /// Asks the writer to reopen its file (SIGUSR1).
    pub fn reopen(&self) {
        if let Some(w) = self.writer.borrow().as_ref() {
            let _ = w.tx.send(ToWriter::Reopen);
        }
    }

    /// Stops the writer after it wrote everything handed to it (the shard is ending).
    pub fn close(&self, f: Option<&Format>) {
        if let Some(f) = f {
            self.hand_over(f);
        }
        // the writer ends when its channel closes, after the batches already queued
        self.writer.borrow_mut().take();
    }
}

/// Starts a writer thread for `path`; `None` (logged) if the thread cannot start.
fn start_writer(path: &str, lost: Arc<AtomicU64>) -> Option<Writer> {
    let (tx, rx) = mpsc::channel();
    let (back_tx, back) = mpsc::channel();
    let p = path.to_string();
    let spawned = std::thread::Builder::new()
        .name("sg-log".into())
        .spawn(move || write_loop(&p, &rx, &back_tx, &lost));
    match spawned {
        Ok(_) => Some(Writer {
            path: path.to_string(),
            tx,
            back,
            out: 0,
        }),
        Err(e) => {
            crate::log!(Error, "access log: cannot start a writer: {e}");
            None
        }
    }
}

/// Where a writer writes.
struct Out {
    file: Option<std::fs::File>,
    /// A pipe or terminal: writes are cut into whole lines of at most `PIPE_BUF`.
    chunked: bool,
}

fn open(path: &str) -> Out {
    let opened = if path == "stdout" {
        use std::os::fd::AsFd;
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map(std::fs::File::from)
    } else {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    };
    match opened {
        Ok(file) => {
            let chunked = file.metadata().map_or(true, |m| !m.is_file());
            Out {
                file: Some(file),
                chunked,
            }
        }
        Err(e) => {
            crate::log!(
                Error,
                "access log: cannot open {path}: {e}; lines are lost until it opens"
            );
            Out {
                file: None,
                chunked: false,
            }
        }
    }
}

/// The writer thread: writes batches until the shard's side closes.
fn write_loop(path: &str, rx: &Receiver<ToWriter>, back: &Sender<Vec<u8>>, lost: &AtomicU64) {
    let mut out = open(path);
    for m in rx {
        match m {
            ToWriter::Reopen => out = open(path),
            ToWriter::Lines(mut b) => {
                if !write_lines(&mut out, &b) {
                    let n = b.iter().filter(|&&c| c == b'\n').count() as u64;
                    lost.fetch_add(n, Ordering::Relaxed);
                }
                b.clear();
                let _ = back.send(b);
            }
        }
    }
}

/// Writes whole lines; false if they could not be written.
fn write_lines(out: &mut Out, b: &[u8]) -> bool {
    let Some(file) = out.file.as_mut() else {
        return false;
    };
    if !out.chunked {
        return file.write_all(b).is_ok();
    }
    let mut rest = b;
    while !rest.is_empty() {
        let window = rest.get(..PIPE_BUF.min(rest.len())).unwrap_or(rest);
        let cut = if window.len() < PIPE_BUF {
            window.len()
        } else {
            // the last whole line in the window, else one long line on its own
            memchr::memrchr(b'\n', window)
                .map(|i| i + 1)
                .or_else(|| memchr::memchr(b'\n', rest).map(|i| i + 1))
                .unwrap_or(rest.len())
        };
        let (now, later) = rest.split_at(cut.min(rest.len()));
        if file.write_all(now).is_err() {
            return false;
        }
        rest = later;
    }
    true
}

/// The names of an exchange's route and upstream group (`None`: it had none).
#[derive(Debug, Clone, Copy, Default)]
pub struct Names<'a> {
    /// The route's name.
    pub route: Option<&'a str>,
    /// The upstream group's name.
    pub upstream: Option<&'a str>,
}

/// One exchange's line being written.
struct Line<'a> {
    shard: usize,
    names: Names<'a>,
    ex: &'a Exchange,
    took: Duration,
}

/// `v` as a JSON string's contents (quotes, backslashes and control bytes escaped; other
/// bytes above 0x7e as `\u00XX`).
fn json_str(out: &mut Vec<u8>, v: &[u8]) {
    if v.iter()
        .all(|&c| (0x20..=0x7e).contains(&c) && c != b'"' && c != b'\\')
    {
        out.extend_from_slice(v);
        return;
    }
    for &c in v {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(c),
            _ => {
                let _ = write!(out, "\\u{c:04x}");
            }
        }
    }
}

/// An address (quoted for JSON when `quote`); IPv4 without the formatting machinery.
fn put_ip(out: &mut Vec<u8>, ip: std::net::IpAddr, quote: bool) {
    if quote {
        out.push(b'"');
    }
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                put_uint(out, u64::from(o));
            }
        }
        std::net::IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    if quote {
        out.push(b'"');
    }
}

/// Microseconds as milliseconds with three decimals.
fn put_ms(out: &mut Vec<u8>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    put_uint(out, us / 1000);
    let frac = us % 1000;
    let digit = |n: u64| b'0' + (n % 10) as u8;
    out.extend_from_slice(&[b'.', digit(frac / 100), digit(frac / 10), digit(frac)]);
}

/// `t` as RFC 3339 UTC with milliseconds.
pub fn put_time(out: &mut Vec<u8>, t: std::time::SystemTime) {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (year, month, day) = proto::date::civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    );
}

impl Line<'_> {
    /// Writes the value of field `f` (quoted as JSON text when `quote`); false when the
    /// exchange has none.
    fn value(&self, f: Field, out: &mut Vec<u8>, quote: bool, clock: &TimeCache) -> bool {
        let ex = self.ex;
        let text = |out: &mut Vec<u8>, v: &[u8]| {
            if quote {
                out.push(b'"');
                json_str(out, v);
                out.push(b'"');
            } else {
                out.extend_from_slice(v);
            }
        };
        match f {
            Field::Time => {
                let mut t = [0u8; 24];
                clock.render(ex.wall, &mut t);
                text(out, &t);
            }
            Field::Shard => put_uint(out, self.shard as u64),
            Field::ClientIp => put_ip(out, ex.client_ip, quote),
            Field::Method => text(out, method(ex.method).as_bytes()),
            Field::Path => text(out, &ex.target),
            Field::Status => put_uint(out, u64::from(ex.status)),
            Field::Outcome => text(out, outcome(ex.outcome).as_bytes()),
            Field::BytesIn => put_uint(out, ex.bytes_in),
            Field::BytesOut => put_uint(out, ex.bytes_out),
            Field::DurationMs => put_ms(out, self.took),
            Field::UpstreamMs => match (ex.upstream.sent_at, ex.upstream.head_at) {
                (Some(s), Some(h)) => put_ms(out, h.saturating_duration_since(s)),
                _ => return false,
            },
            Field::Route => match self.names.route {
                Some(r) => text(out, r.as_bytes()),
                None => return false,
            },
            Field::Upstream => match self.names.upstream {
                Some(u) => text(out, u.as_bytes()),
                None => return false,
            },
            Field::Target => match ex.upstream.addr {
                Some(a) => {
                    if quote {
                        out.push(b'"');
                    }
                    put_ip(out, a.ip(), false);
                    out.push(b':');
                    put_uint(out, u64::from(a.port()));
                    if quote {
                        out.push(b'"');
                    }
                }
                None => return false,
            },
            Field::RequestId if !ex.request_id.as_bytes().is_empty() => {
                text(out, ex.request_id.as_bytes());
            }
            Field::TraceId if ex.trace_id != [0; 16] => {
                let mut hex = [0u8; 32];
                crate::trace::put_hex(&mut hex, &ex.trace_id);
                text(out, &hex);
            }
            Field::Consumer => match ex.consumer() {
                Some(c) => text(out, c.as_bytes()),
                None => return false,
            },
            Field::Refusal => match ex.refusal {
                Some(r) => text(out, r.as_bytes()),
                None => return false,
            },
            Field::Tls => match ex.tls.as_ref() {
                Some(t) => text(out, t.version.as_bytes()),
                None => return false,
            },
            Field::Model => match ex.tokens.as_deref() {
                Some(t) => text(out, t.model.as_bytes()),
                None => return false,
            },
            Field::Provider => match ex.tokens.as_deref() {
                Some(t) => text(out, t.provider.as_bytes()),
                None => return false,
            },
            Field::PromptTokens => match ex.tokens.as_deref() {
                Some(t) => put_uint(out, t.prompt),
                None => return false,
            },
            Field::CompletionTokens => match ex.tokens.as_deref() {
                Some(t) => put_uint(out, t.completion),
                None => return false,
            },
            Field::CostUsd => match ex.tokens.as_deref() {
                Some(t) => {
                    let _ = write!(
                        out,
                        "{}.{:06}",
                        t.cost_microusd / 1_000_000,
                        t.cost_microusd % 1_000_000
                    );
                }
                None => return false,
            },
            Field::RequestId | Field::TraceId => return false,
        }
        true
    }

    /// Every field as one JSON object (fields the exchange has not are `null`).
    fn json(&self, out: &mut Vec<u8>, clock: &TimeCache) {
        out.push(b'{');
        for (i, (name, f)) in LOG_FIELDS.iter().zip(Field::ALL).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            let at = out.len();
            if !self.value(f, out, true, clock) {
                out.truncate(at);
                out.extend_from_slice(b"null");
            }
        }
        out.push(b'}');
    }

    /// The template's text and fields (`-` for fields the exchange has not).
    fn template(&self, pieces: &[Piece], out: &mut Vec<u8>, clock: &TimeCache) {
        for p in pieces {
            match p {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Field(i) => {
                    let at = out.len();
                    if !self.value(*i, out, false, clock) {
                        out.truncate(at);
                        out.push(b'-');
                    }
                }
            }
        }
    }
}

fn method(m: proto::Method) -> &'static str {
    use proto::Method as M;
    match m {
        M::Get => "GET",
        M::Head => "HEAD",
        M::Post => "POST",
        M::Put => "PUT",
        M::Delete => "DELETE",
        M::Options => "OPTIONS",
        M::Trace => "TRACE",
        M::Patch => "PATCH",
        M::Connect => "CONNECT",
        M::Other => "other",
    }
}

fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Pending => "pending",
        Outcome::Answered => "answered",
        Outcome::Refused => "refused",
        Outcome::Forwarded => "forwarded",
        Outcome::Failed => "failed",
        Outcome::Aborted => "aborted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let cases = [
            (0u64, "1970-01-01T00:00:00.000Z"),
            (951_782_400, "2000-02-29T00:00:00.000Z"),
            (1_796_181_045, "2026-12-02T03:10:45.000Z"),
            (4_107_542_399, "2100-02-28T23:59:59.000Z"),
        ];
        for (secs, want) in cases {
            let mut out = Vec::new();
            put_time(&mut out, std::time::UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(String::from_utf8_lossy(&out), want);
        }
        let mut out = Vec::new();
        put_time(
            &mut out,
            std::time::UNIX_EPOCH + Duration::from_millis(1_500),
        );
        assert_eq!(String::from_utf8_lossy(&out), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn numbers_addresses_and_cached_times_render_as_before() {
        let mut out = Vec::new();
        for n in [0u64, 7, 10, 1234567890, u64::MAX] {
            out.clear();
            put_uint(&mut out, n);
            assert_eq!(String::from_utf8_lossy(&out), n.to_string());
        }
        out.clear();
        put_ip(&mut out, std::net::IpAddr::from([10, 0, 255, 1]), true);
        assert_eq!(out, b"\"10.0.255.1\"");
        out.clear();
        put_ms(&mut out, Duration::from_micros(12_034));
        assert_eq!(out, b"12.034");
        let clock = TimeCache::default();
        let at = |ms: u64| std::time::UNIX_EPOCH + Duration::from_millis(ms);
        for ms in [1_796_181_045_007, 1_796_181_045_999, 1_796_181_046_050, 0] {
            let (mut fast, mut slow) = ([0u8; 24], Vec::new());
            clock.render(at(ms), &mut fast);
            put_time(&mut slow, at(ms));
            assert_eq!(fast.as_slice(), slow.as_slice());
        }
    }

    #[test]
    fn json_strings_escape_what_json_needs() {
        let mut out = Vec::new();
        json_str(&mut out, b"a\"b\\c\n\x7f\xc3");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "a\\\"b\\\\c\\u000a\\u007f\\u00c3"
        );
    }

    #[test]
    fn templates_split_into_text_and_fields() {
        let p = template("${client_ip} - ${status} ${duration_ms}ms");
        assert_eq!(
            p,
            vec![
                Piece::Field(Field::ClientIp),
                Piece::Text(b" - ".as_slice().into()),
                Piece::Field(Field::Status),
                Piece::Text(b" ".as_slice().into()),
                Piece::Field(Field::DurationMs),
                Piece::Text(b"ms".as_slice().into()),
            ]
        );
        // the enum and the names agree, in order
        for (name, f) in LOG_FIELDS.iter().zip(Field::ALL) {
            let camel: String = name
                .split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|h| h.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            assert_eq!(format!("{f:?}"), camel);
        }
    }

    #[test]
    fn stdout_writes_are_whole_lines_below_pipe_buf() -> std::io::Result<()> {
        let (r, w) = std::io::pipe()?;
        let mut out = Out {
            file: Some(std::fs::File::from(std::os::fd::OwnedFd::from(w))),
            chunked: true,
        };
        let line = [b'x'; 99];
        let mut batch = Vec::new();
        for _ in 0..100 {
            batch.extend_from_slice(&line);
            batch.push(b'\n');
        }
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let _ = std::io::Read::read_to_end(&mut &r, &mut got);
            got
        });
        assert!(write_lines(&mut out, &batch));
        drop(out);
        let got = reader.join().map_err(|_| std::io::Error::other("reader"))?;
        assert_eq!(got, batch);
        Ok(())
    }
}
