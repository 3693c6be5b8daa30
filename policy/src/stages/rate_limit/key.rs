//! What identifies a limit's bucket or counter: `key = ["ip", "consumer", "route",
//! "header:NAME"]`, parsed once, hashed per request (shared by `rate_limit` and `quota`).

use std::hash::{BuildHasher, Hash, Hasher};

use proto::RequestHead;

use crate::exchange::Exchange;

/// One part of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Ip,
    Consumer,
    Route,
    Header(Box<[u8]>),
}

/// A parsed `key` list and the hasher it is hashed with.
pub struct Key {
    parts: Vec<Part>,
    hasher: ahash::RandomState,
}

impl Key {
    /// Parses `key`; `fixed`: hash the same on every node (keys kept in Redis).
    pub fn parse(key: &[String], fixed: bool) -> Result<Key, String> {
        let mut parts = Vec::new();
        for k in key {
            parts.push(match k.as_str() {
                "ip" => Part::Ip,
                "consumer" => Part::Consumer,
                "route" => Part::Route,
                h => match h.strip_prefix("header:") {
                    Some(name) if proto::chars::is_token(name.as_bytes()) => {
                        Part::Header(name.as_bytes().into())
                    }
                    _ => {
                        return Err(format!(
                            "key `{k}`: expected \"ip\", \"consumer\", \"route\" or \"header:NAME\""
                        ));
                    }
                },
            });
        }
        if parts.is_empty() {
            return Err("key must name at least one part".into());
        }
        let hasher = if fixed {
            ahash::RandomState::with_seeds(0x5348_4152, 0x4447_4154, 0x455f_524c, 0x2d6c_6561)
        } else {
            ahash::RandomState::new()
        };
        Ok(Key { parts, hasher })
    }

    /// The key of a request.
    pub fn of(&self, head: &RequestHead, buf: &[u8], ex: &Exchange) -> u64 {
        let mut h = self.hasher.build_hasher();
        for part in &self.parts {
            match part {
                Part::Ip => ex.client_ip.hash(&mut h),
                Part::Consumer => match &ex.identity {
                    Some(id) => id.consumer.hash(&mut h),
                    None => 0u8.hash(&mut h),
                },
                Part::Route => ex.route.map(|r| r.0).hash(&mut h),
                Part::Header(name) => {
                    for f in &head.fields {
                        if f.name.get(buf).eq_ignore_ascii_case(name) {
                            f.value.get(buf).hash(&mut h);
                        }
                    }
                    0xffu8.hash(&mut h);
                }
            }
        }
        h.finish()
    }
}

/// Checks a limit's `name` (it goes into `RateLimit` fields and Redis keys).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("name `{name}` must be letters, digits, - or _"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_parse_or_say_what_was_expected() {
        for good in [
            &["ip"][..],
            &["consumer", "route"],
            &["header:X-Tenant", "ip"],
        ] {
            let key: Vec<String> = good.iter().map(|s| s.to_string()).collect();
            assert!(Key::parse(&key, false).is_ok(), "{good:?}");
        }
        for bad in [&[][..], &["user"], &["header:"], &["header:a b"]] {
            let key: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            assert!(Key::parse(&key, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fixed_keys_hash_alike_in_every_process_and_by_the_parts_named() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\nX-Tenant: t1\r\n\r\n";
        let mut head = RequestHead::with_capacity(4);
        assert!(proto::parse_request(buf, &mut head, &proto::Limits::default()).is_ok());
        let key = vec!["header:x-tenant".to_string()];
        let (a, b) = (Key::parse(&key, true), Key::parse(&key, true));
        let (Ok(a), Ok(b)) = (a, b) else {
            panic!("parse");
        };
        let ex = Exchange::default();
        assert_eq!(a.of(&head, buf, &ex), b.of(&head, buf, &ex));
        let other = b"GET / HTTP/1.1\r\nHost: a\r\nX-Tenant: t2\r\n\r\n";
        let mut head2 = RequestHead::with_capacity(4);
        assert!(proto::parse_request(other, &mut head2, &proto::Limits::default()).is_ok());
        assert_ne!(a.of(&head, buf, &ex), a.of(&head2, other, &ex));
    }
}
