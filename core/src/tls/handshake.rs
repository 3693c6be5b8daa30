//! Handshakes: a client connection's (accept) and an upstream's (connect), each bounded in
//! time, their failures sorted into reasons for the counters, and what stages may know of a
//! client's TLS (`policy::TlsInfo`).

use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpStream;
use policy::TlsInfo;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, Connection, HandshakeKind, ProtocolVersion, ServerConnection};

use super::stream::{HandshakeError, TlsStream};
use super::{TlsListener, UpstreamTls};

/// Why a handshake failed, as counted per shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Not finished within the handshake timeout.
    Timeout,
    /// The peer closed the connection (or reset it) during the handshake.
    Closed,
    /// The bytes were not TLS (plain HTTP to a TLS port, garbage) or broke its framing.
    NotTls,
    /// The client named a host no certificate has, and unknown names are refused.
    UnknownName,
    /// No protocol version or cipher suite in common (a version below the minimum).
    Incompatible,
    /// A client certificate was required and missing, or it did not verify.
    ClientCert,
    /// The peer's certificate did not verify (upstreams).
    Certificate,
    /// Anything else.
    Other,
}

impl Failure {
    /// Every reason, in counter order.
    pub const ALL: [Failure; 8] = [
        Failure::Timeout,
        Failure::Closed,
        Failure::NotTls,
        Failure::UnknownName,
        Failure::Incompatible,
        Failure::ClientCert,
        Failure::Certificate,
        Failure::Other,
    ];

    /// The reason's name in counters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Closed => "closed",
            Failure::NotTls => "not_tls",
            Failure::UnknownName => "unknown_name",
            Failure::Incompatible => "incompatible",
            Failure::ClientCert => "client_certificate",
            Failure::Certificate => "certificate",
            Failure::Other => "other",
        }
    }

    /// Position in `ALL`.
    pub fn index(self) -> usize {
        Failure::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }

    fn of(e: &HandshakeError, server: bool) -> Failure {
        use rustls::Error as E;
        match e {
            HandshakeError::Closed => Failure::Closed,
            HandshakeError::Io(_) => Failure::Closed,
            HandshakeError::Tls(t) => match t {
                E::InvalidMessage(_)
                | E::InappropriateMessage { .. }
                | E::InappropriateHandshakeMessage { .. } => Failure::NotTls,
                E::PeerIncompatible(_) => Failure::Incompatible,
                E::NoCertificatesPresented => Failure::ClientCert,
                E::InvalidCertificate(_) if server => Failure::ClientCert,
                E::InvalidCertificate(_) => Failure::Certificate,
                E::General(m) if m.contains("no server certificate chain resolved") => {
                    Failure::UnknownName
                }
                E::AlertReceived(_) | E::PeerMisbehaved(_) => Failure::Other,
                _ => Failure::Other,
            },
        }
    }
}

/// Runs the server side of a handshake on an accepted connection.
pub async fn accept(tcp: TcpStream, l: &TlsListener) -> Result<(TlsStream, TlsInfo), Failure> {
    let conn = ServerConnection::new(l.config.clone()).map_err(|_| Failure::Other)?;
    let done = monoio::time::timeout(
        l.handshake_timeout,
        TlsStream::handshake(tcp, Connection::Server(conn)),
    )
    .await;
    let stream = match done {
        Err(_) => return Err(Failure::Timeout),
        Ok(Err(e)) => return Err(Failure::of(&e, true)),
        Ok(Ok(s)) => s,
    };
    let info = info(&stream);
    Ok((stream, info))
}

/// Runs the client side of a handshake to an upstream, within `limit`.
pub async fn connect(
    tcp: TcpStream,
    up: &UpstreamTls,
    name: ServerName<'static>,
    limit: Duration,
) -> Result<TlsStream, Failure> {
    let conn = ClientConnection::new(Arc::clone(&up.config), name).map_err(|_| Failure::Other)?;
    match monoio::time::timeout(limit, TlsStream::handshake(tcp, Connection::Client(conn))).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(e)) => Err(Failure::of(&e, false)),
        Ok(Ok(s)) => Ok(s),
    }
}

/// What stages may know of a client connection's TLS.
fn info(s: &TlsStream) -> TlsInfo {
    let c = s.connection();
    let sni = match c {
        Connection::Server(sc) => sc.server_name().map(Box::from),
        Connection::Client(_) => None,
    };
    TlsInfo {
        version: match c.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        },
        sni,
        alpn: c.alpn_protocol().map(Box::from),
        resumed: c.handshake_kind() == Some(HandshakeKind::Resumed),
        client_cert: c
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| super::identity::client_cert(leaf)),
    }
}
