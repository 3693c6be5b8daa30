//! A shard's accept loops, one per listener, keyed by the listener's configured address:
//! started at start-up and when a reload adds a listener, stopped when a reload removes one
//! (its socket closes; the connections it accepted finish on their own) or at drain. A TLS
//! listener's connections are handshaken here before they are served.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::gateway::ListenerKind;
use crate::listener::{ListenerId, Listening};
use crate::park::Parked;
use crate::shard::Shard;
use crate::stream::ClientStream;

/// Starts accepting on `l`, a socket bound for listener `id`.
pub fn listen(shard: &Rc<Shard>, id: ListenerId, l: std::net::TcpListener) -> std::io::Result<()> {
    let bound = l.local_addr()?;
    let l = monoio::net::TcpListener::from_std(l)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
    let stop = Rc::new(Cell::new(false));
    let accepted = Rc::new(Cell::new(0));
    let task = monoio::spawn(accept_loop(
        shard.clone(),
        l,
        id,
        stop.clone(),
        accepted.clone(),
    ));
    shard.listening.borrow_mut().push(Listening {
        id,
        bound,
        fd,
        stop,
        accepted,
        task: Some(task),
    });
    Ok(())
}

/// Stops accepting on listeners `ids` (a reload removed them); the connections they
/// accepted go on.
pub fn unlisten(shard: &Shard, ids: &[ListenerId]) {
    shard.listening.borrow_mut().retain(|l| {
        if !ids.contains(&l.id) {
            return true;
        }
        l.stop.set(true);
        crate::sys::shutdown_read(l.fd);
        crate::log!(Info, "shard {}: stopped listening on {}", shard.id, l.bound);
        false
    });
}

/// Stops every accept loop and waits for them to end (drain): their sockets close with them,
/// so no connection waits in a queue nobody serves.
pub async fn stop_all(shard: &Shard) {
    let all = std::mem::take(&mut *shard.listening.borrow_mut());
    for l in &all {
        crate::sys::shutdown_read(l.fd);
    }
    for mut l in all {
        if let Some(t) = l.task.take() {
            t.await;
        }
    }
}

/// Accepts on `listener` (listener `addr`) until the shard drains or a reload stops it.
async fn accept_loop(
    shard: Rc<Shard>,
    listener: monoio::net::TcpListener,
    addr: ListenerId,
    stop: Rc<Cell<bool>>,
    accepted: Rc<Cell<u64>>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if shard.draining.get() || stop.get() {
                    break;
                }
                let stats = &shard.stats;
                stats.accepted.set(stats.accepted.get() + 1);
                accepted.set(accepted.get() + 1);
                let gw = shard.gateway();
                let settings = &gw.settings;
                if settings.tcp_nodelay {
                    let _ = stream.set_nodelay(true);
                }
                let tls = matches!(
                    gw.listener(addr).map(|l| &l.kind),
                    Some(ListenerKind::Tls(_))
                );
                if shard.open_connections() >= settings.max_connections {
                    stats.over_limit.set(stats.over_limit.get() + 1);
                    over_limit_warning(&shard, settings.max_connections);
                    if tls {
                        // a 503 would need a handshake first, the cost the limit avoids
                        drop(stream);
                        continue;
                    }
                    let shard = shard.clone();
                    let stream = ClientStream::Plain(stream);
                    monoio::spawn(async move { crate::answer::over_limit(&shard, stream).await });
                    continue;
                }
                if tls {
                    monoio::spawn(tls_serve(shard.clone(), stream, peer, addr));
                } else {
                    let stream = ClientStream::Plain(stream);
                    let conn = Parked::new(stream, peer, addr, None);
                    monoio::spawn(crate::downstream::serve(shard.clone(), conn));
                }
            }
            Err(e) => {
                if shard.draining.get() || stop.get() {
                    break;
                }
                crate::log!(Warn, "shard {}: accept failed: {e}", shard.id);
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Runs the TLS handshake of a connection to listener `addr`, then serves it; a failed
/// handshake is counted by reason and logged (at most once a second per shard).
async fn tls_serve(
    shard: Rc<Shard>,
    tcp: monoio::net::TcpStream,
    peer: SocketAddr,
    addr: ListenerId,
) {
    let gw = shard.gateway();
    let Some(ListenerKind::Tls(l)) = gw.listener(addr).map(|l| &l.kind) else {
        return;
    };
    // the connection counts as open (drain waits for it) from its first byte of handshake
    let slot = shard.register(
        std::os::fd::AsRawFd::as_raw_fd(&tcp),
        Rc::new(std::cell::Cell::new(crate::park::Phase::Busy)),
    );
    // boxed: the connection's task outlives the handshake, and need not keep its size
    let done = Box::pin(crate::tls::handshake::accept(tcp, l)).await;
    shard.unregister(slot);
    drop(gw);
    match done {
        Ok((stream, info)) => {
            shard.stats.tls_handshake(&info);
            let stream = ClientStream::Tls(Box::new(stream));
            let info = Rc::new(info);
            if info.alpn.as_deref() == Some(b"h2") {
                let from = crate::h2::Origin {
                    peer,
                    listener: addr,
                    tls: Some(info),
                };
                return crate::h2::serve(shard, stream, Vec::new(), from).await;
            }
            let conn = Parked::new(stream, peer, addr, Some(info));
            crate::downstream::serve(shard, conn).await;
        }
        Err(why) => {
            shard.stats.tls_failure(why);
            if TLS_WARN.with(|t| t.allow(Instant::now(), Duration::from_secs(1)).is_some()) {
                crate::log!(
                    Info,
                    "shard {}: TLS handshake with {peer} failed: {}",
                    shard.id,
                    why.as_str()
                );
            }
        }
    }
}

thread_local! {
    static OVER_LIMIT_WARN: crate::log::Throttle = const { crate::log::Throttle::new() };
    static TLS_WARN: crate::log::Throttle = const { crate::log::Throttle::new() };
}

fn over_limit_warning(shard: &Shard, max: usize) {
    if OVER_LIMIT_WARN.with(|t| t.allow(Instant::now(), Duration::from_secs(1)).is_some()) {
        crate::log!(
            Warn,
            "shard {}: max_connections ({max}) reached; refusing new connections",
            shard.id
        );
    }
}
