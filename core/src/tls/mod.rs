//! TLS with rustls (ring provider): listener configs (certificates by SNI, versions, cipher
//! suites, ALPN, client certificates, tickets shared by the shards) and upstream configs
//! (roots or a CA, SNI name, client certificate), built from conf with errors located in the
//! file. The stream is in `stream`, certificate files in `certs`, ticket keys in `tickets`,
//! what stages see of a client certificate in `identity`.

pub mod certs;
pub mod handshake;
pub mod identity;
pub mod stream;
pub mod tickets;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use conf::{ClientAuth, TlsConf, TlsVersion, UnknownSni, UpstreamTlsConf};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use tickets::{TicketKeys, TicketSecret, Ticketer};

/// A TLS listener at run time.
pub struct TlsListener {
    /// This shard's rustls config (its own session-ID cache; the ticket keys are shared).
    pub config: Arc<ServerConfig>,
    /// Time allowed for a handshake.
    pub handshake_timeout: Duration,
}

/// An upstream's TLS at run time.
pub struct UpstreamTls {
    /// This shard's rustls config (its own resumption cache).
    pub config: Arc<ClientConfig>,
    /// SNI and certificate name, when configured; else each target's host.
    pub server_name: Option<ServerName<'static>>,
}

impl UpstreamTls {
    /// This config offering only `protocol` by ALPN (`h2` for HTTP/2 upstreams).
    pub fn offering(self, protocol: &[u8]) -> UpstreamTls {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![protocol.to_vec()];
        UpstreamTls {
            config: Arc::new(config),
            server_name: self.server_name,
        }
    }
}

/// A problem with a TLS table: where (a span in the config file) and what.
pub struct TlsProblem {
    /// Where in the config file.
    pub span: std::ops::Range<usize>,
    /// What.
    pub msg: String,
}

fn problem(span: std::ops::Range<usize>, msg: impl Into<String>) -> TlsProblem {
    TlsProblem {
        span,
        msg: msg.into(),
    }
}

/// The ring provider with the cipher suites `names` (all of rustls' defaults when empty).
fn provider(names: &[toml::Spanned<String>]) -> Result<Arc<CryptoProvider>, TlsProblem> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !names.is_empty() {
        let all = std::mem::take(&mut provider.cipher_suites);
        for n in names {
            let found = all
                .iter()
                .find(|s| format!("{:?}", s.suite()) == *n.get_ref())
                .ok_or_else(|| {
                    let known: Vec<String> =
                        all.iter().map(|s| format!("{:?}", s.suite())).collect();
                    problem(
                        n.span(),
                        format!(
                            "unknown cipher suite `{}`; rustls offers: {}",
                            n.get_ref(),
                            known.join(", ")
                        ),
                    )
                })?;
            provider.cipher_suites.push(*found);
        }
    }
    Ok(Arc::new(provider))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Builds a listener's TLS for one shard; file paths are relative to `dir`; `name` tells the
