//! The built-in origin: one monoio thread per `--threads`, SO_REUSEPORT-free (one listener,
//! shared by dup), answering every request, once its body has arrived, with the same
//! pre-rendered response.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

/// `loadtest origin` options.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Response body size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Response status code.
    #[arg(long, default_value_t = 200)]
    pub status: u16,
    /// Latency added before each response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Pin worker i to this CPU + i.
    #[arg(long)]
    pub pin: Option<usize>,
    /// Answer JSON (`application/json`, records of varied ids and names, compressing as
    /// real API payloads do) instead of a repeating alphabet.
    #[arg(long)]
    pub json: bool,
    /// Answer an Anthropic Messages stream (server-sent events) whose text is `--size`
    /// bytes in deltas of 16, as a model provider streams a completion.
    #[arg(long)]
    pub anthropic_stream: bool,
}

/// A listener with a deep accept queue (std's is 128: a proxy opening hundreds of upstream
/// connections at once would see SYNs dropped and 1 s retransmits).
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// An Anthropic Messages event stream whose text deltas add up to `n` bytes.
fn anthropic_stream(n: usize) -> Vec<u8> {
    let mut s = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_lt\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n\
         event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    let text: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
    for piece in text.chunks(16) {
        let piece = String::from_utf8_lossy(piece);
        s += &format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{piece}\"}}}}\n\n"
        );
    }
    s += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
          event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":64}}\n\n\
          event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    s.into_bytes()
}

fn response(a: &Args) -> Vec<u8> {
    let (kind, body) = if a.anthropic_stream {
        ("text/event-stream", anthropic_stream(a.size))
    } else if a.json {
        ("application/json", json(a.size))
    } else {
        (
            "text/plain",
            (0..a.size).map(|i| b'a' + (i % 26) as u8).collect(),
        )
    };
    let mut r = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
        a.status,
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(&body);
    r
}

/// A JSON array of exactly `n` bytes (for `n` ≥ 2): records whose ids, SKUs and prices
/// vary, padded with spaces at the end.
fn json(n: usize) -> Vec<u8> {
    let mut s = String::from("[");
    let mut i = 0u64;
    loop {
        let rec = format!(
            "{{\"id\":{i},\"sku\":\"SKU-{:05}\",\"name\":\"item {}\",\"price\":{}.{:02}}},",
            i * 7919 % 100_000,
            i % 13,
            i % 500,
            i % 100
        );
        if s.len() + rec.len() + 1 > n {
            break;
        }
        s += &rec;
        i += 1;
    }
    if s.ends_with(',') {
        s.pop();
    }
    s.push(']');
    let mut b = s.into_bytes();
    b.resize(n.max(b.len()), b' ');
    b
}

/// Runs the origin until killed.
pub fn run(a: Args) -> anyhow::Result<()> {
    let std_listener = listen(a.listen).with_context(|| format!("bind {}", a.listen))?;
    std_listener.set_nonblocking(true)?;
    crate::errln!(
        "loadtest origin listening on {} ({} B responses, {} threads)",
        std_listener.local_addr()?,
        a.size,
        a.threads
    );
    let mut handles = Vec::new();
    for i in 0..a.threads.max(1) {
        let l = std_listener.try_clone()?;
        let a = a.clone();
        handles.push(std::thread::spawn(move || -> anyhow::Result<()> {
            if let Some(cpu) = a.pin {
                let _ = monoio::utils::bind_to_cpu_set([cpu + i]);
            }
            let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .enable_timer()
                .build()?;
            rt.block_on(async move {
                let l = TcpListener::from_std(l)?;
                let resp = Rc::new(response(&a));
                let latency = Duration::from_millis(a.latency_ms);
                loop {
                    let (s, _) = l.accept().await?;
                    let _ = s.set_nodelay(true);
                    monoio::spawn(serve(s, resp.clone(), latency));
                }
            })
        }));
    }
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("origin thread panicked"))??;
    }
    Ok(())
}

async fn serve(mut s: TcpStream, resp: Rc<Vec<u8>>, latency: Duration) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(resp.len() * 4);
    let mut body_left: usize = 0;
    loop {
        let len = buf.len();
        let cap = buf.capacity();
        let (r, b) = s.read(buf.slice_mut(len..cap)).await;
        buf = b.into_inner();
        match r {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // answer every complete request in the buffer (pipelining), in one write
        let mut pos = 0;
        let mut answers = 0;
        loop {
            if body_left > 0 {
                let take = body_left.min(buf.len() - pos);
                body_left -= take;
                pos += take;
                if body_left > 0 {
                    break;
                }
                // like most servers, answer once the whole request has arrived
                answers += 1;
            }
            let mut hdrs = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut hdrs);
            match req.parse(buf.get(pos..).unwrap_or_default()) {
                Ok(httparse::Status::Complete(n)) => {
                    let cl = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| {
                            std::str::from_utf8(h.value)
                                .ok()?
                                .trim()
                                .parse::<usize>()
                                .ok()
                        })
                        .unwrap_or(0);
                    pos += n;
                    body_left = cl;
                    if cl == 0 {
                        answers += 1;
                    }
                }
                Ok(httparse::Status::Partial) => break,
                Err(_) => return,
            }
        }
        buf.drain(..pos);
        if buf.len() == buf.capacity() {
            return;
        }
        if answers > 0 {
            if !latency.is_zero() {
                monoio::time::sleep(latency).await;
            }
            out.clear();
            for _ in 0..answers {
                out.extend_from_slice(&resp);
            }
            let (r, o) = s.write_all(out).await;
            out = o;
            if r.is_err() {
                return;
            }
        }
    }
}
