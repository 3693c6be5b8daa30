//! What a proxy changes in the heads it forwards (RFC 9110 §7.6): hop-by-hop fields dropped,
//! framing re-written, Host chosen, X-Forwarded-* and Via added.

use conf::{ForwardingConf, HostRewrite};
use proto::framing::named_by_connection;
use proto::write::{put_content_length, put_field, put_ip, put_status_line};
use proto::{Field, FieldKind, Framing, Method, RequestHead, ResponseHead, Target, Version};

use crate::conn::Persist;
use crate::gateway::UpstreamRt;
use policy::{Exchange, FieldEdits};

/// The Via entry for a message received with `version` (RFC 9110 §7.6.3: the protocol
/// version of the message as received).
pub fn via_entry(version: Version) -> &'static [u8] {
    match version {
        Version::Http10 => b"1.0 shardgate",
        Version::Http11 => b"1.1 shardgate",
    }
}

fn forwarded_as_is(fields: &[Field], buf: &[u8], f: &Field, names_fields: bool) -> bool {
    !(f.kind.is_hop_by_hop()
        || (names_fields && f.kind == FieldKind::Other && named_by_connection(fields, buf, f)))
}

/// Appends the comma-joined values of every field of `kind`, then `last`.
fn put_joined(
    out: &mut Vec<u8>,
    name: &[u8],
    fields: &[Field],
    buf: &[u8],
    kind: FieldKind,
    last: &dyn Fn(&mut Vec<u8>),
) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    for f in fields.iter().filter(|f| f.kind == kind) {
        let v = f.value.get(buf);
        if !v.is_empty() {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
    }
    last(out);
    out.extend_from_slice(b"\r\n");
}

/// Where the Host value of a request head written by `write_request_head` is, and whether
/// it is the target's own (then a retry to another target rewrites it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostValue {
    /// Its bytes in the head.
    pub at: std::ops::Range<usize>,
    /// It names the target.
    pub of_target: bool,
}

/// True when a request asks to switch to WebSocket: an HTTP/1.1 GET without a body, with
/// `Connection: upgrade`, `Upgrade: websocket` and a `Sec-WebSocket-Key` (RFC 6455 §4.1).
/// Other protocols (`h2c`, …) are not tunnelled: their Upgrade is dropped as hop-by-hop.
pub fn is_upgrade(head: &RequestHead, buf: &[u8]) -> bool {
    head.connection.upgrade
        && head.method == Method::Get
        && head.version == Version::Http11
        && matches!(head.framing, Framing::Length(0) | Framing::UntilClose)
        && names_websocket(&head.fields, buf)
        && head
            .fields
            .iter()
            .any(|f| f.name.get(buf).eq_ignore_ascii_case(b"sec-websocket-key"))
}

/// True when the client takes trailers (`TE: trailers`, RFC 9110 §10.1.4): a chunked
/// response's trailer section is then passed on to it (gRPC's status travels there).
pub fn accepts_trailers(head: &RequestHead, buf: &[u8]) -> bool {
    head.fields.iter().any(|f| {
        f.kind == proto::FieldKind::Te
            && f.value
                .get(buf)
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
    })
}

/// True when an `Upgrade` field names `websocket` (the field is a list of protocols).
pub fn names_websocket(fields: &[Field], buf: &[u8]) -> bool {
    fields
        .iter()
        .filter(|f| f.kind == FieldKind::Upgrade)
        .flat_map(|f| f.value.get(buf).split(|&b| b == b','))
        .any(|p| {
            let p = proto::chars::trim_ows(p);
            let name = p.split(|&b| b == b'/').next().unwrap_or_default();
            name.eq_ignore_ascii_case(b"websocket")
        })
}

