//! A real HTTP/2 origin (h2c, or h2 over TLS) written in the test, on the `h2` crate and a tokio runtime of
//! its own: a small gRPC service (unary echo, server streaming, bidi echo, an error sent
//! Trailers-Only) and a plain answer, recording what reached it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use h2::server::SendResponse;

/// What reached the origin: method, path, and header fields.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
}

pub struct H2Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections it accepted.
    pub conns: Arc<Mutex<usize>>,
}

impl H2Origin {
    /// Over plain TCP (h2c).
    pub fn start() -> H2Origin {
        H2Origin::start_with(None)
    }

    /// Over TLS with `cert`, ALPN `h2`.
    pub fn start_tls(cert: &super::tls::Issued) -> H2Origin {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der.clone()], cert.key())
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        H2Origin::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> H2Origin {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(Mutex::new(0));
        let (s, c) = (seen.clone(), conns.clone());
        std::thread::spawn(move || {
            let rt = super::h2::runtime();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                loop {
                    let Ok((tcp, _)) = l.accept().await else {
                        return;
                    };
                    *c.lock().unwrap() += 1;
                    let s = s.clone();
                    match &tls {
                        None => {
                            tokio::spawn(connection(tcp, s));
                        }
                        Some(acceptor) => {
                            let acceptor = acceptor.clone();
                            tokio::spawn(async move {
                                if let Ok(tls) = acceptor.accept(tcp).await {
                                    connection(tls, s).await;
                                }
                            });
                        }
                    }
                }
            });
        });
        H2Origin { addr, seen, conns }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn connection<T>(io: T, seen: Arc<Mutex<Vec<Seen>>>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Ok(mut conn) = h2::server::handshake(io).await else {
        return;
    };
    while let Some(Ok((req, respond))) = conn.accept().await {
        tokio::spawn(serve(req, respond, seen.clone()));
    }
}

/// A gRPC message: the compressed flag, the length, the bytes.
pub fn message(payload: &[u8]) -> Vec<u8> {
    let mut m = vec![0];
    m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    m.extend_from_slice(payload);
    m
}

/// gRPC messages out of a body.
pub fn messages(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let n = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        out.push(body[5..5 + n].to_vec());
        body = &body[5 + n..];
    }
    out
}

fn grpc_head() -> http::Response<()> {
    http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap()
}

fn ok_trailers() -> http::HeaderMap {
    let mut t = http::HeaderMap::new();
    t.insert("grpc-status", "0".parse().unwrap());
    t
}

async fn serve(
    req: http::Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let (parts, mut body) = req.into_parts();
    let path = parts.uri.path().to_string();
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().unwrap().to_string(),
        headers: parts.headers.clone(),
    });
    match path.as_str() {
        "/echo.Echo/Unary" => {
            let mut all = Vec::new();
            while let Some(Ok(d)) = body.data().await {
                let _ = body.flow_control().release_capacity(d.len());
                all.extend_from_slice(&d);
            }
            let Ok(mut send) = respond.send_response(grpc_head(), false) else {
                return;
            };
            let _ = send.send_data(Bytes::from(all), false);
            let _ = send.send_trailers(ok_trailers());
        }
        "/echo.Echo/Stream" => {
            while let Some(Ok(d)) = body.data().await {
                let _ = body.flow_control().release_capacity(d.len());
            }
            let mut send = respond.send_response(grpc_head(), false).unwrap();
            for i in 0..5u8 {
                send.send_data(Bytes::from(message(&[i; 3])), false)
                    .unwrap();
            }
            send.send_trailers(ok_trailers()).unwrap();
        }
        "/echo.Echo/Bidi" => {
            // each piece back as it comes
            let mut send = respond.send_response(grpc_head(), false).unwrap();
            while let Some(Ok(d)) = body.data().await {
                let _ = body.flow_control().release_capacity(d.len());
                send.send_data(d, false).unwrap();
            }
            send.send_trailers(ok_trailers()).unwrap();
        }
        "/echo.Echo/Slow" => {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            let _ = respond.send_response(grpc_head(), true);
        }
        "/echo.Echo/Missing" => {
            let head = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .header("grpc-status", "5")
                .header("grpc-message", "no such item")
                .body(())
                .unwrap();
            let _ = respond.send_response(head, true);
        }
        _ => {
            let head = http::Response::builder()
                .status(200)
                .header("content-length", "9")
                .body(())
                .unwrap();
            let mut send = respond.send_response(head, false).unwrap();
            send.send_data(Bytes::from_static(b"h2 origin"), true)
                .unwrap();
        }
    }
}
