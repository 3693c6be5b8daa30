//! API keys: consumers declared in config with their keys stored as SHA-256 digests (plain keys
//! only with `insecure_plaintext = true`), read from a header or a query parameter (the query
//! form is stripped before forwarding), compared in constant time. The consumer becomes the
//! request's identity (for rate limits, authorization and the forwarded consumer header).
//! A key given more than once (the header twice, the parameter twice, or both) is refused
//! with 400, not 401: the request is malformed (which copy counts would depend on who reads
//! it), and sending the same keys again cannot help.
//!
//! ```toml
//! [[route.policy]]
//! kind = "api_key"
//! header = "X-Api-Key"
//! [[route.policy.consumers]]
//! name = "billing"
//! key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! groups = ["reports"]
//! ```

use std::borrow::Cow;
use std::rc::Rc;

use proto::RequestHead;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::catalogue::{ct_eq, parse_sha256};
use crate::exchange::{Exchange, Identity};
use crate::stage::{Rejection, Stage, StageBuild, StageContext, Verdict};

/// `[[route.policy]] kind = "api_key"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Header the key is read from. Default "X-Api-Key".
    #[serde(default = "default_header")]
    pub header: String,
    /// Also accept the key in this query parameter (removed before forwarding). Default: none.
    #[serde(default)]
    pub query: Option<String>,
    /// Header that carries the consumer's name upstream (incoming copies are removed first).
    /// Default "X-Consumer-Id"; "" for none.
    #[serde(default = "default_consumer_header")]
    pub consumer_header: String,
    /// Allow `key = "…"` in plain text. Default false.
    #[serde(default)]
    pub insecure_plaintext: bool,
    /// Also accept the keys of the `[management]` catalogue's consumers (as `tenant/name`,
    /// looked up by the key's digest). Default false.
    #[serde(default)]
    pub catalogue: bool,
    /// The consumers (may be empty with `catalogue = true`).
    #[serde(default)]
    pub consumers: Vec<ConsumerConf>,
}

/// `[[route.policy.consumers]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConf {
    /// Consumer name (its identity).
    pub name: String,
    /// Hex SHA-256 of the key (`printf %s KEY | sha256sum`).
    #[serde(default)]
    pub key_sha256: Option<String>,
    /// The key itself; only with `insecure_plaintext = true`.
    #[serde(default)]
    pub key: Option<String>,
    /// Groups, for authorization rules.
    #[serde(default)]
    pub groups: Vec<String>,
}

fn default_header() -> String {
    "X-Api-Key".into()
}
fn default_consumer_header() -> String {
    "X-Consumer-Id".into()
}

/// The stage.
pub struct ApiKey {
    header: Box<[u8]>,
    query: Option<Box<[u8]>>,
    consumer_header: Box<[u8]>,
    consumers: Vec<([u8; 32], Rc<Identity>)>,
    catalogue: bool,
}

impl StageBuild for ApiKey {
    const KIND: &'static str = "api_key";
    type Config = Config;

