//! The key a hashing balancer hashes, read from the request: the client address, a header,
//! a cookie, or a route parameter (hashed at routing, where its span is known).

use proto::RequestHead;

use super::hash_bytes;
use crate::exchange::Exchange;

/// Where the key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The client's IP address.
    ClientIp,
    /// A header's value (the first field of that name).
    Header(Box<[u8]>),
    /// A cookie's value (the first of that name).
    Cookie(Box<[u8]>),
    /// A route parameter: `Exchange.upstream.param_key`.
    Param,
}

impl From<&conf::HashOn> for KeySource {
    fn from(h: &conf::HashOn) -> KeySource {
        match h {
            conf::HashOn::ClientIp => KeySource::ClientIp,
            conf::HashOn::Header(n) => KeySource::Header(n.as_bytes().into()),
            conf::HashOn::Cookie(n) => KeySource::Cookie(n.as_bytes().into()),
            conf::HashOn::Param(_) => KeySource::Param,
        }
    }
}

impl KeySource {
    /// The request's key, `None` when it has none.
    pub fn key(&self, head: &RequestHead, buf: &[u8], ex: &Exchange) -> Option<u64> {
        match self {
            KeySource::ClientIp => Some(ip_key(ex.client_ip)),
            KeySource::Header(name) => head
                .fields
                .iter()
                .find(|f| f.name.get(buf).eq_ignore_ascii_case(name))
                .map(|f| hash_bytes(f.value.get(buf))),
            KeySource::Cookie(name) => cookie(head, buf, name).map(hash_bytes),
            KeySource::Param => ex.upstream.param_key,
        }
    }
}

/// The key of a client address.
pub fn ip_key(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(a) => hash_bytes(&a.octets()),
        std::net::IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => hash_bytes(&v4.octets()),
            None => hash_bytes(&a.octets()),
        },
    }
}

/// The value of the first cookie named `name` across the Cookie fields.
pub fn cookie<'b>(head: &RequestHead, buf: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
    head.fields
        .iter()
        .filter(|f| f.name.get(buf).eq_ignore_ascii_case(b"cookie"))
        .flat_map(|f| f.value.get(buf).split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = proto::chars::trim_ows(pair);
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (k, v) = pair.split_at(eq);
            (k == name).then(|| v.get(1..).unwrap_or_default())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &[u8]) -> RequestHead {
        let mut head = RequestHead::with_capacity(16);
        let limits = proto::Limits::default();
        assert!(matches!(
            proto::parse_request(raw, &mut head, &limits),
            Ok(proto::Status::Complete(_))
        ));
        head
    }

    #[test]
    fn keys_come_from_the_named_part_of_the_request() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-User: alice\r\nCookie: a=1; sid=xyz\r\n\r\n";
        let head = parsed(raw);
        let ex = Exchange::default();
        let header = KeySource::Header((*b"x-user").into());
        assert_eq!(header.key(&head, raw, &ex), Some(hash_bytes(b"alice")));
        let sid = KeySource::Cookie((*b"sid").into());
        assert_eq!(sid.key(&head, raw, &ex), Some(hash_bytes(b"xyz")));
        let missing = KeySource::Cookie((*b"other").into());
        assert_eq!(missing.key(&head, raw, &ex), None);
        assert_eq!(KeySource::Param.key(&head, raw, &ex), None);
        let v4 = std::net::IpAddr::from([10, 0, 0, 1]);
        let mapped = std::net::IpAddr::from(std::net::Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(ip_key(v4), ip_key(mapped));
    }
}
