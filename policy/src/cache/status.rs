//! The `Cache-Status` response field (RFC 9211) the cache adds to every answer it had a say
//! in: `shardgate; hit; ttl=42`, `shardgate; fwd=miss; stored`, `shardgate; fwd=stale;
//! fwd-status=304`, `shardgate; fwd=uri-miss; detail=no-store`, …

/// Why the cache went forward (RFC 9211 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Forward {
    /// Nothing stored under the key.
    #[default]
    UriMiss,
    /// Stored, but for another variant (`Vary`).
    VaryMiss,
    /// Not stored, or not usable (RFC 9211's generic `miss`).
    Miss,
    /// Stored but stale: revalidated or refetched.
    Stale,
    /// The request asked to bypass or revalidate (`no-cache`, `max-age=0`, …).
    Request,
    /// The route or the request does not use the cache at all (method, Authorization).
    Bypass,
}

impl Forward {
    fn as_str(self) -> &'static str {
        match self {
            Forward::UriMiss => "uri-miss",
            Forward::VaryMiss => "vary-miss",
            Forward::Miss => "miss",
            Forward::Stale => "stale",
            Forward::Request => "request",
            Forward::Bypass => "bypass",
        }
    }
}

/// One answer's cache status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache; `ttl`: seconds of freshness left (negative: served stale).
    Hit {
        /// Freshness left.
        ttl: i64,
    },
    /// Went to the origin.
    Forwarded {
        /// Why.
        fwd: Forward,
        /// The origin's status, when it answered (a 304 on revalidation).
        status: Option<u16>,
        /// The response was stored.
        stored: bool,
        /// Why it was not stored, when it was not (a short token).
        detail: Option<&'static str>,
    },
}

/// Appends the `Cache-Status` field line for `s`.
pub fn put_cache_status(out: &mut Vec<u8>, s: &CacheStatus) {
    use std::io::Write;
    out.extend_from_slice(b"Cache-Status: shardgate");
    match *s {
        CacheStatus::Hit { ttl } => {
            let _ = write!(out, "; hit; ttl={ttl}");
        }
        CacheStatus::Forwarded {
            fwd,
            status,
            stored,
            detail,
        } => {
            out.extend_from_slice(b"; fwd=");
            out.extend_from_slice(fwd.as_str().as_bytes());
            if let Some(st) = status {
                let _ = write!(out, "; fwd-status={st}");
            }
            if stored {
                out.extend_from_slice(b"; stored");
            }
            if let Some(d) = detail {
                out.extend_from_slice(b"; detail=");
                out.extend_from_slice(d.as_bytes());
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_table_rfc9211() {
        let rows: &[(CacheStatus, &str)] = &[
            (CacheStatus::Hit { ttl: 42 }, "shardgate; hit; ttl=42"),
            (CacheStatus::Hit { ttl: -5 }, "shardgate; hit; ttl=-5"),
            (
                CacheStatus::Forwarded {
                    fwd: Forward::UriMiss,
                    status: Some(200),
                    stored: true,
                    detail: None,
                },
                "shardgate; fwd=uri-miss; fwd-status=200; stored",
            ),
            (
                CacheStatus::Forwarded {
                    fwd: Forward::Stale,
                    status: Some(304),
                    stored: true,
                    detail: None,
                },
                "shardgate; fwd=stale; fwd-status=304; stored",
            ),
            (
                CacheStatus::Forwarded {
                    fwd: Forward::Miss,
                    status: Some(200),
                    stored: false,
                    detail: Some("no-store"),
                },
                "shardgate; fwd=miss; fwd-status=200; detail=no-store",
            ),
            (
                CacheStatus::Forwarded {
                    fwd: Forward::Bypass,
                    status: None,
                    stored: false,
                    detail: None,
                },
                "shardgate; fwd=bypass",
            ),
        ];
        for (s, want) in rows {
            let mut out = Vec::new();
            put_cache_status(&mut out, s);
            assert_eq!(
                String::from_utf8_lossy(&out),
                format!("Cache-Status: {want}\r\n")
            );
        }
    }
}
