//! The one writer of every answer the gateway makes itself: parse errors, 404/405, stage
//! refusals and answers (rendered at load, held by a stage, or bodyless), gateway errors
//! (502, 504, …), the `100 Continue` interim, and the 503 of a connection over the limit. A
//! gRPC client's refusals are rendered by `grpc`.

use std::time::Duration;

use policy::{Exchange, LocalReply, Outcome};
use proto::Method;
use proto::write::{put_field, put_status_line, reason_phrase};

use crate::conn::{Conn, Next, Persist};
use crate::error::ProxyError;
use crate::io;
use crate::shard::Shard;
use crate::stream::{ClientStream, Close, Transport};

/// An answer made by the gateway.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    /// An RFC 9457 `application/problem+json` document.
    Problem {
        /// Status code.
        status: u16,
        /// The document's `detail` (never internal text).
        detail: &'a str,
    },
    /// A reply rendered at load or held by a stage: its head (without the final CRLF) and
    /// body.
    Reply(&'a LocalReply),
    /// A status line and fields, no body (a CORS preflight's 204).
    Bodyless {
        /// Status code.
        status: u16,
    },
}

impl Answer<'_> {
    /// Its status code.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Problem { status, .. } | Answer::Bodyless { status } => *status,
            Answer::Reply(r) => r.status,
        }
    }

    /// The problem answer for a proxy error (`None` when nobody is listening).
    pub fn of_error(e: ProxyError) -> Option<Answer<'static>> {
        Some(Answer::Problem {
            status: e.status()?,
            detail: e.detail(),
        })
    }
}

/// Renders `answer` into `out` (cleared first): the head with `date`, both `extra` field
/// blocks (whole field lines: a stage's fields, the response fields stages added) and the
/// Connection field `persist` asks for, then the body unless `head_only` (a HEAD request).
pub fn render(
    out: &mut Vec<u8>,
    answer: &Answer<'_>,
    date: &[u8],
    extra: [&[u8]; 2],
    persist: Persist,
    head_only: bool,
) {
    out.clear();
    let [first, second] = extra;
    let body: &[u8] = match answer {
        Answer::Problem { status, detail } => {
            policy::reply::write_problem(
                out,
                *status,
                detail,
                persist.header(),
                head_only,
                &[date, first, second],
            );
            return;
        }
        Answer::Reply(r) => {
            out.extend_from_slice(&r.head);
            &r.body
        }
        Answer::Bodyless { status } => {
            put_status_line(out, *status, reason_phrase(*status).as_bytes());
            b""
        }
    };
    out.extend_from_slice(date);
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    if !persist.header().is_empty() {
        put_field(out, b"Connection", persist.header());
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// Sends the answer a stage holds instead of the upstream's (a cache's stored or stale
/// response) with its own fields.
pub async fn replacement(
    shard: &Shard,
    conn: &mut Conn,
    ex: &mut Exchange,
    instead: &policy::Replacement,
    persist: Persist,
    outcome: Outcome,
    timeout: Duration,
) -> Next {
    let answer = Answer::Reply(&instead.reply);
    send(
        shard,
        conn,
        ex,
        answer,
        &instead.fields,
        persist,
        outcome,
        timeout,
    )
    .await
}

/// Sends `answer` to the current request of `conn` with `fields` and the response fields
/// stages added, and records it in `ex` (status, bytes, `outcome`, or `Aborted` when the
/// client is gone).
#[expect(
    clippy::too_many_arguments,
    reason = "each is a distinct input of the answer; the one call per step reads best flat"
)]
pub async fn send(
    shard: &Shard,
    conn: &mut Conn,
    ex: &mut Exchange,
    answer: Answer<'_>,
    fields: &[u8],
    persist: Persist,
    outcome: Outcome,
    timeout: Duration,
) -> Next {
    let date = shard.date_field();
    match answer {
        // a gRPC client gets a gRPC status (the exchange still records the HTTP one)
        Answer::Problem { status, detail } if conn.grpc != crate::grpc::Flavor::None => {
            let extra = [&date[..], fields, &ex.response.add];
            let out = &mut conn.out;
            crate::grpc::render_refusal(out, conn.grpc, status, detail, &extra, persist.header());
        }
        _ => render(
            &mut conn.out,
            &answer,
            &date,
            [fields, &ex.response.add],
            persist,
            ex.method == Method::Head,
        ),
    }
    ex.status = answer.status();
    match io::write_all(&mut conn.stream, &mut conn.out, timeout).await {
        Ok(()) => {
            ex.bytes_out += conn.out.len() as u64;
            ex.outcome = outcome;
            persist.next()
        }
        Err(_) => {
            ex.outcome = Outcome::Aborted;
            Next::Abort
        }
    }
}

