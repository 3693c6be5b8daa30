//! One pinned thread per shard with its own monoio runtime (io_uring, else epoll, logged),
//! accept loop, shard-local state (`Rc`/`Cell`/`RefCell`) and drain.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use conf::{Config, Driver};

use crate::control::Control;
use crate::gateway::Gateway;
use crate::upstream::pool::Pool;

/// Per-shard counters, read at drain (and by the metrics scrape, later).
#[derive(Debug, Default)]
pub struct Stats {
    /// Client connections accepted.
    pub accepted: Cell<u64>,
    /// Request heads received.
    pub requests: Cell<u64>,
}

/// Open client connections: their fds and whether each is idle between requests, so drain
/// can close idle ones at once. Updated per connection, read only at drain.
#[derive(Default)]
struct Registry {
    slots: Vec<Option<(RawFd, Rc<Cell<bool>>)>>,
    free: Vec<usize>,
    open: usize,
}

/// A shard's state.
pub struct Shard {
    /// Shard number.
    pub id: usize,
    /// Compiled configuration.
    pub gw: Gateway,
    /// One pool per upstream.
    pub pools: Vec<RefCell<Pool>>,
    rr: Vec<Cell<usize>>,
    /// Set once drain began: answer with `Connection: close` and stop.
    pub draining: Cell<bool>,
    conns: RefCell<Registry>,
    /// Upstream read buffers not in use: an exchange borrows one, so idle client
    /// connections hold none.
    buffers: RefCell<Vec<Vec<u8>>>,
    /// Counters.
    pub stats: Stats,
    /// The Date of answers the gateway makes itself, re-rendered once a second.
    date: proto::date::DateCache,
}

/// Free upstream buffers kept per shard; beyond this they are released.
const SPARE_BUFFERS: usize = 256;

impl Shard {
    fn new(id: usize, gw: Gateway) -> Shard {
        let pools = gw
            .upstreams
            .iter()
            .map(|u| RefCell::new(Pool::new(u.targets.len(), u.keepalive, u.idle_timeout)))
            .collect();
        let rr = gw.upstreams.iter().map(|_| Cell::new(id)).collect();
        Shard {
            id,
            gw,
            pools,
            rr,
            draining: Cell::new(false),
            conns: RefCell::default(),
            buffers: RefCell::default(),
            stats: Stats::default(),
            date: proto::date::DateCache::default(),
        }
    }

    /// Round-robin choice of a target of upstream `up` (each shard starts at its own offset).
    pub fn next_target(&self, up: usize, targets: usize) -> usize {
        match self.rr.get(up) {
            Some(c) if targets > 0 => {
                let i = c.get();
                c.set(i.wrapping_add(1));
                i % targets
            }
            _ => 0,
        }
    }

    /// `Date: <IMF-fixdate>\r\n` for an answer the gateway makes itself (RFC 9110 §6.6.1).
    pub fn date_field(&self) -> [u8; crate::headers::DATE_FIELD_LEN] {
        let mut f = *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
        if let Some(slot) = f.get_mut(6..6 + proto::date::IMF_FIXDATE_LEN) {
            slot.copy_from_slice(&self.date.now());
        }
        f
    }

    /// An empty upstream read buffer of `upstream_buffer` capacity.
    pub fn take_buffer(&self) -> Vec<u8> {
        match self.buffers.borrow_mut().pop() {
            Some(b) => b,
            None => Vec::with_capacity(self.gw.settings.upstream_buffer),
        }
    }

    /// Returns a buffer from `take_buffer` (a buffer lost to a cancelled read is not returned).
    pub fn give_buffer(&self, mut b: Vec<u8>) {
        if b.capacity() == self.gw.settings.upstream_buffer {
            let mut spare = self.buffers.borrow_mut();
            if spare.len() < SPARE_BUFFERS {
                b.clear();
                spare.push(b);
            }
        }
    }

    /// Records an open client connection; returns its slot.
    pub fn register(&self, fd: RawFd, idle: Rc<Cell<bool>>) -> usize {
        let mut r = self.conns.borrow_mut();
        r.open += 1;
        match r.free.pop() {
            Some(i) => {
                if let Some(s) = r.slots.get_mut(i) {
                    *s = Some((fd, idle));
                }
                i
            }
            None => {
                r.slots.push(Some((fd, idle)));
                r.slots.len() - 1
            }
        }
    }

    /// Forgets a closed connection.
    pub fn unregister(&self, slot: usize) {
        let mut r = self.conns.borrow_mut();
        if let Some(s) = r.slots.get_mut(slot)
            && s.take().is_some()
        {
            r.open -= 1;
            r.free.push(slot);
        }
    }

