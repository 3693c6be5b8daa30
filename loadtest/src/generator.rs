//! The load generator: `connections` client connections spread over `threads` pinned monoio
//! threads, either closed-loop (each connection sends its next request as soon as the last
//! response ended) or open-loop at a fixed total rate (wrk2 semantics: every request has a slot
//! on a timetable, and its latency runs from that slot, so a stalled server is charged for every
//! request it delayed — no coordinated omission).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;

use std::future::Future;

use crate::client::{Conn, Failure};
use crate::report::Report;

/// Granularity of monoio's timer wheel.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// One request of the mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Origin-form target, e.g. `/api/items?id=1`.
    pub path: String,
    /// Extra header fields.
    pub headers: Vec<(String, String)>,
    /// Body bytes (sent with Content-Length when not empty).
    pub body: Vec<u8>,
    /// Relative weight in the mix.
    pub weight: u32,
}

impl RequestSpec {
    /// A bodiless GET of `path`.
    pub fn get(path: &str) -> RequestSpec {
        RequestSpec {
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            weight: 1,
        }
    }

    /// The request's bytes as sent to `host`.
    pub fn render(&self, host: &str, keepalive: bool) -> Vec<u8> {
        let mut r = format!("{} {} HTTP/1.1\r\nHost: {host}\r\n", self.method, self.path);
        for (n, v) in &self.headers {
            r += &format!("{n}: {v}\r\n");
        }
        if !self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            r += &format!("Content-Length: {}\r\n", self.body.len());
        }
        if !keepalive {
            r += "Connection: close\r\n";
        }
        r += "\r\n";
        let mut bytes = r.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Host header value.
    pub host: String,
    /// The weighted request mix (at least one).
    pub requests: Vec<RequestSpec>,
    /// Concurrent connections in all.
    pub connections: usize,
    /// Generator threads (each its own monoio runtime).
    pub threads: usize,
    /// Total requests per second (open loop); `None` for closed loop.
    pub rate: Option<f64>,
    /// Time before the measured window, excluded from every figure.
    pub warmup: Duration,
    /// Length of the measured window.
    pub duration: Duration,
    /// Reuse connections; otherwise one connection per request (`Connection: close`).
    pub keepalive: bool,
    /// A request without its whole response after this long counts as a timeout.
    pub timeout: Duration,
    /// CPUs for the threads (thread i on `pin[i % len]`); empty for no pinning.
    pub pin: Vec<usize>,
    /// Speak HTTPS with this (`None`: plain HTTP).
    pub tls: Option<crate::tls::TlsPlan>,
}

impl Plan {
    /// A closed-loop plan with one GET of `/` and the usual defaults.
    pub fn new(addr: SocketAddr) -> Plan {
        Plan {
            addr,
            host: addr.to_string(),
            requests: vec![RequestSpec::get("/")],
            connections: 64,
            threads: 1,
            rate: None,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            keepalive: true,
            timeout: Duration::from_secs(10),
            pin: Vec::new(),
            tls: None,
        }
    }
}

/// Runs `plan` from `start` (a moment shortly ahead, so every thread shares the timetable) and
/// returns the merged report. The measured window is `[start + warmup, start + warmup +
/// duration)`; a request belongs to it when its scheduled (open loop) or actual (closed loop)
/// send time falls inside.
pub fn run_at(plan: &Plan, start: Instant) -> anyhow::Result<Report> {
    anyhow::ensure!(!plan.requests.is_empty(), "the request mix is empty");
    anyhow::ensure!(plan.connections > 0, "at least one connection is needed");
    if let Some(rate) = plan.rate {
        anyhow::ensure!(rate > 0.0 && rate.is_finite(), "rate must be positive");
    }
    let threads = plan.threads.clamp(1, plan.connections);
    let mut handles = Vec::new();
    for t in 0..threads {
        let plan = plan.clone();
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || thread_main(&plan, t, threads, start))
            .context("spawn generator thread")?;
        handles.push(handle);
    }
    let mut total = Report::new(plan.duration);
    for h in handles {
        let r = h
            .join()
            .map_err(|_| anyhow::anyhow!("generator thread panicked"))??;
        total.merge(&r);
    }
    Ok(total)
}

