//! CONNECT on a route with `connect = true`: a target of the route's upstream is chosen and
//! connected to (never the authority the client named: the gateway is not an open proxy),
//! `200` goes back, and the two connections are one tunnel (`tunnel::splice`) until it ends.
//! On any other route CONNECT is 501.

use std::time::Instant;

use policy::Exchange;
use proto::ParseError;

use super::{Failure, Forwarding};
use crate::conn::{Conn, Next};
use crate::error::ProxyError;
use crate::gateway::UpstreamRt;
use crate::io;
use crate::upstream::select::Result as Health;

/// Tunnels the CONNECT request in `conn` to a target of `up`.
pub(super) async fn tunnel(
    f: &Forwarding<'_>,
    conn: &mut Conn,
    ex: &mut Exchange,
    up: &UpstreamRt,
) -> Result<Next, Failure> {
    if !f.route.connect {
        return Err(Failure::before_response(
            ProxyError::ClientMalformed(ParseError::MethodNotImplemented),
            false,
        ));
    }
    let s = &f.gw.settings;
    let sel = &up.select;
    let target = sel
        .pick_keyed(None, ex.now, 0)
        .ok_or_else(|| super::circuit_open(sel, ex.now))?;
    let t = up
        .targets
        .get(target)
        .ok_or_else(|| Failure::before_response(ProxyError::NoUpstream, false))?;
    super::aim(ex, up, target);
    let _in_flight = sel
        .begin(target, Instant::now())
        .ok_or_else(|| super::circuit_open(sel, Instant::now()))?;
    ex.upstream.attempts = 1;
    let tls = up.tls.as_ref().zip(t.tls_name.as_ref());
    let stream =
        crate::upstream::connect::connect(t.addr, up.connect_timeout, s.tcp_nodelay, tls).await;
    let stream = match stream {
        Ok(st) => st,
        Err(e) => {
            sel.report(target, Health::Failed, Instant::now(), &up.name);
            return Err(Failure::before_response(e, false));
        }
    };
    sel.report(target, Health::Ok, Instant::now(), &up.name);
    ex.status = 200;
    conn.out.clear();
    conn.out
        .extend_from_slice(b"HTTP/1.1 200 Connection Established\r\n");
    conn.out.extend_from_slice(&f.shard.date_field());
    conn.out.extend_from_slice(b"\r\n");
    if io::write_all(&mut conn.stream, &mut conn.out, s.client_body_timeout)
        .await
        .is_err()
    {
        return Ok(Next::Abort);
    }
    ex.bytes_out += conn.out.len() as u64;
    // what the client sent after its head is already the tunnel's
    conn.buf.drain(..f.head_len.min(conn.buf.len()));
    Ok(super::tunnel::run(f.shard, conn, ex, stream, Vec::new(), s.tunnel_idle_timeout).await)
}
