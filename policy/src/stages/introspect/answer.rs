//! An authorization server's introspection answer (RFC 7662 §2.2) as the stage keeps it:
//! active with the identity it names (until the token's `exp`), or inactive.

use std::rc::Rc;
use std::time::Instant;

use crate::exchange::Identity;

/// What the cache holds for one token.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Active: the identity, and the token's `exp` (Unix seconds) when given.
    Active {
        /// Who the token is for.
        identity: Rc<Identity>,
        /// `exp`.
        exp: Option<u64>,
        /// When the answer came (it is kept at most `max_ttl` after).
        at: Instant,
    },
    /// Inactive (or expired, revoked, unknown): refused until `until`.
    Inactive {
        /// Kept till then.
        until: Instant,
    },
    /// The server did not answer usably: refused with 503 until `until`.
    Failed {
        /// Kept till then.
        until: Instant,
    },
}

/// Which answer field names the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerField {
    /// `sub` (then `client_id` when there is none).
    Sub,
    /// `client_id`.
    ClientId,
    /// `username`.
    Username,
}

/// The claims kept from an answer (as `${jwt.<claim>}` and the subscription stage read them).
const KEPT: [&str; 6] = ["sub", "client_id", "username", "iss", "token_type", "scope"];

/// Reads an answer body: `Ok(Some(identity, exp))` for an active token, `Ok(None)` for an
/// inactive one, `Err` for a body that is not an introspection answer.
pub fn parse(body: &[u8], field: ConsumerField) -> Result<Option<(Identity, Option<u64>)>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("the answer is not a JSON object".into());
    };
    match obj.get("active") {
        Some(serde_json::Value::Bool(true)) => {}
        Some(serde_json::Value::Bool(false)) => return Ok(None),
        _ => return Err("the answer has no boolean `active`".into()),
    }
    let text = |k: &str| obj.get(k).and_then(serde_json::Value::as_str);
    let consumer = match field {
        ConsumerField::Sub => text("sub").or_else(|| text("client_id")),
        ConsumerField::ClientId => text("client_id"),
        ConsumerField::Username => text("username"),
    };
    let Some(consumer) = consumer.filter(|c| !c.is_empty()) else {
        // an active token naming nobody cannot be anybody's identity
        return Err("the active answer names no consumer".into());
    };
    let scopes: Vec<Box<str>> = text("scope")
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(Into::into)
        .collect();
    let claims: Vec<(Box<str>, Box<str>)> = KEPT
        .iter()
        .filter_map(|k| text(k).map(|v| ((*k).into(), v.into())))
        .collect();
    let exp = obj.get("exp").and_then(serde_json::Value::as_u64);
    let identity = Identity {
        consumer: consumer.into(),
        scopes: scopes.into(),
        roles: Rc::from(Vec::new()),
        claims: claims.into(),
    };
    Ok(Some((identity, exp)))
}

/// `application/x-www-form-urlencoded` encoding of `s` (RFC 6749 appendix B).
pub fn form(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*') {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_rfc_7662_says() -> Result<(), String> {
        let body = br#"{"active": true, "sub": "u1", "client_id": "app", "scope": "read  write", "exp": 1900000000, "aud": ["x"]}"#;
        let Some((id, exp)) = parse(body, ConsumerField::Sub)? else {
            return Err("not active".into());
        };
        assert_eq!((&*id.consumer, exp), ("u1", Some(1_900_000_000)));
        assert_eq!(&*id.scopes, &["read".into(), "write".into()] as &[Box<str>]);
        assert_eq!(id.claim("client_id"), Some("app"));
        let by_client = parse(body, ConsumerField::ClientId)?.map(|(i, _)| i.consumer);
        assert_eq!(by_client.as_deref(), Some("app"));
        // no sub: the client is the consumer
        let app = parse(
            br#"{"active": true, "client_id": "svc"}"#,
            ConsumerField::Sub,
        )?;
        assert_eq!(app.map(|(i, _)| i.consumer).as_deref(), Some("svc"));
        assert!(parse(br#"{"active": false, "sub": "u1"}"#, ConsumerField::Sub)?.is_none());
        for bad in [
            &b"{"[..],
            b"[]",
            br#"{"active": "yes"}"#,
            br#"{"sub": "u"}"#,
            br#"{"active": true}"#,
        ] {
            assert!(
                parse(bad, ConsumerField::Sub).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(form("a b+c/é~"), "a+b%2Bc%2F%C3%A9%7E");
        Ok(())
    }
}