    /// Open client connections.
    pub fn open_connections(&self) -> usize {
        self.conns.borrow().open
    }

    /// Ends the wait of every idle connection (its pending read sees EOF).
    fn close_idle(&self) {
        for (fd, idle) in self.conns.borrow().slots.iter().flatten() {
            if idle.get() {
                crate::sys::shutdown_read(*fd);
            }
        }
    }
}

/// What a shard thread needs to start.
pub struct ShardSpec {
    /// Shard number.
    pub id: usize,
    /// CPU to pin to.
    pub cpu: Option<usize>,
    /// Driver choice.
    pub driver: Driver,
    /// Its listeners (already bound with SO_REUSEPORT).
    pub listeners: Vec<std::net::TcpListener>,
    /// The configuration (compiled again inside the shard: stage state is shard-local).
    pub config: Arc<Config>,
    /// Drain signal.
    pub control: Arc<Control>,
}

/// Starts a shard thread; it reports `Ok(driver name)` or `Err(message)` on `ready` once its
/// runtime and listeners are up.
pub fn spawn(
    spec: ShardSpec,
    ready: Sender<Result<&'static str, String>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("sg-shard-{}", spec.id))
        .spawn(move || run(spec, ready))
}

fn run(spec: ShardSpec, ready: Sender<Result<&'static str, String>>) {
    if let Some(cpu) = spec.cpu
        && let Err(e) = monoio::utils::bind_to_cpu_set([cpu])
    {
        crate::log!(
            Warn,
            "shard {}: cannot pin to CPU {cpu} ({e:?}); running unpinned",
            spec.id
        );
    }
    let gw = match Gateway::build(&spec.config) {
        Ok(g) => g,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let use_uring = match spec.driver {
        Driver::Epoll => false,
        Driver::IoUring => {
            if !monoio::utils::detect_uring() {
                let _ = ready.send(Err(
                    "driver = \"io_uring\" but io_uring is not available on this kernel".into(),
                ));
                return;
            }
            true
        }
        Driver::Auto => monoio::utils::detect_uring(),
    };
    let drain_timeout = spec.config.server.drain_timeout.0;
    let id = spec.id;
    let fut = shard_main(
        Shard::new(id, gw),
        spec.listeners,
        spec.control,
        drain_timeout,
        ready.clone(),
        use_uring,
    );
    let result = if use_uring {
        // DEFER_TASKRUN + SINGLE_ISSUER: completions are run only when the shard asks for them,
        // on its own thread, with no IPI or task-work interruption; COOP_TASKRUN is the older
        // half of that. Measured in one interleaved A/B run: CPU per request 0.77× nginx with
        // DEFER vs 0.81× without (`compare.py --variant`, see loadtest/RESULTS.md). Kernels
        // without them get the next best ring.
        let build = |flags: &[fn(&mut io_uring::Builder) -> &mut io_uring::Builder]| {
            let mut urb = io_uring::IoUring::builder();
            for f in flags {
                f(&mut urb);
            }
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .with_entries(1024)
                .uring_builder(urb)
                .enable_timer()
                .build()
        };
        let best = build(&[
            io_uring::Builder::setup_coop_taskrun,
            io_uring::Builder::setup_single_issuer,
            io_uring::Builder::setup_defer_taskrun,
        ]);
        best.or_else(|e| {
            crate::log!(Info, "shard {id}: io_uring without DEFER_TASKRUN ({e})");
            build(&[
                io_uring::Builder::setup_coop_taskrun,
                io_uring::Builder::setup_single_issuer,
            ])
        })
        .or_else(|e| {
            crate::log!(
                Info,
                "shard {id}: io_uring without COOP_TASKRUN/SINGLE_ISSUER ({e})"
            );
            build(&[])
        })
        .map(|mut rt| rt.block_on(fut))
    } else {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(fut))
    };
    if let Err(e) = result {
        let _ = ready.send(Err(format!("shard {id}: cannot build runtime: {e}")));
    }
}

