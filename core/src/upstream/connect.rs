//! Opening upstream connections: a pooled one when there is one, else a new connect with the
//! upstream's deadline and TCP_NODELAY.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::error::ProxyError;

/// Connects to `addr` within `limit`.
pub async fn connect(
    addr: SocketAddr,
    limit: Duration,
    nodelay: bool,
) -> Result<TcpStream, ProxyError> {
    match monoio::time::timeout(limit, TcpStream::connect_addr(addr)).await {
        Ok(Ok(s)) => {
            if nodelay {
                let _ = s.set_nodelay(true);
            }
            Ok(s)
        }
        Ok(Err(e)) => {
            crate::log!(Warn, "connect to upstream {addr} failed: {e}");
            Err(ProxyError::UpstreamConnect)
        }
        Err(_) => {
            crate::log!(Warn, "connect to upstream {addr} timed out after {limit:?}");
            Err(ProxyError::UpstreamConnectTimeout)
        }
    }
}
