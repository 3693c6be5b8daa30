//! Per-shard listening sockets with SO_REUSEPORT, so the kernel spreads connections over the
//! shards. Port 0 is resolved once by the first bind; the other shards bind the port it got.
//! `Listening` is a shard's record of one it accepts on.

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;

use socket2::{Domain, Protocol, Socket, Type};

/// Binds one SO_REUSEPORT listener on `addr`.
pub fn bind_reuseport(addr: SocketAddr, backlog: u32) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// Binds `shards` listeners for every address; returns them per shard, and the addresses as
/// bound (port 0 replaced by the real port).
pub fn bind_all(
    addrs: &[SocketAddr],
    shards: usize,
    backlog: u32,
) -> std::io::Result<(Vec<Vec<std::net::TcpListener>>, Vec<SocketAddr>)> {
    let mut per_shard: Vec<Vec<std::net::TcpListener>> = (0..shards).map(|_| Vec::new()).collect();
    let mut bound = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let first = bind_reuseport(addr, backlog)?;
        let real = first.local_addr()?;
        bound.push(real);
        for (i, slot) in per_shard.iter_mut().enumerate() {
            if i == 0 {
                continue;
            }
            slot.push(bind_reuseport(real, backlog)?);
        }
        if let Some(slot) = per_shard.first_mut() {
            slot.insert(slot.len(), first);
        }
    }
    Ok((per_shard, bound))
}

/// Which listener of a config: its configured address, and which of the listeners with that
/// address it is (several may say port 0). Stable across reloads that keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId {
    /// The address as configured.
    pub addr: SocketAddr,
    /// How many listeners before it in the config have the same address.
    pub nth: u16,
}

impl std::fmt::Display for ListenerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.nth {
            0 => write!(f, "{}", self.addr),
            n => write!(f, "{} (#{})", self.addr, n + 1),
        }
    }
}

/// The ids of a config's listeners, given their addresses in config order.
pub fn ids(addrs: &[SocketAddr]) -> Vec<ListenerId> {
    let mut out: Vec<ListenerId> = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let nth = out.iter().filter(|i| i.addr == addr).count();
        out.push(ListenerId {
            addr,
            nth: u16::try_from(nth).unwrap_or(u16::MAX),
        });
    }
    out
}

/// A listener one shard accepts on (shard-local).
pub struct Listening {
    /// Which listener (what `Gateway::listener` and connections name it by).
    pub id: ListenerId,
    /// Its address as bound (port 0 resolved).
    pub bound: SocketAddr,
    /// Its socket, to stop the accept loop (`shutdown` ends a pending accept).
    pub fd: RawFd,
    /// Set when a reload removed it: the accept loop ends instead of retrying.
    pub stop: Rc<Cell<bool>>,
    /// Connections it accepted on this shard.
    pub accepted: Rc<Cell<u64>>,
    /// The accept loop.
    pub task: Option<monoio::task::JoinHandle<()>>,
}