/// listener from the others (its place in the config and its address).
pub fn listener(
    t: &toml::Spanned<TlsConf>,
    dir: &Path,
    name: &str,
    secret: &Arc<TicketSecret>,
) -> Result<TlsListener, Vec<TlsProblem>> {
    let span = t.span();
    let c = t.get_ref();
    let mut problems = Vec::new();
    // a bad suite name is reported with the certificate problems, not instead of them
    let provider = provider(&c.cipher_suites).unwrap_or_else(|p| {
        problems.push(p);
        Arc::new(rustls::crypto::ring::default_provider())
    });
    let mut loaded = Vec::new();
    for cert in &c.certificates {
        let (cp, kp) = (dir.join(cert.cert.get_ref()), dir.join(cert.key.get_ref()));
        match certs::load(&cp, &kp, &provider, now_unix()) {
            // only the first (the default) may serve clients by default alone
            Ok(l) if l.names.is_empty() && !loaded.is_empty() => problems.push(problem(
                cert.cert.span(),
                format!(
                    "{}: the certificate names no DNS host (subjectAltName), so SNI never picks it",
                    cp.display()
                ),
            )),
            Ok(l)
                if !l.names.is_empty()
                    && l.names.iter().all(|n| {
                        let served: &[certs::Loaded] = &loaded;
                        served.iter().any(|e| e.names.contains(n))
                    }) =>
            {
                problems.push(problem(
                    cert.cert.span(),
                    format!(
                        "{}: every name the certificate serves is served by an earlier one, so SNI never picks it",
                        cp.display()
                    ),
                ))
            }
            Ok(l) => loaded.push(l),
            Err(msg) => problems.push(problem(cert.cert.span(), msg)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let versions: &[&'static SupportedProtocolVersion] = match c.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| vec![problem(span.clone(), format!("[listener.tls]: {e}"))])?;
    let builder = match (c.client_auth, &c.client_ca) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(ca)) => {
            let roots = certs::read_roots(&dir.join(ca.get_ref()))
                .map_err(|m| vec![problem(ca.span(), m)])?;
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if auth == ClientAuth::Optional {
                v.allow_unauthenticated()
            } else {
                v
            };
            let v = v
                .build()
                .map_err(|e| vec![problem(ca.span(), format!("client_ca: {e}"))])?;
            builder.with_client_cert_verifier(v)
        }
    };
    let resolver = certs::SniResolver::new(&loaded, c.unknown_sni == UnknownSni::Refuse);
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = c.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    if c.session_tickets {
        let keys = TicketKeys::new(
            secret.clone(),
            ticket_scope(name, c, dir),
            c.ticket_rotation.0.as_secs(),
        );
        config.ticketer = Arc::new(Ticketer(keys));
    }
    config.session_storage = if c.session_cache > 0 {
        ServerSessionMemoryCache::new(c.session_cache as usize)
    } else {
        Arc::new(NoServerSessionStorage {})
    };
    Ok(TlsListener {
        config: Arc::new(config),
        handshake_timeout: c.handshake_timeout.0,
    })
}

/// What a listener's sessions stand for, hashed: the listener, whether and whom it asks for
/// client certificates. A resumed session skips the certificate request, so its ticket must
/// not open on a listener that trusts differently.
fn ticket_scope(name: &str, c: &TlsConf, dir: &Path) -> [u8; 32] {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    h.update(name.as_bytes());
    h.update(&[0]);
    h.update(match c.client_auth {
        ClientAuth::None => b"none",
        ClientAuth::Optional => b"optional",
        ClientAuth::Required => b"required",
    });
    if let Some(ca) = &c.client_ca {
        h.update(&std::fs::read(dir.join(ca.get_ref())).unwrap_or_default());
    }
    <[u8; 32]>::try_from(h.finish().as_ref()).unwrap_or([0; 32])
}

/// The public web PKI roots.
fn web_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// Builds an upstream's TLS for one shard; `span` locates the upstream in the config file.
pub fn upstream(
    u: &UpstreamTlsConf,
    dir: &Path,
    span: std::ops::Range<usize>,
) -> Result<UpstreamTls, Vec<TlsProblem>> {
    // "" means unset, so the documented example can list every field
    let set = |v: &Option<toml::Spanned<String>>| v.clone().filter(|s| !s.get_ref().is_empty());
    let u = UpstreamTlsConf {
        ca: set(&u.ca),
        server_name: set(&u.server_name),
        client_cert: set(&u.client_cert),
        client_key: set(&u.client_key),
    };
    let provider = provider(&[]).map_err(|p| vec![p])?;
    let roots = match &u.ca {
        Some(ca) => {
            certs::read_roots(&dir.join(ca.get_ref())).map_err(|m| vec![problem(ca.span(), m)])?
        }
        None => web_roots(),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| vec![problem(span.clone(), format!("[upstream.tls]: {e}"))])?
        .with_root_certificates(roots);
    let mut config = match (&u.client_cert, &u.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(c), Some(k)) => {
            let chain = certs::read_chain(&dir.join(c.get_ref()))
                .map_err(|m| vec![problem(c.span(), m)])?;
            let key =
                certs::read_key(&dir.join(k.get_ref())).map_err(|m| vec![problem(k.span(), m)])?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| vec![problem(c.span(), format!("client_cert: {e}"))])?
        }
        _ => {
            return Err(vec![problem(
                span,
                "[upstream.tls] client_cert and client_key go together",
            )]);
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_name = match &u.server_name {
        Some(n) => Some(ServerName::try_from(n.get_ref().clone()).map_err(|_| {
            vec![problem(
                n.span(),
                format!("`{}` is not a DNS name or IP address", n.get_ref()),
            )]
        })?),
        None => None,
    };
    Ok(UpstreamTls {
        config: Arc::new(config),
        server_name,
    })
}

/// The name to send as SNI and verify for a target written `host:port` (an IP address is
/// verified as one).
pub fn target_name(written: &str, addr: SocketAddr) -> ServerName<'static> {
    let host = written
        .rsplit_once(':')
        .map_or(written, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_string()).unwrap_or_else(|_| ServerName::from(addr.ip()))
}
