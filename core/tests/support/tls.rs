//! TLS for the tests: a CA and certificates made in the test (rcgen), files written where a
//! config can name them, a blocking rustls client, and a TLS origin (a test upstream).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};

use super::DEADLINE;

/// A test CA.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM and DER.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    pub key_der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A certificate for `names` (DNS SANs), common name `cn`, valid now unless `expired`.
    pub fn issue(&self, cn: &str, names: &[&str], expired: bool) -> Issued {
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A client (or server) root store holding this CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.der()).unwrap();
        roots
    }
}

impl Issued {
    /// Writes `<stem>.pem` and `<stem>.key` into `dir`; their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A client config trusting `ca`, speaking `versions`, presenting `client` when given.
pub fn client_config(
    ca: &Ca,
    versions: &[&'static rustls::SupportedProtocolVersion],
    client: Option<&Issued>,
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(ca.roots());
    let mut c = match client {
        Some(id) => b
            .with_client_auth_cert(vec![id.der.clone()], id.key())
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// A TLS connection made by the test.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects to `addr` naming `sni` and completes the handshake.
pub fn connect(addr: SocketAddr, sni: &str, config: &Arc<ClientConfig>) -> Result<Tls, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    tcp.set_write_timeout(Some(DEADLINE)).unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let conn = ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).map_err(|e| e.to_string())?;
    }
    Ok(s)
}

/// Sends one `Connection: close` GET over a new TLS connection; the whole answer as text.
pub fn get(
    addr: SocketAddr,
    sni: &str,
    config: &Arc<ClientConfig>,
    path: &str,
) -> Result<String, String> {
    let mut s = connect(addr, sni, config)?;
    exchange(
        &mut s,
        &format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n"),
    )
}

/// Writes `request` and reads until the gateway closes.
pub fn exchange(s: &mut Tls, request: &str) -> Result<String, String> {
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // a close without close_notify after the answer
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => break,
            Err(e) => return Err(format!("{e} after {:?}", String::from_utf8_lossy(&out))),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A TLS origin on 127.0.0.1 with `cert`: answers every request `200` with the request head it
/// saw as its body, closing after each.
pub fn origin(cert: &Issued) -> SocketAddr {
    origin_with(cert, |head| head.to_vec())
}

/// A TLS origin on 127.0.0.1 with `cert` answering every request `200` with `body(head)`.
pub fn origin_with(
    cert: &Issued,
    body: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
) -> SocketAddr {
    let body = Arc::new(body);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der.clone()], cert.key())
            .unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in l.incoming() {
            let Ok(tcp) = tcp else { continue };
            let config = config.clone();
            let body = body.clone();
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(DEADLINE));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut s = StreamOwned::new(conn, tcp);
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let out = body(&head);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    out.len()
                );
                let _ = s.write_all(answer.as_bytes());
                let _ = s.write_all(&out);
                s.conn.send_close_notify();
                let _ = s.flush();
            });
        }
    });
    addr
}

/// The status code of an answer's text.
pub fn status(answer: &str) -> u16 {
    answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// A client config that accepts any server certificate and records the leaf it was shown
/// (to see which certificate SNI picked, names or not).
pub fn recording_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (
    Arc<ClientConfig>,
    Arc<std::sync::Mutex<Option<CertificateDer<'static>>>>,
) {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Recording {
        seen: seen.clone(),
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let c = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    (Arc::new(c), seen)
}

#[derive(Debug)]
struct Recording {
    seen: Arc<std::sync::Mutex<Option<CertificateDer<'static>>>>,
    schemes: Vec<rustls::SignatureScheme>,
}

impl rustls::client::danger::ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.clone().into_owned());
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes.clone()
    }
}
