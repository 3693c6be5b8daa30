//! One call of an aggregate: a target of its upstream chosen (breakers and ejections
//! respected), a pooled connection reused or a new one made, the request sent and the whole
//! answer read within the call's deadline; the target's health told how it went.

use std::time::Instant;

use proto::Method;

use crate::gateway::UpstreamRt;
use crate::upstream::client::{self, ClientError, Response};
use crate::upstream::select::Result as Health;

/// Why a call gave no usable answer (the member's `error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No target may take it (all ejected, circuits open).
    Unavailable,
    /// Connecting failed.
    Unreachable,
    /// No whole answer within its timeout.
    Timeout,
    /// The connection closed, or the answer was not HTTP we accept, or too large.
    Broken,
    /// The upstream answered with this non-2xx status.
    Status(u16),
    /// The answer's body is not JSON.
    NotJson,
    /// The call it depends on failed.
    Dependency(String),
    /// Its target could not be made from the answer it depends on.
    Field(String),
}

impl CallError {
    /// The `error` text of its member (no internal detail).
    pub fn text(&self) -> String {
        match self {
            CallError::Unavailable => "no upstream target available".to_string(),
            CallError::Unreachable => "upstream unreachable".to_string(),
            CallError::Timeout => "timed out".to_string(),
            CallError::Broken => "upstream answer broken".to_string(),
            CallError::Status(s) => format!("upstream answered {s}"),
            CallError::NotJson => "upstream answer is not JSON".to_string(),
            CallError::Dependency(d) => format!("`{d}` failed"),
            CallError::Field(f) => f.clone(),
        }
    }
}

/// Sends a request (its request line, then `Host` for the target chosen, then `fields`) to
/// a target of `up` and reads the answer by `deadline`, refusing bodies over `max_body`.
pub async fn make(
    up: &UpstreamRt,
    line: &[u8],
    fields: &[u8],
    method: Method,
    max_body: usize,
    deadline: Instant,
    nodelay: bool,
) -> Result<Response, CallError> {
    let now = Instant::now();
    let sel = &up.select;
    let target = sel.pick_keyed(None, now, 0).ok_or(CallError::Unavailable)?;
    let t = up.targets.get(target).ok_or(CallError::Unavailable)?;
    let _in_flight = sel.begin(target, now).ok_or(CallError::Unavailable)?;
    let host = match &up.host {
        conf::HostRewrite::Fixed(v) => v.as_bytes(),
        _ => &t.host[..],
    };
    let mut request = Vec::with_capacity(line.len() + host.len() + fields.len() + 32);
    request.extend_from_slice(line);
    proto::write::put_field(&mut request, b"Host", host);
    request.extend_from_slice(fields);
    if matches!(method, Method::Post | Method::Put) || line.starts_with(b"PATCH ") {
        request.extend_from_slice(b"Content-Length: 0\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let pooled = up.pool.borrow_mut().checkout(target, now, true);
    let mut stream = match pooled {
        Some(s) => s,
        None => {
            let connect = up
                .connect_timeout
                .min(deadline.saturating_duration_since(now));
            let tls = up.tls.as_ref().zip(t.tls_name.as_ref());
            match crate::upstream::connect::connect(t.addr, connect, nodelay, tls).await {
                Ok(s) => s,
                Err(_) => {
                    sel.report(target, Health::Failed, Instant::now(), &up.name);
                    return Err(if Instant::now() >= deadline {
                        CallError::Timeout
                    } else {
                        CallError::Unreachable
                    });
                }
            }
        }
    };
    let got = client::exchange_on(&mut stream, &mut request, method, max_body, deadline).await;
    let end = Instant::now();
    match got {
        Ok((resp, reusable)) => {
            let health = if resp.status >= 500 {
                Health::ServerError
            } else {
                Health::Ok
            };
            sel.report(target, health, end, &up.name);
            if reusable {
                up.pool.borrow_mut().checkin(target, stream, end);
            }
            Ok(resp)
        }
        Err(e) => {
            sel.report(target, Health::Failed, end, &up.name);
            Err(match e {
                ClientError::Timeout => CallError::Timeout,
                ClientError::Connect => CallError::Unreachable,
                ClientError::Closed | ClientError::Malformed(_) | ClientError::TooLarge(_) => {
                    CallError::Broken
                }
            })
        }
    }
}
