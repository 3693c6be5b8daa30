//! Shadow copies (`[route.mirror]`): a mirrored request goes, on a task of its own, to a
//! target of the shadow group over a new connection; its answer is read (bounded in size and
//! time) and dropped. The client's exchange never waits for it, and a failing shadow changes
//! nothing for the client. At most `MAX_IN_FLIGHT` copies are in flight per shard.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use proto::Method;

use crate::gateway::Gateway;
use crate::upstream::client;
use crate::upstream::select::Result as Health;

/// Copies in flight on one shard beyond which new ones are skipped.
const MAX_IN_FLIGHT: u32 = 256;

/// Largest shadow answer read (the rest is cut off with the connection).
const MAX_ANSWER: usize = 1 << 20;

thread_local! {
    /// Copies in flight on this shard's thread.
    static IN_FLIGHT: Cell<u32> = const { Cell::new(0) };
}

/// Sends a copy of `request` (a whole prepared request: head and body, for `method`) to
/// `target` of group `group` of `gw`; skipped when the shard already has `MAX_IN_FLIGHT`
/// copies out.
pub(super) fn spawn(gw: Rc<Gateway>, group: usize, target: usize, request: &[u8], method: Method) {
    if IN_FLIGHT.get() >= MAX_IN_FLIGHT {
        return;
    }
    let bytes = request.to_vec();
    IN_FLIGHT.set(IN_FLIGHT.get() + 1);
    monoio::spawn(async move {
        copy(&gw, group, target, bytes, method).await;
        IN_FLIGHT.set(IN_FLIGHT.get().saturating_sub(1));
    });
}

/// Sends one copy and reads its answer; the result counts toward the shadow target's
/// health like any request's.
async fn copy(gw: &Gateway, group: usize, target: usize, bytes: Vec<u8>, method: Method) {
    let Some(up) = gw.upstreams.get(group) else {
        return;
    };
    let Some(t) = up.targets.get(target) else {
        return;
    };
    // a shadow whose circuit is open gets no copy
    let Some(_in_flight) = up.select.begin(target, Instant::now()) else {
        return;
    };
    let result = send_to(gw, up, t, bytes, method, MAX_ANSWER).await;
    let health = match result {
        Ok(a) if a.status >= 500 => Health::ServerError,
        Ok(_) => Health::Ok,
        Err(_) => Health::Failed,
    };
    up.select.report(target, health, Instant::now(), &up.name);
}

/// Sends `bytes` (a whole request for `method`) to target `t` of group `up` on a new
/// connection, with the group's TLS and timeouts, reading at most `max` body bytes.
pub(super) async fn send_to(
    gw: &Gateway,
    up: &crate::gateway::UpstreamRt,
    t: &crate::gateway::TargetRt,
    bytes: Vec<u8>,
    method: Method,
    max: usize,
) -> Result<client::Response, client::ClientError> {
    let tls = up.tls.as_ref().zip(t.tls_name.as_ref());
    let limits = client::Deadlines {
        connect: up.connect_timeout,
        whole: up.connect_timeout + up.response_timeout,
    };
    let nodelay = gw.settings.tcp_nodelay;
    client::send_bytes(t.addr, bytes, method, max, limits, nodelay, tls).await
}
