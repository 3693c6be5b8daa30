//! Opening new upstream connections: connect with the upstream's deadline, TCP_NODELAY, and
//! failures logged at most once a second per shard.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::error::ProxyError;
use crate::log::Throttle;
use crate::stream::UpstreamStream;

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

/// Connects to `addr` within `limit`.
pub async fn connect(
    addr: SocketAddr,
    limit: Duration,
    nodelay: bool,
) -> Result<UpstreamStream, ProxyError> {
    match monoio::time::timeout(limit, TcpStream::connect_addr(addr)).await {
        Ok(Ok(s)) => {
            if nodelay {
                let _ = s.set_nodelay(true);
            }
            Ok(UpstreamStream::Plain(s))
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
