//! Authorization (RBAC) over the identity an earlier stage (`jwt`, `api_key`) established:
//! per-method rules requiring scopes and/or roles (any-of, all-of). 401 when nobody is
//! authenticated, 403 with `error="insufficient_scope"` when the identity lacks what the rule
//! asks. A method no rule names is refused unless `default = "allow"`. A rule can also demand
//! that the connection carried a verified TLS client certificate (403 without one).
//!
//! ```toml
//! [[route.policy]]
//! kind = "authorize"
//! [[route.policy.rules]]
//! methods = ["GET"]
//! any_scope = ["orders:read", "orders:admin"]
//! [[route.policy.rules]]
//! methods = ["POST", "DELETE"]
//! all_roles = ["staff"]
//! ```

use proto::RequestHead;
use serde::Deserialize;

use crate::exchange::{Exchange, Identity};
use crate::stage::{Rejection, Stage, StageBuild, StageContext, Verdict};

/// `[[route.policy]] kind = "authorize"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Rules, first whose methods match applies.
    pub rules: Vec<RuleConf>,
    /// What a method no rule names gets: "deny" (403) or "allow". Default "deny".
    #[serde(default = "default_default")]
    pub default: String,
}

/// `[[route.policy.rules]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConf {
    /// Methods the rule covers. Default: all.
    #[serde(default)]
    pub methods: Vec<String>,
    /// At least one of these scopes.
    #[serde(default)]
    pub any_scope: Vec<String>,
    /// Every one of these scopes.
    #[serde(default)]
    pub all_scopes: Vec<String>,
    /// At least one of these roles (or API-key consumer groups).
    #[serde(default)]
    pub any_role: Vec<String>,
    /// Every one of these roles.
    #[serde(default)]
    pub all_roles: Vec<String>,
    /// Also require a verified TLS client certificate on the connection (mTLS). Default false.
    #[serde(default)]
    pub client_cert: bool,
}

fn default_default() -> String {
    "deny".into()
}

struct Rule {
    methods: Vec<Box<[u8]>>,
    any_scope: Vec<String>,
    all_scopes: Vec<String>,
    any_role: Vec<String>,
    all_roles: Vec<String>,
    client_cert: bool,
    /// `scope="…"` for the challenge.
    challenge: String,
}

impl Rule {
    fn allows(&self, id: &Identity) -> bool {
        let has = |set: &[Box<str>], x: &String| set.iter().any(|s| **s == **x);
        (self.any_scope.is_empty() || self.any_scope.iter().any(|s| has(&id.scopes, s)))
            && self.all_scopes.iter().all(|s| has(&id.scopes, s))
            && (self.any_role.is_empty() || self.any_role.iter().any(|r| has(&id.roles, r)))
            && self.all_roles.iter().all(|r| has(&id.roles, r))
    }
}

/// The stage.
pub struct Authorize {
    rules: Vec<Rule>,
    allow_unlisted: bool,
}

impl StageBuild for Authorize {
    const KIND: &'static str = "authorize";
    type Config = Config;

    fn build(c: Config, _ctx: &StageContext<'_>) -> Result<Authorize, String> {
        let allow_unlisted = match c.default.as_str() {
            "deny" => false,
            "allow" => true,
            other => return Err(format!("default `{other}`: expected \"deny\" or \"allow\"")),
        };
        if c.rules.is_empty() {
            return Err("at least one [[route.policy.rules]] is needed".into());
        }
        let mut rules = Vec::new();
        for (i, r) in c.rules.into_iter().enumerate() {
            if let Some(m) = r
                .methods
                .iter()
                .find(|m| !proto::chars::is_token(m.as_bytes()))
            {
                return Err(format!("rules[{i}]: `{m}` is not a method"));
            }
            let words = r
                .any_scope
                .iter()
                .chain(&r.all_scopes)
                .chain(&r.any_role)
                .chain(&r.all_roles);
            if let Some(w) = words
                .clone()
                .find(|w| w.is_empty() || w.contains(['"', '\\', ' ']))
            {
                return Err(format!(
                    "rules[{i}]: `{w}` is not a usable scope or role name"
                ));
            }
            let scopes: Vec<&str> = r
                .all_scopes
                .iter()
                .chain(&r.any_scope)
                .map(String::as_str)
                .collect();
            rules.push(Rule {
                methods: r
                    .methods
                    .iter()
                    .map(|m| m.to_ascii_uppercase().into_bytes().into())
                    .collect(),
                challenge: scopes.join(" "),
                any_scope: r.any_scope,
                all_scopes: r.all_scopes,
                any_role: r.any_role,
                all_roles: r.all_roles,
                client_cert: r.client_cert,
            });
        }
        Ok(Authorize {
            rules,
            allow_unlisted,
        })
    }
}

impl Stage for Authorize {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        let Some(id) = &ex.identity else {
            return Verdict::Reject(
                Rejection::new(
                    401,
                    "authorize.unauthenticated",
                    "authentication is required",
                )
                .with_field("WWW-Authenticate", "Bearer"),
            );
        };
        let method = head.method_span.get(buf);
        let rule = self
            .rules
            .iter()
            .find(|r| r.methods.is_empty() || r.methods.iter().any(|m| **m == *method));
        if rule.is_some_and(|r| r.client_cert)
            && ex.tls.as_ref().is_none_or(|t| t.client_cert.is_none())
        {
            return Verdict::Reject(Rejection::new(
                403,
                "authorize.client_cert",
                "this request needs a verified TLS client certificate",
            ));
        }
        let allowed = match rule {
            Some(r) => r.allows(id),
            None => self.allow_unlisted,
        };
        if allowed {
            return Verdict::Continue;
        }
        let mut challenge = "Bearer error=\"insufficient_scope\"".to_string();
        if let Some(r) = rule.filter(|r| !r.challenge.is_empty()) {
            challenge += &format!(", scope=\"{}\"", r.challenge);
        }
        Verdict::Reject(
            Rejection::new(
                403,
                "authorize.forbidden",
                "the identity is not allowed this request",
            )
            .with_field("WWW-Authenticate", &challenge),
        )
    }
}
