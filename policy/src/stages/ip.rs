//! IP allow/deny lists (prefix tries, so 10,000 networks cost what 10 do) and the client
//! address they judge: the peer's, or — only when the peer is a trusted proxy — the rightmost
//! untrusted hop of `X-Forwarded-For` (or `Forwarded: for=`), so a forged header from anyone
//! else changes nothing. Sets `Exchange::client_ip` for later stages (rate limits).
//!
//! ```toml
//! [[route.policy]]
//! kind = "ip"
//! allow = ["10.0.0.0/8", "2001:db8::/32"]
//! deny = ["10.6.6.6"]
//! trusted_proxies = ["10.0.0.1"]
//! ```

use std::net::IpAddr;

use proto::{FieldKind, RequestHead};
use serde::Deserialize;

use crate::cidr::CidrSet;
use crate::exchange::Exchange;
use crate::stage::{Rejection, Stage, StageBuild, StageContext, Verdict};

/// `[[route.policy]] kind = "ip"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Networks allowed; when any are given (here or in `allow_file`), every other address
    /// is refused.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Networks refused, whatever `allow` says.
    #[serde(default)]
    pub deny: Vec<String>,
    /// A file of networks to allow, one per line (`#` starts a comment).
    #[serde(default)]
    pub allow_file: Option<String>,
    /// A file of networks to refuse, one per line.
    #[serde(default)]
    pub deny_file: Option<String>,
    /// Peers whose `X-Forwarded-For` / `Forwarded` header is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// The stage.
pub struct Ip {
    allow: CidrSet,
    deny: CidrSet,
    trusted: CidrSet,
}

fn networks(
    list: &[String],
    file: Option<&str>,
    ctx: &StageContext<'_>,
) -> Result<CidrSet, String> {
    let mut all: Vec<String> = list.to_vec();
    if let Some(f) = file {
        let path = ctx.dir.join(f);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        all.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or_default().trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    CidrSet::parse(&all)
}

impl StageBuild for Ip {
    const KIND: &'static str = "ip";
    type Config = Config;

    fn build(c: Config, ctx: &StageContext<'_>) -> Result<Ip, String> {
        Ok(Ip {
            allow: networks(&c.allow, c.allow_file.as_deref(), ctx)
                .map_err(|e| format!("allow: {e}"))?,
            deny: networks(&c.deny, c.deny_file.as_deref(), ctx)
                .map_err(|e| format!("deny: {e}"))?,
            trusted: CidrSet::parse(&c.trusted_proxies)
                .map_err(|e| format!("trusted_proxies: {e}"))?,
        })
    }
}

impl Stage for Ip {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        let peer = ex.client.ip();
        let client = if !self.trusted.is_empty() && self.trusted.contains(peer) {
            client_behind_proxies(head, buf, peer, &self.trusted)
        } else {
            peer
        };
        ex.client_ip = client;
        if self.deny.contains(client) {
            return Verdict::Reject(Rejection::new(
                403,
                "ip.denied",
                "the client address is denied",
            ));
        }
        if !self.allow.is_empty() && !self.allow.contains(client) {
            return Verdict::Reject(Rejection::new(
                403,
                "ip.not_allowed",
                "the client address is not allowed",
            ));
        }
        Verdict::Continue
    }
}

/// The rightmost hop that is not a trusted proxy, reading `X-Forwarded-For` (all its fields,
/// as one list) or else `Forwarded`'s `for=`; the leftmost hop if all are trusted; the nearest
/// trusted hop when an entry cannot be read (`unknown`, obfuscated, garbage).
fn client_behind_proxies(
    head: &RequestHead,
    buf: &[u8],
    peer: IpAddr,
    trusted: &CidrSet,
) -> IpAddr {
    let xff = head
        .fields
        .iter()
        .any(|f| f.kind == FieldKind::XForwardedFor);
    let mut client = peer;
    for f in head.fields.iter().rev() {
        let value = if xff {
            if f.kind != FieldKind::XForwardedFor {
                continue;
            }
            f.value.get(buf)
        } else if f.name.get(buf).eq_ignore_ascii_case(b"forwarded") {
            f.value.get(buf)
        } else {
            continue;
        };
        for element in value.rsplit(|&b| b == b',') {
            let hop = if xff {
                Some(element)
            } else {
                forwarded_for(element)
            };
            match hop.and_then(parse_hop) {
                Some(ip) if trusted.contains(ip) => client = ip,
                Some(ip) => return ip,
                None => return client,
            }
        }
    }
    client
}

/// The `for=` value of one `Forwarded` element.
fn forwarded_for(element: &[u8]) -> Option<&[u8]> {
    element.split(|&b| b == b';').find_map(|pair| {
        let pair = proto::chars::trim_ows(pair);
        let (k, v) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
        k.eq_ignore_ascii_case(b"for")
            .then(|| v.get(1..).unwrap_or_default())
    })
}

/// An address from `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`, optionally
/// quoted.
fn parse_hop(raw: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(proto::chars::trim_ows(raw)).ok()?;
    let s = s.trim_matches('"');
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(fields: &str, peer: &str, trusted: &[&str]) -> IpAddr {
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
        let mut head = RequestHead::with_capacity(8);
        if let Err(e) = proto::parse_request(raw.as_bytes(), &mut head, &proto::Limits::default()) {
            panic!("{raw:?}: {e:?}");
        }
        let trusted = CidrSet::parse(trusted).unwrap_or_else(|e| panic!("{e}"));
        client_behind_proxies(&head, raw.as_bytes(), ip(peer), &trusted)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        let t = ["10.0.0.0/8"];
        // the client could have forged 6.6.6.6; the proxy appended what it saw
        assert_eq!(
            resolve("X-Forwarded-For: 6.6.6.6, 1.2.3.4\r\n", "10.0.0.1", &t),
            ip("1.2.3.4")
        );
        assert_eq!(
            resolve(
                "X-Forwarded-For: 6.6.6.6, 1.2.3.4, 10.0.0.2\r\n",
                "10.0.0.1",
                &t
            ),
            ip("1.2.3.4")
        );
        // several fields form one list
        assert_eq!(
            resolve(
                "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 1.2.3.4\r\n",
                "10.0.0.1",
                &t
            ),
            ip("1.2.3.4")
        );
        // all trusted: the leftmost
        assert_eq!(
            resolve("X-Forwarded-For: 10.0.0.9, 10.0.0.2\r\n", "10.0.0.1", &t),
            ip("10.0.0.9")
        );
        // garbage stops the walk at the nearest trusted hop
        assert_eq!(
            resolve(
                "X-Forwarded-For: 1.2.3.4, nonsense, 10.0.0.2\r\n",
                "10.0.0.1",
                &t
            ),
            ip("10.0.0.2")
        );
        // Forwarded when there is no X-Forwarded-For
        assert_eq!(
            resolve(
                "Forwarded: for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=http\r\n",
                "10.0.0.1",
                &t
            ),
            ip("2001:db8::1")
        );
        assert_eq!(
            resolve("X-Forwarded-For: 1.2.3.4:5678\r\n", "10.0.0.1", &t),
            ip("1.2.3.4")
        );
        // no header: the peer
        assert_eq!(resolve("", "10.0.0.1", &t), ip("10.0.0.1"));
    }
}
