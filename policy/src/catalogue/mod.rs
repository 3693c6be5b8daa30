//! The management catalogue as plain data: tenants, their APIs, plans and consumers (with
//! credentials), and subscriptions. The control side keeps it (loaded from its store, changed
//! through the admin API) and sends each version to every shard, which compiles its own view
//! (`view`) that the `api_key` and `subscription` stages read per request.

pub mod view;

use serde::{Deserialize, Serialize};

pub use view::{View, current, install};

/// One version of the whole catalogue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalogue {
    /// Counts changes since the store was made (each change adds one).
    pub version: u64,
    /// Tenants, by name.
    pub tenants: Vec<Tenant>,
    /// Every tenant's APIs.
    pub apis: Vec<Api>,
    /// Every tenant's plans.
    pub plans: Vec<Plan>,
    /// Every tenant's consumers.
    pub consumers: Vec<Consumer>,
    /// Every subscription, whatever its state.
    pub subscriptions: Vec<Subscription>,
}

/// A tenant: a team whose APIs, consumers and figures are its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// Its name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Hex SHA-256 of the bearer token its administrators use on the admin API.
    #[serde(default, skip_serializing)]
    pub admin_token_sha256: String,
    /// The `[[route]]` names its APIs may be made of (assigned by the admin; a route is one
    /// tenant's at most).
    #[serde(default)]
    pub routes: Vec<String>,
}

/// Who may ask to subscribe to an API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Any consumer of its tenant may ask (with its own key).
    #[default]
    Public,
    /// Only the tenant's administrators subscribe consumers to it.
    Private,
}

/// An API: routes of the config, published as one thing consumers subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// Its tenant.
    #[serde(default)]
    pub tenant: String,
    /// Its name, unique in the tenant.
    #[serde(default)]
    pub name: String,
    /// The `[[route]]` names it is made of (a route belongs to one API at most).
    pub routes: Vec<String>,
    /// Who may ask for it.
    #[serde(default)]
    pub visibility: Visibility,
}

/// A plan: what a consumer on it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Its tenant.
    #[serde(default)]
    pub tenant: String,
    /// Its name, unique in the tenant.
    #[serde(default)]
    pub name: String,
    /// Requests per minute per consumer (shared out between the shards); none: no limit.
    #[serde(default)]
    pub rate_per_minute: Option<u64>,
    /// Requests per day (UTC) per consumer (shared out between the shards, counted on this
    /// node); none: no quota.
    #[serde(default)]
    pub quota_per_day: Option<u64>,
    /// The routes it allows (empty: every route of the APIs subscribed to).
    #[serde(default)]
    pub routes: Vec<String>,
}

/// A consumer: a caller of a tenant's APIs, and how it proves who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// Its tenant.
    #[serde(default)]
    pub tenant: String,
    /// Its name, unique in the tenant; its identity is `tenant/name`.
    pub name: String,
    /// Its plan, by name (none: no plan limits).
    #[serde(default)]
    pub plan: Option<String>,
    /// Groups, for authorization rules.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Hex SHA-256 digests of its API keys (keys themselves are never stored).
    #[serde(default)]
    pub keys_sha256: Vec<String>,
    /// JWT subjects (`sub`) that are this consumer.
    #[serde(default)]
    pub jwt_subjects: Vec<String>,
    /// OAuth2 client ids (a token's `client_id` or `azp`) that are this consumer.
    #[serde(default)]
    pub client_ids: Vec<String>,
}

impl Consumer {
    /// `tenant/name`: its identity on the data path.
    pub fn identity(&self) -> String {
        format!("{}/{}", self.tenant, self.name)
    }
}

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Asked for, not yet decided: calls are refused.
    Pending,
    /// Approved: calls are admitted.
    Approved,
    /// Refused by an administrator.
    Rejected,
    /// Approved once, withdrawn since.
    Revoked,
}

impl State {
    /// Its name, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Revoked => "revoked",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<State> {
        [
            State::Pending,
            State::Approved,
            State::Rejected,
            State::Revoked,
        ]
        .into_iter()
        .find(|st| st.name() == s)
    }
}

/// A consumer's access to one API of its tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Its number, unique in the catalogue.
    pub id: u64,
    /// Its tenant.
    pub tenant: String,
    /// The consumer, by name.
    pub consumer: String,
    /// The API, by name.
    pub api: String,
    /// Where it stands.
    pub state: State,
    /// Who asked (`admin`, `tenant:NAME`, `consumer:TENANT/NAME`).
    pub requested_by: String,
    /// When, in milliseconds since the Unix epoch.
    pub requested_at_ms: u64,
    /// Who decided last (approved, rejected, revoked).
    pub decided_by: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub decided_at_ms: Option<u64>,
}

/// True when `s` is a usable catalogue name: 1 to 64 of letters, digits, `-`, `_`, `.`.
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Equality whose time does not depend on where the inputs differ (only on their lengths):
/// for keys, tokens and their digests.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    a.len() == b.len() && std::hint::black_box(diff) == 0
}

/// The 32 bytes of a hex SHA-256 digest (upper or lower case).
pub fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let hi = (*pair.first()? as char).to_digit(16)?;
        let lo = (*pair.get(1)? as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_digests() {
        assert!(valid_name("acme-eu.1_x"));
        for bad in ["", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        let d = parse_sha256(&"0f".repeat(32));
        assert_eq!(d, Some([0x0f; 32]));
        assert_eq!(parse_sha256(&"0F".repeat(32)), Some([0x0f; 32]));
        assert_eq!(parse_sha256("0f"), None);
        assert_eq!(parse_sha256(&"zz".repeat(32)), None);
        for s in ["pending", "approved", "rejected", "revoked"] {
            assert_eq!(State::parse(s).map(State::name), Some(s));
        }
        assert_eq!(State::parse("Approved"), None);
    }
}