async fn shard_main(
    shard: Shard,
    listeners: Vec<std::net::TcpListener>,
    control: Arc<Control>,
    drain_timeout: Duration,
    ready: Sender<Result<&'static str, String>>,
    uring: bool,
) {
    let shard = Rc::new(shard);
    let mut fds = Vec::with_capacity(listeners.len());
    for l in listeners {
        match monoio::net::TcpListener::from_std(l) {
            Ok(l) => {
                fds.push(l.as_raw_fd());
                monoio::spawn(accept_loop(shard.clone(), l));
            }
            Err(e) => {
                let _ = ready.send(Err(format!(
                    "shard {}: cannot register listener: {e}",
                    shard.id
                )));
                return;
            }
        }
    }
    // key sets the jwt stages fetch over HTTP: one task per feed (global stages are shared
    // by every route, so dedupe)
    let mut feeds: Vec<Rc<policy::stages::jwt::JwksFeed>> = Vec::new();
    for route in &shard.gw.routes {
        for f in route.pipeline.feeds() {
            if !feeds.iter().any(|g| Rc::ptr_eq(g, &f)) {
                feeds.push(f);
            }
        }
    }
    for f in feeds {
        monoio::spawn(crate::jwks::keep_fresh(shard.clone(), f));
    }
    let _ = ready.send(Ok(if uring { "io_uring" } else { "epoll" }));
    drop(ready);
    while !control.drain_requested() {
        monoio::time::sleep(Duration::from_millis(50)).await;
    }
    shard.draining.set(true);
    for fd in fds {
        crate::sys::shutdown_read(fd);
    }
    let deadline = Instant::now() + drain_timeout;
    loop {
        shard.close_idle();
        if shard.open_connections() == 0 || Instant::now() >= deadline {
            break;
        }
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = shard.open_connections();
    crate::log!(
        Info,
        "shard {}: drained; accepted {} connections, served {} requests{}",
        shard.id,
        shard.stats.accepted.get(),
        shard.stats.requests.get(),
        if left > 0 {
            format!(", {left} connections cut at drain_timeout")
        } else {
            String::new()
        }
    );
}

async fn accept_loop(shard: Rc<Shard>, listener: monoio::net::TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if shard.draining.get() {
                    break;
                }
                shard.stats.accepted.set(shard.stats.accepted.get() + 1);
                if shard.open_connections() >= shard.gw.settings.max_connections {
                    monoio::spawn(crate::downstream::refuse(shard.clone(), stream));
                    continue;
                }
                monoio::spawn(crate::downstream::serve(shard.clone(), stream, peer));
            }
            Err(e) => {
                if shard.draining.get() {
                    break;
                }
                crate::log!(Warn, "shard {}: accept failed: {e}", shard.id);
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The CPUs shards are pinned to, one entry per shard (`None`: not pinned).
pub fn placement(config: &Config) -> Vec<Option<usize>> {
    let allowed = crate::sys::allowed_cpus();
    let n = match config.server.shards {
        conf::Shards::Auto => allowed.len().max(1),
        conf::Shards::Count(n) => usize::from(n),
    };
    (0..n)
        .map(|i| match &config.server.pin {
            conf::Pin::All(false) => None,
            conf::Pin::All(true) => allowed.get(i % allowed.len().max(1)).copied(),
            conf::Pin::Cpus(list) => list.get(i % list.len().max(1)).copied(),
        })
        .collect()
}

/// A running set of shards.
pub struct Started {
    /// Listen addresses as bound (port 0 resolved).
    pub bound: Vec<SocketAddr>,
    /// The driver the shards use.
    pub driver: &'static str,
    /// Shard threads.
    pub handles: Vec<std::thread::JoinHandle<()>>,
    /// CPU of each shard (`None`: not pinned).
    pub cpus: Vec<Option<usize>>,
}

/// Binds listeners and starts every shard; returns once all shards are serving.
pub fn start_all(config: Arc<Config>, control: Arc<Control>) -> Result<Started, String> {
    let cpus = placement(&config);
    let (mut per_shard, bound) =
        crate::listener::bind_all(&config.listen, cpus.len(), config.server.backlog)
            .map_err(|e| format!("cannot listen on {:?}: {e}", config.listen))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut handles = Vec::with_capacity(cpus.len());
    for (id, cpu) in cpus.iter().enumerate() {
        let listeners = std::mem::take(per_shard.get_mut(id).ok_or("listener set missing")?);
        let spec = ShardSpec {
            id,
            cpu: *cpu,
            driver: config.server.driver,
            listeners,
            config: config.clone(),
            control: control.clone(),
        };
        handles
            .push(spawn(spec, tx.clone()).map_err(|e| format!("cannot start shard thread: {e}"))?);
    }
    drop(tx);
    let mut driver = "epoll";
    for _ in 0..handles.len() {
        match rx.recv() {
            Ok(Ok(d)) => driver = d,
            Ok(Err(e)) => {
                control.request_drain();
                return Err(e);
            }
            Err(_) => {
                control.request_drain();
                return Err("a shard stopped during start-up".into());
            }
        }
    }
    if driver == "epoll" && config.server.driver == Driver::Auto {
        crate::log!(
            Info,
            "io_uring is not available here; shards use the epoll driver"
        );
    }
    Ok(Started {
        bound,
        driver,
        handles,
        cpus,
    })
}
