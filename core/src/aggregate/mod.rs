//! Routes answered by composition (`[route.aggregate]`): after the route's stages let the
//! request through, its calls go out at once (those with `depends_on` as soon as the call they
//! read is in), each within its own deadline, on the shard's pooled connections; their
//! JSON answers become one object `{"<name>": <body>, …}`. A failed call is, by the
//! route's policy, a member `{"error": "…"}` named in the partial header, or a 502. The
//! composed answer then goes through the route's response stages (`respond`).

pub mod call;
pub mod respond;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use policy::{Exchange, Outcome};
use proto::{Method, RequestHead};
use serde_json::Value;

use crate::aggregate_plan::Plan;
use crate::gateway::Gateway;
use call::CallError;

/// What one call gave: its body (JSON) and, when a later call reads it, the parsed value.
type Got = Result<(Vec<u8>, Option<Value>), CallError>;

/// A call under way.
type Call<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A call and those depending on it, under way: what each gives, by index in the plan.
type Pending<'a> = Call<'a, Vec<(usize, Got)>>;

/// The composed answer.
pub struct Composed {
    /// The body and the failed calls' names (comma-separated, empty when none), or the
    /// detail of a 502.
    pub reply: Result<(Vec<u8>, String), String>,
    /// How the exchange ended, for logs and metrics.
    pub outcome: Outcome,
    /// Calls made.
    pub calls: u8,
}

/// Polls every future until all are done; their outputs in order.
async fn join_all<T>(futs: Vec<Call<'_, T>>) -> Vec<T> {
    let mut futs: Vec<_> = futs.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, o) in futs.iter_mut().zip(out.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *o = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// The field lines every call of this request carries: the client's fields a call names,
/// and the request id.
fn passed_fields(head: &RequestHead, buf: &[u8], ex: &Exchange, names: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in &head.fields {
        let name = f.name.get(buf);
        // the request id is sent once, below, whatever the client sent
        if names.iter().any(|n| name.eq_ignore_ascii_case(n))
            && !name.eq_ignore_ascii_case(b"x-request-id")
        {
            proto::write::put_field(&mut out, name, f.value.get(buf));
        }
    }
    let id = ex.request_id.as_bytes();
    if !id.is_empty() {
        proto::write::put_field(&mut out, b"X-Request-Id", id);
    }
    out
}

/// Makes call `i` of `plan` and checks its answer.
async fn one(
    gw: &Gateway,
    plan: &Plan,
    i: usize,
    target: Vec<u8>,
    fields: Vec<u8>,
    parse: bool,
) -> Got {
    let c = plan.calls.get(i).ok_or(CallError::Unavailable)?;
    let up = gw.upstreams.get(c.upstream).ok_or(CallError::Unavailable)?;
    let method = Method::from_bytes(c.method.as_bytes());
    let mut line = Vec::with_capacity(32 + target.len());
    line.extend_from_slice(c.method.as_bytes());
    line.push(b' ');
    line.extend_from_slice(&target);
    line.extend_from_slice(b" HTTP/1.1\r\n");
    let deadline = Instant::now() + c.timeout;
    let resp = call::make(
        up,
        &line,
        &fields,
        method,
        plan.max_body,
        deadline,
        gw.settings.tcp_nodelay,
    )
    .await?;
    if !(200..300).contains(&resp.status) {
        return Err(CallError::Status(resp.status));
    }
    let value = if parse {
        Some(serde_json::from_slice::<Value>(&resp.body).map_err(|_| CallError::NotJson)?)
    } else {
        serde_json::from_slice::<serde::de::IgnoredAny>(&resp.body)
            .map_err(|_| CallError::NotJson)?;
        None
    };
    Ok((resp.body, value))
}

/// Starts call `i` with the answer it depends on (`dep`): `Err` when it cannot start.
fn start<'a>(
    gw: &'a Gateway,
    plan: &'a Plan,
    i: usize,
    req: (&RequestHead, &[u8], &Exchange),
    dep: Option<&Value>,
) -> Result<Call<'a, Got>, CallError> {
    let (head, buf, ex) = req;
    let c = plan.calls.get(i).ok_or(CallError::Unavailable)?;
    let target = c.target(head, buf, ex, dep).map_err(CallError::Field)?;
    let fields = passed_fields(head, buf, ex, &c.headers);
    let parse = plan.calls.iter().any(|d| d.depends_on == Some(i));
    Ok(Box::pin(one(gw, plan, i, target, fields, parse)))
}

/// Runs the calls of `plan` for the request in `head`/`buf` and composes the answer. Each
/// call without `depends_on` starts at once; the calls depending on it start as soon as it
/// is in (failed: they fail too, without being made).
pub async fn run(
    gw: &Gateway,
    plan: &Plan,
    head: &RequestHead,
    buf: &[u8],
    ex: &Exchange,
) -> Composed {
    let req = (head, buf, ex);
    let mut chains: Vec<Pending<'_>> = Vec::new();
    for (i, c) in plan.calls.iter().enumerate() {
        if c.depends_on.is_some() {
            continue;
        }
        let first = start(gw, plan, i, req, None);
        chains.push(Box::pin(async move {
            let got = match first {
                Ok(f) => f.await,
                Err(e) => Err(e),
            };
            let mut done = Vec::new();
            let mut then: Vec<Call<'_, (usize, Got)>> = Vec::new();
            for (j, d) in plan.calls.iter().enumerate() {
                if d.depends_on != Some(i) {
                    continue;
                }
                let next = match &got {
                    Ok((_, v)) => start(gw, plan, j, req, v.as_ref()),
                    Err(_) => Err(CallError::Dependency(c.name.clone())),
                };
                match next {
                    Ok(f) => then.push(Box::pin(async move { (j, f.await) })),
                    Err(e) => done.push((j, Err(e))),
                }
            }
            done.push((i, got));
            done.extend(join_all(then).await);
            done
        }));
    }
    let mut got: Vec<Option<Got>> = plan.calls.iter().map(|_| None).collect();
    for (i, r) in join_all(chains).await.into_iter().flatten() {
        if let Some(slot) = got.get_mut(i) {
            *slot = Some(r);
        }
    }
    compose(plan, got)
}

/// The answer from each call's result, by the route's policy.
fn compose(plan: &Plan, got: Vec<Option<Got>>) -> Composed {
    let calls = u8::try_from(got.len()).unwrap_or(u8::MAX);
    let mut body = Vec::with_capacity(256);
    let mut failed: Vec<&str> = Vec::new();
    body.push(b'{');
    for (i, (c, r)) in plan.calls.iter().zip(got).enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&c.key);
        body.push(b':');
        match r.unwrap_or(Err(CallError::Unavailable)) {
            Ok((b, _)) => body.extend_from_slice(&b),
            Err(e) => {
                if plan.on_error == conf::aggregate::OnError::Fail {
                    return Composed {
                        reply: Err(format!("call `{}` failed: {}", c.name, e.text())),
                        outcome: Outcome::Failed,
                        calls,
                    };
                }
                failed.push(&c.name);
                body.extend_from_slice(b"{\"error\":");
                body.extend_from_slice(&serde_json::to_vec(&e.text()).unwrap_or_default());
                body.push(b'}');
            }
        }
    }
    body.push(b'}');
    Composed {
        reply: Ok((body, failed.join(","))),
        outcome: Outcome::Forwarded,
        calls,
    }
}