/// The head of a `101` sent to the client: the status line, the upstream's fields without
/// hop-by-hop ones, its `Upgrade`, `Connection: Upgrade`, and Via.
pub fn write_switching_head(
    out: &mut Vec<u8>,
    resp: &ResponseHead,
    buf: &[u8],
    fwd: &ForwardingConf,
) {
    put_status_line(out, resp.status, resp.reason.get(buf));
    let names = resp.connection.names_fields;
    for f in &resp.fields {
        if f.kind == FieldKind::Upgrade || forwarded_as_is(&resp.fields, buf, f, names) {
            put_field(out, f.name.get(buf), f.value.get(buf));
        }
    }
    put_field(out, b"Connection", b"Upgrade");
    if fwd.via {
        put_field(out, b"Via", via_entry(resp.version));
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the request head sent upstream (always HTTP/1.1, origin-form, our framing).
pub fn write_request_head(
    out: &mut Vec<u8>,
    head: &RequestHead,
    buf: &[u8],
    up: &UpstreamRt,
    target: usize,
    fwd: &ForwardingConf,
    ex: &Exchange,
) -> HostValue {
    let (client, edits) = (ex.client, &ex.edits);
    out.extend_from_slice(head.method_span.get(buf));
    out.push(b' ');
    match (&edits.target, head.target_form) {
        (Some(t), _) => out.extend_from_slice(t),
        (None, Target::Origin) => out.extend_from_slice(head.target.get(buf)),
        (None, Target::Absolute { .. }) => out.extend_from_slice(head.path(buf)),
        (None, Target::Asterisk) => out.push(b'*'),
        (None, Target::Authority) => out.extend_from_slice(head.target.get(buf)),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let client_host = head.authority(buf);
    let target_host = up
        .targets
        .get(target)
        .map(|t| &t.host[..])
        .unwrap_or_default();
    let (host, of_target) = match (&up.host, client_host) {
        _ if edits.host.is_some() => (edits.host.as_deref().unwrap_or_default(), false),
        (HostRewrite::Preserve, Some(h)) => (h, false),
        (HostRewrite::Preserve, None) | (HostRewrite::Target, _) => (target_host, true),
        (HostRewrite::Fixed(v), _) => (v.as_bytes(), false),
    };
    let start = out.len() + b"Host: ".len();
    put_field(out, b"Host", host);
    let host_value = HostValue {
        at: start..start + host.len(),
        of_target,
    };
    let names = head.connection.names_fields;
    let (mut xff, mut via) = (false, false);
    let edited = !edits.fields.drop.is_empty();
    for (i, f) in head.fields.iter().enumerate() {
        if edited && edits.fields.is_dropped(i) {
            continue;
        }
        let skip = match f.kind {
            FieldKind::Host | FieldKind::Expect => true,
            FieldKind::XForwardedFor if fwd.x_forwarded_for => {
                xff = true;
                true
            }
            FieldKind::XForwardedProto => fwd.x_forwarded_proto,
            FieldKind::XForwardedHost => fwd.x_forwarded_host,
            FieldKind::Via if fwd.via => {
                via = true;
                true
            }
            _ => !forwarded_as_is(&head.fields, buf, f, names),
        };
        if !skip {
            put_field(out, f.name.get(buf), f.value.get(buf));
        }
    }
    out.extend_from_slice(&edits.fields.add);
    if ex.upgrade {
        // the one hop-by-hop field that goes on: the protocol the client asks to switch to
        for f in head.fields.iter().filter(|f| f.kind == FieldKind::Upgrade) {
            put_field(out, b"Upgrade", f.value.get(buf));
        }
        put_field(out, b"Connection", b"Upgrade");
    }
    if fwd.x_forwarded_for {
        let ip = client.ip();
        let add = |o: &mut Vec<u8>| put_ip(o, ip);
        if xff {
            put_joined(
                out,
                b"X-Forwarded-For",
                &head.fields,
                buf,
                FieldKind::XForwardedFor,
                &add,
            );
        } else {
            out.extend_from_slice(b"X-Forwarded-For: ");
            add(out);
            out.extend_from_slice(b"\r\n");
        }
    }
    if fwd.x_forwarded_proto {
        let scheme: &[u8] = if ex.tls.is_some() { b"https" } else { b"http" };
        put_field(out, b"X-Forwarded-Proto", scheme);
    }
    if fwd.x_forwarded_host
        && let Some(h) = client_host
    {
        put_field(out, b"X-Forwarded-Host", h);
    }
    if fwd.via {
        let add = |o: &mut Vec<u8>| o.extend_from_slice(via_entry(head.version));
        if via {
            put_joined(out, b"Via", &head.fields, buf, FieldKind::Via, &add);
        } else {
            put_field(out, b"Via", via_entry(head.version));
        }
    }
    match head.framing {
        _ if edits.content_length.is_some() => {
            put_content_length(out, edits.content_length.unwrap_or_default());
        }
        Framing::Chunked => put_field(out, b"Transfer-Encoding", b"chunked"),
        Framing::Length(n) => {
            if n > 0 || head.field(FieldKind::ContentLength).is_some() {
                put_content_length(out, n);
            }
        }
        Framing::UntilClose => {}
    }
    out.extend_from_slice(b"\r\n");
    host_value
}

/// How the response body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    /// No body (HEAD, 1xx, 204, 304): framing fields pass through as received.
    Bodyless,
    /// Content-Length.
    Length(u64),
    /// Chunked (HTTP/1.1 clients).
    Chunked,
    /// Delimited by closing the connection.
    Close,
}

impl ClientFraming {
    /// True when a response to `method` has no body whatever its fields say.
    pub fn bodyless(method: Method, resp: &ResponseHead) -> bool {
        method == Method::Head || resp.status < 200 || resp.status == 204 || resp.status == 304
    }

    /// Chooses the client-side framing for an upstream framing; `rewritten`: a stage
    /// rewrites the body, so its length is not known.
    pub fn choose(
        method: Method,
        resp: &ResponseHead,
        upstream: Framing,
        client: Version,
        rewritten: bool,
    ) -> ClientFraming {
        match upstream {
            _ if ClientFraming::bodyless(method, resp) => ClientFraming::Bodyless,
            Framing::Length(n) if !rewritten => ClientFraming::Length(n),
            Framing::Length(_) if client == Version::Http11 => ClientFraming::Chunked,
            Framing::Chunked if client == Version::Http11 => ClientFraming::Chunked,
            Framing::Length(_) | Framing::Chunked | Framing::UntilClose => ClientFraming::Close,
        }
    }
}

/// Writes the response head sent to the client, with the field changes stages asked for.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; each is a distinct input of the head, none belong together"
)]
pub fn write_response_head(
    out: &mut Vec<u8>,
    resp: &ResponseHead,
    buf: &[u8],
    framing: ClientFraming,
    persist: Persist,
    fwd: &ForwardingConf,
    edits: &FieldEdits,
    date: impl FnOnce() -> [u8; proto::date::DATE_FIELD_LEN],
) {
    put_status_line(out, resp.status, resp.reason.get(buf));
    // RFC 9110 §6.6.1: a recipient with a clock forwarding a response without Date adds one.
    if !resp.fields.iter().any(|f| f.kind == FieldKind::Date) {
        out.extend_from_slice(&date());
    }
    let names = resp.connection.names_fields;
    let mut via = false;
    let mut cl_passed = false;
    let edited = !edits.drop.is_empty();
    for (i, f) in resp.fields.iter().enumerate() {
        if edited && edits.is_dropped(i) {
            continue;
        }
        let keep = match f.kind {
            FieldKind::Via if fwd.via => {
                via = true;
                false
            }
            // A HEAD or 304 response's Content-Length describes the representation: pass it.
            FieldKind::ContentLength
                if framing == ClientFraming::Bodyless && resp.status != 204 =>
            {
                let first = !cl_passed;
                cl_passed = true;
                first
            }
            _ => forwarded_as_is(&resp.fields, buf, f, names),
        };
        if keep {
            put_field(out, f.name.get(buf), f.value.get(buf));
        }
    }
    if fwd.via {
        let add = |o: &mut Vec<u8>| o.extend_from_slice(via_entry(resp.version));
        if via {
            put_joined(out, b"Via", &resp.fields, buf, FieldKind::Via, &add);
        } else {
            put_field(out, b"Via", via_entry(resp.version));
        }
    }
    out.extend_from_slice(&edits.add);
    match framing {
        ClientFraming::Length(n) => put_content_length(out, n),
        ClientFraming::Chunked => put_field(out, b"Transfer-Encoding", b"chunked"),
        ClientFraming::Bodyless | ClientFraming::Close => {}
    }
    if !persist.header().is_empty() {
        put_field(out, b"Connection", persist.header());
    }
    out.extend_from_slice(b"\r\n");
}
