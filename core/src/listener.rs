//! Per-shard listening sockets with SO_REUSEPORT, so the kernel spreads connections over the
//! shards. Port 0 is resolved once by the first bind; the other shards bind the port it got.

use std::net::SocketAddr;

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
