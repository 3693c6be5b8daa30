//! One HTTP/2 stream as the byte stream an HTTP/1.1 exchange reads and writes
//! (`Stream::H2`): reads give the request head (`request`) and then its body, as it arrives,
//! in the framing the head names; writes are the response, sent on as frames (`reply`). The
//! exchange runs unchanged: the same parser, router, stages, forwarding and `on_finish`.

use std::io;

use h2::RecvStream;
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut};

use super::reply::Reply;
use super::unframe::Queue;
use crate::stream::Close;

/// A stream seen as bytes.
pub struct Pipe {
    /// Bytes the exchange reads next: the head, then the body's framing and data.
    inbound: Queue,
    /// The request body still arriving (`None` once it ended).
    body: Option<RecvStream>,
    /// Whether the body is passed on chunked (it had no `content-length`).
    chunked: bool,
    /// The answer.
    reply: Reply,
}

impl Pipe {
    /// The stream whose request head is `head` (HTTP/1.1), its body to come from `body`.
    pub fn new(head: Vec<u8>, body: Option<RecvStream>, chunked: bool, reply: Reply) -> Pipe {
        let mut inbound = Queue::default();
        inbound.push(&head);
        Pipe {
            inbound,
            body,
            chunked,
            reply,
        }
    }

    /// Reads what the request has next. After the request, a read ends (0) once the answer
    /// is over, and before that waits only for the client to reset the stream.
    pub async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        loop {
            if let Some(n) = self.inbound.give(&mut buf) {
                return (Ok(n), buf);
            }
            let Some(body) = self.body.as_mut() else {
                if self.reply.over() {
                    return (Ok(0), buf);
                }
                let reason = self.reply.reset().await;
                let what = format!("the client reset the stream ({reason:?})");
                return (
                    Err(io::Error::new(io::ErrorKind::ConnectionReset, what)),
                    buf,
                );
            };
            match body.data().await {
                Some(Ok(data)) => {
                    let _ = body.flow_control().release_capacity(data.len());
                    self.inbound.push_data(&data, self.chunked);
                }
                Some(Err(e)) => {
                    self.body = None;
                    let e = io::Error::new(io::ErrorKind::ConnectionReset, e.to_string());
                    return (Err(e), buf);
                }
                None => {
                    self.body = None;
                    if self.chunked {
                        self.inbound.push(b"0\r\n\r\n");
                    }
                }
            }
        }
    }

    /// Sends on what `buf` holds of the response.
    pub async fn write_all<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let res = {
            let data = crate::sys::written(&buf);
            let n = data.len();
            self.reply.feed(data).await.map(|()| n)
        };
        (res, buf)
    }

    /// The exchange ended (`how`).
    pub async fn shutdown(&mut self, how: Close) {
        self.body = None;
        self.reply.end(how).await;
    }
}