/// Runs `plan` starting now.
pub fn run(plan: &Plan) -> anyhow::Result<Report> {
    run_at(plan, Instant::now() + Duration::from_millis(50))
}

fn thread_main(plan: &Plan, t: usize, threads: usize, start: Instant) -> anyhow::Result<Report> {
    if let Some(cpu) = plan.pin.get(t % plan.pin.len().max(1)) {
        monoio::utils::bind_to_cpu_set([*cpu]).with_context(|| format!("pin to CPU {cpu}"))?;
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .with_entries(4096)
        .enable_timer()
        .build()
        .context("start the generator's runtime")?;
    rt.block_on(async move {
        let mut tasks = Vec::new();
        // connection ids t, t + threads, t + 2 threads, … belong to this thread
        for id in (t..plan.connections).step_by(threads) {
            let plan = plan.clone();
            tasks.push(monoio::spawn(async move {
                match plan.tls.clone() {
                    None => connection(&plan, id, start, Plain).await,
                    Some(t) => connection(&plan, id, start, Tls(t)).await,
                }
            }));
        }
        let mut report = Report::new(plan.duration);
        for task in tasks {
            report.merge(&task.await);
        }
        Ok(report)
    })
}

/// Which slot of the timetable comes next for one connection.
struct Timetable {
    first: Duration,
    interval: Duration,
}

impl Timetable {
    /// Connection `id` of `n` sends every `n / rate` seconds, staggered by `1 / rate` from
    /// the others so the total is evenly spaced.
    fn new(rate: f64, id: usize, n: usize) -> Timetable {
        Timetable {
            first: Duration::from_secs_f64(id as f64 / rate),
            interval: Duration::from_secs_f64(n as f64 / rate),
        }
    }

    fn slot(&self, start: Instant, k: u32) -> Instant {
        start + self.first + self.interval.saturating_mul(k)
    }
}

/// A small deterministic generator for picking from the mix (xorshift64).
struct Pick(u64);

impl Pick {
    fn next(&mut self, total: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % total.max(1)
    }
}

/// How a generator connection is opened: plain, or with a TLS handshake.
trait Dial {
    type Stream: monoio::io::AsyncReadRent + monoio::io::AsyncWriteRent;
    fn dial(
        &self,
        addr: std::net::SocketAddr,
    ) -> impl Future<Output = std::io::Result<Conn<Self::Stream>>>;
}

struct Plain;

impl Dial for Plain {
    type Stream = monoio::net::TcpStream;
    fn dial(
        &self,
        addr: std::net::SocketAddr,
    ) -> impl Future<Output = std::io::Result<Conn<Self::Stream>>> {
        Conn::connect(addr)
    }
}

struct Tls(crate::tls::TlsPlan);

impl Dial for Tls {
    type Stream = monoio_rustls::ClientTlsStream<monoio::net::TcpStream>;
    fn dial(
        &self,
        addr: std::net::SocketAddr,
    ) -> impl Future<Output = std::io::Result<Conn<Self::Stream>>> {
        Conn::connect_tls(addr, &self.0)
    }
}

async fn connection<D: Dial>(plan: &Plan, id: usize, start: Instant, dial: D) -> Report {
    let window_start = start + plan.warmup;
    let end = window_start + plan.duration;
    let mut report = Report::new(plan.duration);
    let mut requests: Vec<(Vec<u8>, bool)> = plan
        .requests
        .iter()
        .map(|r| (r.render(&plan.host, plan.keepalive), r.method == "HEAD"))
        .collect();
    let weights: Vec<u64> = plan.requests.iter().map(|r| u64::from(r.weight)).collect();
    let total_weight: u64 = weights.iter().sum();
    let mut pick =
        Pick(0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let timetable = plan
        .rate
        .map(|rate| Timetable::new(rate, id, plan.connections));
    let mut conn: Option<Conn<D::Stream>> = None;
    let mut k: u32 = 0;
    monoio::time::sleep_until(monoio::time::Instant::from_std(start)).await;
    loop {
        if crate::STOP.load(Ordering::Relaxed) {
            break;
        }
        let intended = match &timetable {
            Some(t) => {
                let slot = t.slot(start, k);
                k = k.saturating_add(1);
                if slot >= end {
                    break;
                }
                // monoio's timers tick in whole milliseconds and fire on the tick after the
                // deadline; aiming one tick early lands the send in [slot - 1 ms, slot].
                let aim = slot.checked_sub(TIMER_TICK).unwrap_or(slot);
                if Instant::now() < aim {
                    monoio::time::sleep_until(monoio::time::Instant::from_std(aim)).await;
                }
                // Latency runs from the slot when the send is late (a server that held this
                // connection up is charged for it), from the send itself when it is early.
                slot.min(Instant::now())
            }
            None => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                now
            }
        };
        let measured = intended >= window_start && intended < end;
        let c = match conn.take() {
            Some(c) => c,
            None => {
                match monoio::time::timeout(plan.timeout, dial.dial(plan.addr)).await {
                    Ok(Ok(c)) => c,
                    _ => {
                        if measured {
                            report.errors.connect += 1;
                        }
                        if timetable.is_none() {
                            // closed loop: do not spin on a refusing port
                            monoio::time::sleep(Duration::from_millis(10)).await;
                        }
                        continue;
                    }
                }
            }
        };
        let mut c = c;
        let which = pick_index(&weights, pick.next(total_weight));
        let Some((bytes, head_only)) = requests.get_mut(which) else {
            continue;
        };
        let head_only = *head_only;
        let request = std::mem::take(bytes);
        let outcome = monoio::time::timeout(plan.timeout, c.exchange(request, head_only)).await;
        let done = Instant::now();
        match outcome {
            Ok((result, request)) => {
                if let Some((slot, _)) = requests.get_mut(which) {
                    *slot = request;
                }
                match result {
                    Ok(resp) => {
                        if measured {
                            report.record(done - intended, resp.status, resp.body_bytes);
                        }
                        if resp.reusable && plan.keepalive {
                            conn = Some(c);
                        }
                    }
                    Err(f) => {
                        if measured {
                            match f {
                                Failure::Reset => report.errors.reset += 1,
                                Failure::Protocol => report.errors.protocol += 1,
                            }
                        }
                    }
                }
            }
            Err(_) => {
                // the request bytes went with the cancelled exchange: render them again
                if let (Some(slot), Some(spec)) =
                    (requests.get_mut(which), plan.requests.get(which))
                {
                    slot.0 = spec.render(&plan.host, plan.keepalive);
                }
                if measured {
                    report.errors.timeout += 1;
                }
            }
        }
    }
    report
}

/// Index of the request whose cumulative weight covers `x`.
fn pick_index(weights: &[u64], mut x: u64) -> usize {
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timetable_spreads_connections_evenly() {
        let start = Instant::now();
        let rate = 1000.0;
        let mut slots: Vec<Instant> = (0..4)
            .flat_map(|id| {
                let t = Timetable::new(rate, id, 4);
                (0..5).map(move |k| t.slot(start, k))
            })
            .collect();
        slots.sort();
        for pair in slots.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap.abs_diff(Duration::from_millis(1)) < Duration::from_micros(2),
                "{gap:?}"
            );
        }
    }

    #[test]
    fn mix_follows_weights() {
        let weights = [1, 3];
        let mut pick = Pick(12345);
        let mut counts = [0u32; 2];
        for _ in 0..40_000 {
            counts[pick_index(&weights, pick.next(4))] += 1;
        }
        let share = f64::from(counts[1]) / 40_000.0;
        assert!((0.73..0.77).contains(&share), "{counts:?}");
    }

    #[test]
    fn requests_render_with_framing() {
        let mut r = RequestSpec::get("/x");
        r.method = "POST".into();
        r.body = b"abc".to_vec();
        r.headers.push(("Authorization".into(), "Bearer t".into()));
        assert_eq!(
            r.render("h:1", false),
            b"POST /x HTTP/1.1\r\nHost: h:1\r\nAuthorization: Bearer t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        );
    }
}
