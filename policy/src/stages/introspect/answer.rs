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

/// Reads an answer body: `Ok(Some(identity, exp))` for an active access token that names a
/// usable consumer (of `audience`, when given), `Ok(None)` for any other token (inactive, a
/// refresh token, another audience's, naming nobody or a name no header can carry), `Err`
/// for a body that is not an introspection answer.
pub fn parse(
    body: &[u8],
    field: ConsumerField,
    audience: &[String],
) -> Result<Option<(Identity, Option<u64>)>, String> {
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
    // an active token naming nobody (or a name with control characters) is nobody's identity
    let Some(consumer) =
        consumer.filter(|c| !c.is_empty() && c.bytes().all(proto::chars::is_field_value))
    else {
        return Ok(None);
    };
    // RFC 7662 §2.2: token_type is a hint, but a refresh token is never a bearer of requests
    if text("token_type").is_some_and(|t| t.eq_ignore_ascii_case("refresh_token")) {
        return Ok(None);
    }
    if !audience.is_empty() {
        let aud = obj.get("aud");
        let names = |a: &str| audience.iter().any(|w| w == a);
        let ours = match aud {
            Some(serde_json::Value::String(a)) => names(a),
            Some(serde_json::Value::Array(list)) => {
                list.iter().filter_map(|a| a.as_str()).any(names)
            }
            _ => false,
        };
        if !ours {
            return Ok(None);
        }
    }
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
    // NumericDate: seconds, possibly with a fraction (RFC 7519 §2)
    let exp = match obj.get("exp") {
        None => None,
        Some(e) => match e.as_f64() {
            Some(f) if f >= 0.0 => Some(f as u64),
            _ => return Err("the answer's exp is not a number of seconds".into()),
        },
    };
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

    fn sub(body: &[u8], audience: &[String]) -> Result<Option<String>, String> {
        Ok(parse(body, ConsumerField::Sub, audience)?.map(|(i, _)| i.consumer.to_string()))
    }

    #[test]
    fn answers_are_read_as_rfc_7662_says() -> Result<(), String> {
        let body = br#"{"active": true, "sub": "u1", "client_id": "app", "scope": "read  write", "exp": 1900000000, "aud": ["x"]}"#;
        let Some((id, exp)) = parse(body, ConsumerField::Sub, &[])? else {
            return Err("not active".into());
        };
        assert_eq!((&*id.consumer, exp), ("u1", Some(1_900_000_000)));
        assert_eq!(&*id.scopes, &["read".into(), "write".into()] as &[Box<str>]);
        assert_eq!(id.claim("client_id"), Some("app"));
        let by_client = parse(body, ConsumerField::ClientId, &[])?.map(|(i, _)| i.consumer);
        assert_eq!(by_client.as_deref(), Some("app"));
        // no sub: the client is the consumer; a fractional exp is its seconds
        let app = parse(
            br#"{"active": true, "client_id": "svc", "exp": 17.5}"#,
            ConsumerField::Sub,
            &[],
        )?;
        assert_eq!(
            app.map(|(i, e)| (i.consumer.to_string(), e)),
            Some(("svc".into(), Some(17)))
        );
        // refused: inactive, naming nobody, a name no header carries, a refresh token
        for no in [
            &br#"{"active": false, "sub": "u1"}"#[..],
            br#"{"active": true}"#,
            b"{\"active\": true, \"sub\": \"bob\\r\\nX-Consumer-Id: admin\"}",
            br#"{"active": true, "sub": "u1", "token_type": "refresh_token"}"#,
        ] {
            assert_eq!(sub(no, &[])?, None, "{}", String::from_utf8_lossy(no));
        }
        // an audience asked for: the token must name it
        let aud = ["api".to_string()];
        assert_eq!(
            sub(br#"{"active": true, "sub": "u", "aud": "api"}"#, &aud)?,
            Some("u".into())
        );
        assert_eq!(
            sub(
                br#"{"active": true, "sub": "u", "aud": ["x", "api"]}"#,
                &aud
            )?,
            Some("u".into())
        );
        assert_eq!(
            sub(br#"{"active": true, "sub": "u", "aud": ["other"]}"#, &aud)?,
            None
        );
        assert_eq!(sub(br#"{"active": true, "sub": "u"}"#, &aud)?, None);
        for bad in [
            &b"{"[..],
            b"[]",
            br#"{"active": "yes"}"#,
            br#"{"sub": "u"}"#,
            br#"{"active": true, "sub": "u", "exp": "soon"}"#,
        ] {
            assert!(
                parse(bad, ConsumerField::Sub, &[]).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(form("a b+c/é~"), "a+b%2Bc%2F%C3%A9%7E");
        Ok(())
    }
}
