//! `[[listener]]` (a listener with settings of its own: TLS termination, an HTTPS redirect)
//! and the TLS tables of listeners and upstreams. Files are checked where they are loaded
//! (core), with the spans kept here.

use serde::Deserialize;
use toml::Spanned;

use crate::values::Duration;

/// `[[listener]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConf {
    /// `"ip:port"`; port 0 picks a free port.
    pub address: Spanned<String>,
    /// `[listener.tls]`: terminate TLS on this listener.
    #[serde(default)]
    pub tls: Option<Spanned<TlsConf>>,
    /// Answer every request with `308 Permanent Redirect` to the same host, path and query
    /// over `https` (a plain listener in front of a TLS one).
    #[serde(default)]
    pub redirect_https: bool,
    /// The HTTPS port the redirect names (left out of the URL when 443).
    #[serde(default = "default_https_port")]
    pub https_port: u16,
    /// Accept HTTP/2 with prior knowledge (h2c) besides HTTP/1.1 on this plain listener (a
    /// TLS listener offers HTTP/2 by putting `"h2"` in its `alpn`).
    #[serde(default)]
    pub h2c: bool,
}

fn default_https_port() -> u16 {
    443
}

/// `[listener.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConf {
    /// Certificate chains and their keys (PEM files, relative to the config file); each is
    /// chosen for the names in its certificate (exact and `*.` wildcard SANs).
    pub certificates: Vec<CertConf>,
    /// A client without SNI, or naming a host no certificate has: `"default"` (the first
    /// certificate) or `"refuse"` (handshake fails with `unrecognized_name`).
    #[serde(default)]
    pub unknown_sni: UnknownSni,
    /// Lowest protocol version accepted: `"1.2"` or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Cipher suites offered, by rustls name (e.g. `"TLS13_AES_128_GCM_SHA256"`); empty:
    /// rustls' safe defaults.
    #[serde(default)]
    pub cipher_suites: Vec<Spanned<String>>,
    /// ALPN protocols, in preference order.
    #[serde(default = "default_alpn")]
    pub alpn: Vec<String>,
    /// Time allowed for the handshake.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: Duration,
    /// Client certificates: `"none"`, `"optional"` (verified when given) or `"required"`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// CA bundle (PEM) client certificates are verified against; needed with `client_auth`.
    #[serde(default)]
    pub client_ca: Option<Spanned<String>>,
    /// Issue session tickets (TLS 1.3 and 1.2), encrypted with keys every shard shares, so a
    /// client resumes on whichever shard its next connection lands.
    #[serde(default = "yes")]
    pub session_tickets: bool,
    /// How often the ticket key changes; a ticket stays valid for two periods.
    #[serde(default = "default_ticket_rotation")]
    pub ticket_rotation: Duration,
    /// TLS 1.2 sessions remembered by ID, per shard (0: none).
    #[serde(default = "default_session_cache")]
    pub session_cache: u32,
}

fn default_alpn() -> Vec<String> {
    vec!["http/1.1".into()]
}
fn default_handshake_timeout() -> Duration {
    Duration::secs(10)
}
fn default_ticket_rotation() -> Duration {
    Duration::secs(3600)
}
fn default_session_cache() -> u32 {
    10_000
}
fn yes() -> bool {
    true
}

/// `[[listener.tls.certificates]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertConf {
    /// PEM certificate chain, leaf first.
    pub cert: Spanned<String>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Spanned<String>,
}

/// What to do with a client whose SNI names no certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownSni {
    /// Serve the first certificate.
    #[default]
    Default,
    /// Refuse the handshake.
    Refuse,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// Client certificate policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Not asked for.
    #[default]
    None,
    /// Asked for and verified when given; a client without one is let in.
    Optional,
    /// A verified certificate is required.
    Required,
}

/// `[upstream.tls]`: connect to the targets over TLS.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConf {
    /// CA bundle (PEM) the targets' certificates are verified against; absent: the public
    /// web PKI roots (webpki-roots).
    #[serde(default)]
    pub ca: Option<Spanned<String>>,
    /// Name sent as SNI and verified in the certificate; default: the target's host.
    #[serde(default)]
    pub server_name: Option<Spanned<String>>,
    /// Client certificate chain (PEM) presented to the targets.
    #[serde(default)]
    pub client_cert: Option<Spanned<String>>,
    /// Its private key (PEM).
    #[serde(default)]
    pub client_key: Option<Spanned<String>>,
}
