//! Shard threads: placement and pinning, one monoio runtime each (io_uring, else epoll,
//! logged), background tasks (the access log's flushes among them), the inbox loop,
//! start-up and drain.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use conf::{Config, Driver};

use crate::control::{Control, Inbox, Message};
use crate::gateway::Gateway;
use crate::shard::Shard;
use crate::tls::tickets::TicketSecret;

/// What a shard thread needs to start.
pub struct ShardSpec {
    /// Shard number.
    pub id: usize,
    /// Shards in all.
    pub shards: usize,
    /// CPU to pin to.
    pub cpu: Option<usize>,
    /// Its listeners (already bound with SO_REUSEPORT).
    pub listeners: Vec<std::net::TcpListener>,
    /// The configuration (compiled again inside the shard: stage state is shard-local).
    pub config: Arc<Config>,
    /// Where its messages arrive.
    pub inbox: Inbox,
    /// Where its stages' letters to the other shards go.
    pub peers: crate::control::Peers,
    /// The session-ticket secret every shard shares.
    pub secret: Arc<TicketSecret>,
    /// The management catalogue it starts with (`[management]`).
    pub catalogue: Option<Arc<policy::catalogue::Catalogue>>,
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
    if let Some(c) = &spec.catalogue {
        policy::catalogue::install(c);
    }
    if let Some(cpu) = spec.cpu
        && let Err(e) = monoio::utils::bind_to_cpu_set([cpu])
    {
        crate::log!(
            Warn,
            "shard {}: cannot pin to CPU {cpu} ({e:?}); running unpinned",
            spec.id
        );
    }
    let gw = match Gateway::build(&spec.config, spec.shards, spec.id, None, &spec.secret) {
        Ok(g) => g,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let use_uring = match spec.config.server.driver {
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
    let source = crate::shard::Source {
        config: std::cell::RefCell::new(spec.config.clone()),
        shards: spec.shards,
        secret: spec.secret.clone(),
    };
    let fut = shard_main(
        Shard::new(id, gw, source),
        spec.listeners,
        spec.inbox,
        spec.peers,
        drain_timeout,
        ready.clone(),
        use_uring,
    );
    let result = if use_uring {
        uring_runtime(id).map(|mut rt| rt.block_on(fut))
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

/// The best io_uring runtime this kernel gives. DEFER_TASKRUN + SINGLE_ISSUER: completions
/// are run only when the shard asks for them, on its own thread, with no IPI or task-work
/// interruption; COOP_TASKRUN is the older half of that. Measured in one interleaved A/B
/// run: CPU per request 0.77× nginx with DEFER vs 0.81× without (`compare.py --variant`,
/// see loadtest/RESULTS.md). Kernels without them get the next best ring.
fn uring_runtime(
    id: usize,
) -> std::io::Result<monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>> {
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
    build(&[
        io_uring::Builder::setup_coop_taskrun,
        io_uring::Builder::setup_single_issuer,
        io_uring::Builder::setup_defer_taskrun,
    ])
    .or_else(|e| {
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
}

async fn shard_main(
    shard: Shard,
    listeners: Vec<std::net::TcpListener>,
    inbox: Inbox,
    peers: crate::control::Peers,
    drain_timeout: Duration,
    ready: Sender<Result<&'static str, String>>,
    uring: bool,
) {
    let shard = Rc::new(shard);
    let fail = |what: String| {
        let _ = ready.send(Err(format!("shard {}: {what}", shard.id)));
    };
    // epoll reads the wake socket after readiness and needs EAGAIN once it is drained (a
    // blocking read would stall the shard); io_uring waits on a blocking socket by itself,
    // and older kernels answer EAGAIN there instead of waiting
    if let Err(e) = inbox.wake.set_nonblocking(!uring) {
        return fail(format!("cannot set up the inbox: {e}"));
    }
    let mut wake = match monoio::net::UnixStream::from_std(inbox.wake) {
        Ok(w) => w,
        Err(e) => return fail(format!("cannot register the inbox: {e}")),
    };
    let ids = crate::listener::ids(&shard.source.config.borrow().listen);
    for (addr, l) in ids.into_iter().zip(listeners) {
        if let Err(e) = crate::accept::listen(&shard, addr, l) {
            return fail(format!("cannot register listener: {e}"));
        }
    }
    // the tasks of this config's stages; a config that replaces it starts its own
    shard.start_tasks();
    monoio::spawn(flush_access_log(Rc::downgrade(&shard)));
    monoio::spawn(sweep_parked(Rc::downgrade(&shard)));
    let id = shard.id;
    policy::letter::set_sender(Box::new(move |l| peers.send(id, l)));
    let _ = ready.send(Ok(if uring { "io_uring" } else { "epoll" }));
    drop(ready);
    serve_inbox(&shard, &inbox.rx, &inbox.asleep, &mut wake, false).await;
    // while its connections finish, the shard still answers the other shards' letters (a
    // shared cache's lookups wait on them)
    let letters = async {
        serve_inbox(&shard, &inbox.rx, &inbox.asleep, &mut wake, true).await;
        // the control side is gone: nothing more will come, the drain goes on alone
        std::future::pending::<()>().await;
    };
    monoio::select! {
        () = drain(&shard, drain_timeout) => {}
        () = letters => {}
    }
    shard.log.close(shard.gateway().access_log.as_deref());
}

/// Hands each shard's lines over at least every `flush` of its current config (a shard
/// without an access log looks again each second), until the shard is gone.
async fn flush_access_log(shard: std::rc::Weak<Shard>) {
    loop {
        let wait = {
            let Some(s) = shard.upgrade() else { return };
            let gw = s.gateway();
            match gw.access_log.as_deref() {
                Some(f) => {
                    s.log.hand_over(f);
                    f.flush
                }
                None => Duration::from_secs(1),
            }
        };
        monoio::time::sleep(wait).await;
    }
}

/// Closes parked connections whose keep-alive ran out (`park`), and hands the memory that
/// connections gave back to the system, until the shard is gone.
async fn sweep_parked(shard: std::rc::Weak<Shard>) {
    loop {
        monoio::time::sleep(crate::park::SWEEP_EVERY).await;
        let Some(s) = shard.upgrade() else { return };
        s.expire_parked(crate::clock::now());
        crate::sys::collect_freed_memory();
    }
}

/// Handles messages as they arrive, until one says drain (or the control side is gone);
/// `draining`: only those a draining shard still serves, until the control side is gone.
async fn serve_inbox(
    shard: &Rc<Shard>,
    rx: &std::sync::mpsc::Receiver<Message>,
    asleep: &std::sync::atomic::AtomicBool,
    wake: &mut monoio::net::UnixStream,
    draining: bool,
) {
    use monoio::io::AsyncReadRent;
    let mut buf = Vec::with_capacity(64);
    loop {
        while let Some(message) = rx
            .try_recv()
            .ok()
            .or_else(|| crate::control::sleep(rx, asleep))
        {
            if !handle(shard, message, draining) {
                return;
            }
        }
        buf.clear();
        let (res, b) = wake.read(buf).await;
        buf = b;
        match res {
            Ok(n) if n > 0 => {}
            // a spurious wake-up: look again
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            // the control side is gone: nobody can ask for anything any more, drain
            _ => return,
        }
    }
}

/// Handles one message; false when it says drain. A draining shard answers counters,
/// purges and letters, and drops the rest (a config or listener it would not serve).
fn handle(shard: &Rc<Shard>, message: Message, draining: bool) -> bool {
    match message {
        Message::Drain => return draining,
        Message::Config(_) | Message::Listen(_) if draining => {}
        Message::Counters(reply) => {
            let _ = reply.send(shard.counters());
        }
        Message::Health(v) => shard.apply_health(&v),
        Message::Targets(t) => shard.apply_targets(&t),
        Message::Config(c) => {
            shard.apply_config(c);
        }
        Message::Listen(added) => {
            for (addr, l) in added {
                if let Err(e) = crate::accept::listen(shard, addr, l) {
                    crate::log!(Error, "shard {}: cannot listen on {addr}: {e}", shard.id);
                }
            }
        }
        Message::Unlisten(removed) => crate::accept::unlisten(shard, &removed),
        Message::ReopenLog => shard.log.reopen(),
        Message::Purge(what, reply) => {
            let _ = reply.send(shard.purge(&what));
        }
        Message::Catalogue(c, reply) => {
            policy::catalogue::install(&c);
            if let Some(r) = reply {
                let _ = r.send(c.version);
            }
        }
        Message::Calls(reply) => {
            if let Some(t) = &shard.calls
                && let Err(back) = reply.send(t.take())
            {
                let (rows, dropped) = back.0;
                t.put_back(rows, dropped);
            }
        }
        Message::Letter { from, letter } => shard.gateway().deliver(from, letter),
    }
    true
}

/// Stops accepting (the listeners are closed once their accept loops end, so no connection
/// waits in a queue nobody serves), closes idle connections, and waits (at most `limit`) for
/// the others to finish the exchange they are in.
async fn drain(shard: &Shard, limit: Duration) {
    shard.draining.set(true);
    shard.wake_drain_waiters();
    crate::accept::stop_all(shard).await;
    let deadline = Instant::now() + limit;
    loop {
        // again on every round: a connection accepted just before drain may register (or a
        // busy one go idle) after the first pass
        shard.close_idle();
        let wait = deadline.saturating_duration_since(Instant::now());
        if shard.open_connections() == 0 || wait.is_zero() {
            break;
        }
        let _ = monoio::time::timeout(wait.min(DRAIN_LOOK), shard.drained.raised()).await;
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

/// How often drain looks for connections to close while it waits for the busy ones.
const DRAIN_LOOK: Duration = Duration::from_millis(20);

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
    /// Messages to the shards (the prober holds a weak reference: it stops with this).
    pub control: Arc<Control>,
    /// The admin listener's address, when there is one.
    pub admin: Option<SocketAddr>,
    /// Set when the gateway drains (`/readyz` answers 503).
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// What the admin listener asks of the main thread (reload, the running config).
    pub asks: std::sync::mpsc::Receiver<crate::admin::Ask>,
}

/// Binds listeners and starts every shard; returns once all shards are serving.
pub fn start_all(config: Arc<Config>) -> Result<Started, String> {
    start_all_with(config, crate::upstream::discovery::system_resolver())
}

/// `start_all` with the resolver discovery uses (a seam tests feed).
pub fn start_all_with(
    config: Arc<Config>,
    resolve: crate::upstream::discovery::Resolver,
) -> Result<Started, String> {
    let discovered = config.upstreams.iter().any(|u| u.conf.discovery.is_some());
    let config = if discovered {
        Arc::new(crate::upstream::discovery::initial(&config, &resolve))
    } else {
        config
    };
    let cpus = placement(&config);
    let (mut per_shard, bound) =
        crate::listener::bind_all(&config.listen, cpus.len(), config.server.backlog)
            .map_err(|e| format!("cannot listen on {:?}: {e}", config.listen))?;
    let (mut control, inboxes) =
        Control::new(cpus.len()).map_err(|e| format!("cannot create shard inboxes: {e}"))?;
    if let Some(r) = &config.redis {
        let settings = crate::broker::Settings::new(r, config.dir())?;
        let broker = crate::broker::start(settings, control.peers())
            .map_err(|e| format!("cannot start the lease broker: {e}"))?;
        control.set_broker(broker);
    }
    let secret = TicketSecret::generate()?;
    let managed = match &config.management {
        Some(m) => Some((m.clone(), crate::manage::open(m, config.dir())?)),
        None => None,
    };
    let catalogue = managed.as_ref().map(|(_, (_, c))| Arc::new(c.clone()));
    let (tx, rx) = std::sync::mpsc::channel();
    let mut handles = Vec::with_capacity(cpus.len());
    for ((id, cpu), inbox) in cpus.iter().enumerate().zip(inboxes) {
        let listeners = std::mem::take(per_shard.get_mut(id).ok_or("listener set missing")?);
        let spec = ShardSpec {
            id,
            shards: cpus.len(),
            cpu: *cpu,
            listeners,
            config: config.clone(),
            inbox,
            peers: control.peers(),
            secret: secret.clone(),
            catalogue: catalogue.clone(),
        };
        match spawn(spec, tx.clone()) {
            Ok(h) => handles.push(h),
            Err(e) => {
                control.request_drain();
                return Err(format!("cannot start shard thread: {e}"));
            }
        }
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
    let control = Arc::new(control);
    let (to_prober, changes) = std::sync::mpsc::channel();
    if let Err(e) = crate::upstream::health::start(&config, Arc::downgrade(&control), changes) {
        control.request_drain();
        return Err(format!("cannot start the health prober: {e}"));
    }
    let watched = crate::upstream::discovery::start(
        &config,
        Arc::downgrade(&control),
        resolve,
        Some(to_prober),
    );
    if let Err(e) = watched {
        control.request_drain();
        return Err(format!("cannot start discovery: {e}"));
    }
    let manage = match managed {
        None => None,
        Some((m, (store, c))) => match crate::manage::start(&m, store, c, Arc::downgrade(&control))
        {
            Ok(m) => Some(m),
            Err(e) => {
                control.request_drain();
                return Err(format!("cannot start the management thread: {e}"));
            }
        },
    };
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (asks_tx, asks) = std::sync::mpsc::channel();
    let admin = match &config.admin {
        None => None,
        Some((addr, token)) => {
            let a = crate::admin::Admin {
                token: token.clone(),
                control: Arc::downgrade(&control),
                draining: draining.clone(),
                asks: asks_tx,
                manage,
            };
            match crate::admin::start(*addr, a) {
                Ok(a) => Some(a),
                Err(e) => {
                    control.request_drain();
                    return Err(format!("cannot listen on the admin address {addr}: {e}"));
                }
            }
        }
    };
    Ok(Started {
        bound,
        driver,
        handles,
        cpus,
        control,
        admin,
        asks,
        draining,
    })
}