/// Tells a client that sent `Expect: 100-continue` to go on with its body (the expectation
/// is the gateway's: it is not forwarded).
pub async fn send_continue(conn: &mut Conn, timeout: Duration) -> Result<(), ProxyError> {
    let mut interim = Vec::from(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]);
    io::write_all(&mut conn.stream, &mut interim, timeout)
        .await
        .map_err(|_| ProxyError::ClientGone)
}

/// Answers a connection over `max_connections` with 503 and closes it, without reading.
pub async fn over_limit(shard: &Shard, mut stream: ClientStream) {
    let mut out = Vec::with_capacity(256);
    let date = shard.date_field();
    render(
        &mut out,
        &Answer::Problem {
            status: 503,
            detail: "too many connections",
        },
        &date,
        [b"Retry-After: 1\r\n", b""],
        Persist::Close,
        false,
    );
    let _ = io::write_all(&mut stream, &mut out, Duration::from_secs(1)).await;
    stream.shutdown(Close::Clean).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8] = b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";

    fn text(answer: Answer<'_>, extra: [&[u8]; 2], persist: Persist, head_only: bool) -> String {
        let mut out = b"stale".to_vec();
        render(&mut out, &answer, DATE, extra, persist, head_only);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn renders_every_kind_of_answer() {
        let reply = LocalReply::new(200, "text/plain", b"ok\n", &[]);
        let keep11 = Persist::Keep(proto::Version::Http11);
        let keep10 = Persist::Keep(proto::Version::Http10);
        type Row<'a> = (Answer<'a>, [&'a [u8]; 2], Persist, bool, &'a str);
        let table: &[Row<'_>] = &[
            (
                Answer::Reply(&reply),
                [b"X-A: 1\r\n", b""],
                keep11,
                false,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nX-A: 1\r\n\r\nok\n",
            ),
            (
                Answer::Reply(&reply),
                [b"", b""],
                Persist::Close,
                true,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nConnection: close\r\n\r\n",
            ),
            (
                Answer::Bodyless { status: 204 },
                [b"Access-Control-Allow-Origin: *\r\n", b"Vary: Origin\r\n"],
                keep10,
                false,
                "HTTP/1.1 204 No Content\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nAccess-Control-Allow-Origin: *\r\nVary: Origin\r\nConnection: keep-alive\r\n\r\n",
            ),
            (
                Answer::Problem {
                    status: 405,
                    detail: "no",
                },
                [b"Allow: GET\r\n", b""],
                keep11,
                false,
                "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/problem+json\r\nContent-Length: 79\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nAllow: GET\r\n\r\n{\"type\":\"about:blank\",\"title\":\"Method Not Allowed\",\"status\":405,\"detail\":\"no\"}\n",
            ),
        ];
        for (answer, extra, persist, head_only, want) in table {
            assert_eq!(text(*answer, *extra, *persist, *head_only), *want);
        }
        let problem = text(
            Answer::Problem {
                status: 502,
                detail: "x",
            },
            [b"A: 1\r\n", b"B: 2\r\n"],
            Persist::Close,
            true,
        );
        assert!(problem.ends_with("GMT\r\nA: 1\r\nB: 2\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn errors_map_to_problem_answers_or_to_silence() {
        let a = Answer::of_error(ProxyError::UpstreamTimeout);
        assert_eq!(a.map(|a| a.status()), Some(504));
        assert!(Answer::of_error(ProxyError::ClientGone).is_none());
    }
}
