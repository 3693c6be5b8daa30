//! Background refreshes a stage asks for (`Exchange::refresh`: a cache serving a stale copy
//! under `stale-while-revalidate`): a GET of the request's target, on a task of its own, to a
//! target of the route's upstream over a new connection; the whole answer (bounded in size
//! and time) goes back to the route's stages. The client's exchange never waits for it. At
//! most `MAX_IN_FLIGHT` refreshes are out per shard.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use policy::{Exchange, Refresh};
use proto::{Limits, Method, RequestHead, ResponseHead};

use crate::gateway::Gateway;
use crate::upstream::select::Result as Health;

/// Refreshes in flight on one shard beyond which new ones are skipped (and answered as
/// failed, so the stage forgets them).
const MAX_IN_FLIGHT: u32 = 64;

/// Largest answer read.
const MAX_ANSWER: usize = 64 << 20;

thread_local! {
    static IN_FLIGHT: Cell<u32> = const { Cell::new(0) };
}

/// Starts the refresh `r` of the request in `head` on route `route` of `gw`.
pub fn spawn(
    gw: Rc<Gateway>,
    route: usize,
    head: &RequestHead,
    buf: &[u8],
    ex: &Exchange,
    r: Refresh,
) {
    let Some(rt) = gw.routes.get(route) else {
        return;
    };
    let target = rt.choice.pick(head, buf, ex).and_then(|g| {
        let up = gw.upstreams.get(g)?;
        Some((g, up.select.pick(head, buf, ex, 0)?))
    });
    let Some((group, target)) = target.filter(|_| IN_FLIGHT.get() < MAX_IN_FLIGHT) else {
        rt.pipeline.on_refresh(r.token, None, unix_now());
        return;
    };
    let path = ex.edits.target.as_deref().unwrap_or(head.path(buf));
    let mut request = Vec::with_capacity(128 + r.fields.len());
    request.extend_from_slice(b"GET ");
    request.extend_from_slice(path);
    request.extend_from_slice(b" HTTP/1.1\r\n");
    proto::write::put_field(
        &mut request,
        b"Host",
        head.authority(buf).unwrap_or_default(),
    );
    request.extend_from_slice(&r.fields);
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    IN_FLIGHT.set(IN_FLIGHT.get() + 1);
    monoio::spawn(async move {
        fetch(&gw, route, group, target, request, r.token).await;
        IN_FLIGHT.set(IN_FLIGHT.get().saturating_sub(1));
    });
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sends one refresh and hands its answer to the route's stages; the result counts toward
/// the target's health like any request's.
async fn fetch(
    gw: &Gateway,
    route: usize,
    group: usize,
    target: usize,
    bytes: Vec<u8>,
    token: u64,
) {
    let (Some(rt), Some(up)) = (gw.routes.get(route), gw.upstreams.get(group)) else {
        return;
    };
    let (Some(t), Some(_in_flight)) = (
        up.targets.get(target),
        up.select.begin(target, Instant::now()),
    ) else {
        rt.pipeline.on_refresh(token, None, unix_now());
        return;
    };
    let result = super::mirror::send_to(gw, up, t, bytes, Method::Get, MAX_ANSWER).await;
    let health = match &result {
        Ok(a) if a.status >= 500 => Health::ServerError,
        Ok(_) => Health::Ok,
        Err(_) => Health::Failed,
    };
    up.select.report(target, health, Instant::now(), &up.name);
    let wall = unix_now();
    let Ok(answer) = result else {
        rt.pipeline.on_refresh(token, None, wall);
        return;
    };
    let mut parsed = ResponseHead::with_capacity(64);
    match proto::parse_response(&answer.head, &mut parsed, &Limits::default()) {
        Ok(proto::Status::Complete(_)) => {
            let fetched = policy::stage::Fetched {
                head: &parsed,
                buf: &answer.head,
                body: &answer.body,
            };
            rt.pipeline.on_refresh(token, Some(fetched), wall);
        }
        _ => rt.pipeline.on_refresh(token, None, wall),
    }
}
