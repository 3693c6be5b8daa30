//! Opening new upstream connections: connect (and the TLS handshake, when the upstream has
//! TLS) within the upstream's deadline, TCP_NODELAY, failures logged at most once a second
//! per shard.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;

use rustls::pki_types::ServerName;

use crate::error::ProxyError;
use crate::log::Throttle;
use crate::stream::UpstreamStream;
use crate::tls::UpstreamTls;

thread_local! {
    /// Connect failures are logged at most once a second per shard: a dead upstream must not
    /// turn into a log line (and a stderr lock) per request.
    static CONNECT_WARN: Throttle = const { Throttle::new() };
}

fn warn_throttled(what: std::fmt::Arguments<'_>) {
    CONNECT_WARN.with(|t| {
        if let Some(skipped) = t.allow(std::time::Instant::now(), Duration::from_secs(1)) {
            if skipped > 0 {
                crate::log!(
                    Warn,
                    "{what} (and {skipped} more connect failures in the last second)"
                );
            } else {
                crate::log!(Warn, "{what}");
            }
        }
    });
}

/// Connects to `addr` within `limit`, then runs the TLS handshake with `tls` (config and
/// the name to send and verify) in what is left of it.
pub async fn connect(
    addr: SocketAddr,
    limit: Duration,
    nodelay: bool,
    tls: Option<(&UpstreamTls, &ServerName<'static>)>,
) -> Result<UpstreamStream, ProxyError> {
    let start = std::time::Instant::now();
    match monoio::time::timeout(limit, TcpStream::connect_addr(addr)).await {
        Ok(Ok(s)) => {
            if nodelay {
                let _ = s.set_nodelay(true);
            }
            let Some((up, name)) = tls else {
                return Ok(UpstreamStream::Plain(s));
            };
            let left = limit.saturating_sub(start.elapsed());
            match crate::tls::handshake::connect(s, up, name.clone(), left).await {
                Ok(t) => Ok(UpstreamStream::Tls(Box::new(t))),
                Err(why) => {
                    warn_throttled(format_args!(
                        "TLS handshake with upstream {addr} failed: {}",
                        why.as_str()
                    ));
                    Err(ProxyError::UpstreamTls)
                }
            }
        }
        Ok(Err(e)) => {
            warn_throttled(format_args!("connect to upstream {addr} failed: {e}"));
            Err(ProxyError::UpstreamConnect)
        }
        Err(_) => {
            warn_throttled(format_args!(
                "connect to upstream {addr} timed out after {limit:?}"
            ));
            Err(ProxyError::UpstreamConnectTimeout)
        }
    }
}
