//! The composed answer as the route's stages see an upstream's: its head parsed and shown
//! to their response hooks (field edits, a cache storing it, compression choosing a coding),
//! its body passed through the stages that tap it, then rendered as one reply.

use policy::{Exchange, LocalReply, Pipeline};
use proto::write::{put_content_length, put_field, put_status_line};

/// Renders a 200 `application/json` answer with `body` (and `partial`: the header naming
/// failed calls) after the route's response stages ran on it.
pub fn reply(
    pipeline: &Pipeline,
    body: Vec<u8>,
    partial: Option<(&str, &str)>,
    ex: &mut Exchange,
) -> LocalReply {
    let mut raw = Vec::with_capacity(128);
    put_status_line(&mut raw, 200, b"OK");
    put_field(&mut raw, b"Content-Type", b"application/json");
    if let Some((name, value)) = partial {
        put_field(&mut raw, name.as_bytes(), value.as_bytes());
        // an answer missing a part is not one to keep: a cache would serve the failure on
        put_field(&mut raw, b"Cache-Control", b"no-store");
    }
    put_content_length(&mut raw, body.len() as u64);
    let fields_end = raw.len();
    raw.extend_from_slice(b"\r\n");
    let mut head = proto::ResponseHead::with_capacity(8);
    if proto::parse_response(&raw, &mut head, &proto::Limits::default()).is_err() {
        // a head written here always parses; should it not, the stages are left out
        raw.truncate(fields_end);
        return LocalReply {
            status: 200,
            head: raw.into(),
            body: body.into(),
        };
    }
    pipeline.on_response(&head, &raw, ex);
    let body = if pipeline.open_taps(&head, &raw, ex) {
        let (mut out, mut scratch, mut whole) =
            (Vec::new(), Vec::new(), Vec::with_capacity(body.len()));
        if pipeline.tap(Some(&body), ex, &mut out, &mut scratch) {
            whole.append(&mut out);
        }
        if pipeline.tap(None, ex, &mut out, &mut scratch) {
            whole.append(&mut out);
        }
        whole
    } else {
        // stages that only look see the body once, and its end
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        pipeline.tap(Some(&body), ex, &mut out, &mut scratch);
        pipeline.tap(None, ex, &mut out, &mut scratch);
        body
    };
    let mut out = Vec::with_capacity(fields_end + 64);
    put_status_line(&mut out, 200, b"OK");
    for (i, f) in head.fields.iter().enumerate() {
        let framing = f.kind == proto::FieldKind::ContentLength;
        if !framing && !ex.response.is_dropped(i) {
            put_field(&mut out, f.name.get(&raw), f.value.get(&raw));
        }
    }
    put_content_length(&mut out, body.len() as u64);
    LocalReply {
        status: 200,
        head: out.into(),
        body: body.into(),
    }
}