    fn build(c: Config, ctx: &StageContext<'_>) -> Result<ApiKey, String> {
        // the consumer header may be "" (none sent); the key's header may not
        let bad = [(&c.header, false), (&c.consumer_header, true)]
            .into_iter()
            .find(|(h, may_be_empty)| {
                !(proto::chars::is_token(h.as_bytes()) || (*may_be_empty && h.is_empty()))
            });
        if let Some((h, _)) = bad {
            return Err(format!("`{h}` is not a valid header name"));
        }
        if c.catalogue && !ctx.management {
            return Err("catalogue = true needs [management]".into());
        }
        if c.consumers.is_empty() && !c.catalogue {
            return Err(
                "at least one [[route.policy.consumers]] is needed (or catalogue = true)".into(),
            );
        }
        let mut consumers = Vec::with_capacity(c.consumers.len());
        for k in &c.consumers {
            let digest = match (&k.key_sha256, &k.key) {
                (Some(hex), None) => parse_sha256(hex).ok_or_else(|| {
                    format!("consumer `{}`: key_sha256 must be 64 hex digits", k.name)
                })?,
                (None, Some(plain)) if c.insecure_plaintext => {
                    Sha256::digest(plain.as_bytes()).into()
                }
                (None, Some(_)) => {
                    return Err(format!(
                        "consumer `{}`: a plain `key` needs insecure_plaintext = true; store key_sha256 instead",
                        k.name
                    ));
                }
                _ => {
                    return Err(format!(
                        "consumer `{}`: give exactly one of key_sha256 or key",
                        k.name
                    ));
                }
            };
            if consumers.iter().any(|(d, _)| *d == digest) {
                return Err(format!(
                    "consumer `{}`: the same key is given twice",
                    k.name
                ));
            }
            consumers.push((
                digest,
                Rc::new(Identity {
                    consumer: Rc::from(k.name.as_str()),
                    scopes: Rc::from(Vec::new()),
                    roles: k.groups.iter().map(|g| g.as_str().into()).collect(),
                    claims: Rc::from(Vec::new()),
                }),
            ));
        }
        Ok(ApiKey {
            header: c.header.as_bytes().into(),
            query: c.query.map(|q| q.into_bytes().into_boxed_slice()),
            consumer_header: c.consumer_header.as_bytes().into(),
            consumers,
            catalogue: c.catalogue,
        })
    }
}

impl Stage for ApiKey {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        // incoming copies of the consumer header are never forwarded
        for (i, f) in head.fields.iter().enumerate() {
            if !self.consumer_header.is_empty()
                && f.name.get(buf).eq_ignore_ascii_case(&self.consumer_header)
            {
                ex.edits.fields.drop_field(i);
            }
        }
        // the key is given once: a repeated header or parameter, or both at once, is refused
        let header = head.only_value_of(buf, &self.header);
        let query = match &self.query {
            Some(q) => crate::query::take_param(head, buf, q, &mut ex.edits),
            None => Ok(None),
        };
        let presented: Option<Cow<'_, [u8]>> = match (header, query) {
            (Ok(Some(k)), Ok(None)) => Some(Cow::Borrowed(k)),
            (Ok(None), Ok(Some(k))) => Some(Cow::Owned(k)),
            (Ok(None), Ok(None)) => None,
            _ => {
                return Verdict::Reject(Rejection::new(
                    400,
                    "api_key.ambiguous",
                    "the API key is given more than once",
                ));
            }
        };
        let Some(key) = presented.filter(|k| !k.is_empty()) else {
            return Verdict::Reject(
                Rejection::new(401, "api_key.missing", "an API key is required")
                    .with_field("WWW-Authenticate", "ApiKey"),
            );
        };
        let digest: [u8; 32] = Sha256::digest(&key).into();
        // every consumer is compared, so the time does not tell which (or whether one) matched
        let mut found: Option<Rc<Identity>> = None;
        for (d, id) in &self.consumers {
            if ct_eq(d, &digest) {
                found = Some(id.clone());
            }
        }
        // the catalogue's keys are found by their digest (a hash lookup: its time depends on
        // the digest, which tells nothing of the key)
        if found.is_none() && self.catalogue {
            found = crate::catalogue::current()
                .and_then(|v| v.by_key(&digest).map(|(_, m)| m.identity.clone()));
        }
        let Some(id) = found else {
            return Verdict::Reject(
                Rejection::new(401, "api_key.invalid", "the API key is not valid")
                    .with_field("WWW-Authenticate", "ApiKey"),
            );
        };
        if !self.consumer_header.is_empty() {
            ex.edits
                .fields
                .add(&self.consumer_header, id.consumer.as_bytes());
        }
        ex.identity = Some(id);
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_constant_time_compare() {
        let d: [u8; 32] = Sha256::digest(b"test").into();
        assert_eq!(
            parse_sha256("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
            Some(d)
        );
        assert_eq!(parse_sha256("9f86"), None);
        assert_eq!(parse_sha256(&"zz".repeat(32)), None);
        let mut e = d;
        assert!(ct_eq(&d, &e));
        e[31] ^= 1;
        assert!(!ct_eq(&d, &e));
    }
}
