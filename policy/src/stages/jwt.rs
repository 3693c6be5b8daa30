//! JWT bearer authentication (jsonwebtoken): HS256/384/512, RS256/384/512, PS256/384/512,
//! ES256/384 and EdDSA with keys from an inline secret, a PEM file, or a JWKS file or URL (by
//! `kid`; fetched again in the background by the shard after an unknown `kid`, at most every
//! `jwks_refresh`, and a URL every `jwks_interval`; the last good set kept when a fetch fails).
//! The accepted algorithms are fixed here, never taken from the token (no `none`, no
//! HS256-with-the-RSA-public-key). `exp` is required; `nbf`/`iat` honoured with `leeway`;
//! `iss`/`aud` and other claims can be required. Selected claims go upstream as headers
//! (incoming copies dropped first), the `sub` becomes the identity, scopes and roles feed
//! authorization. Verified tokens are cached per shard (bounded LRU keyed by the token's
//! SHA-256, expiring with `exp`), so a repeated token skips signature verification.
//! A token given more than once (two Authorization fields, a cookie or parameter repeated,
//! or more than one of the `token_from` places) is refused with 400 and `error=
//! "invalid_request"` (RFC 6750 §2 and §3.1), not 401: the request is malformed, and the
//! same credentials sent again cannot help.
//!
//! ```toml
//! [[route.policy]]
//! kind = "jwt"
//! algorithms = ["RS256"]
//! public_key_file = "keys/issuer.pem"
//! issuer = ["https://auth.example.com"]
//! audience = ["api"]
//! forward_claims = { sub = "X-Consumer-Id" }
//! ```

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use proto::{Repeated, RequestHead};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::exchange::{Exchange, Identity};
use crate::lru::Lru;
use crate::stage::{Rejection, Stage, StageBuild, StageContext, Verdict};
use crate::task::{Job, Next, Task, Wake};

/// `[[route.policy]] kind = "jwt"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Accepted algorithms (all of one key family per key source). Required.
    pub algorithms: Vec<String>,
    /// HMAC secret (HS*), as text.
    #[serde(default)]
    pub secret: Option<String>,
    /// HMAC secret (HS*), base64.
    #[serde(default)]
    pub secret_base64: Option<String>,
    /// PEM public key (RS*, PS*, ES*, EdDSA), relative to the config file.
    #[serde(default)]
    pub public_key_file: Option<String>,
    /// JWKS document (`{"keys": [...]}`), relative to the config file; keys chosen by `kid`.
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// JWKS served over HTTP(S) (`https://host[:port]/path`; the host is resolved once at
    /// start): fetched by each shard in the background every `jwks_interval`, and soon after
    /// a token names an unknown `kid`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// An OpenID Connect issuer (`https://host[:port]/path`, resolved once at start): its
    /// metadata (`/.well-known/openid-configuration` under it) names the JWKS, fetched then as
    /// a `jwks_url` is; `issuer` defaults to it. The JWKS must be on the issuer's own host.
    #[serde(default)]
    pub oidc_issuer: Option<String>,
    /// CA bundle (PEM, relative to the config file) an `https` jwks_url is verified against.
    /// Default: the public web PKI roots.
    #[serde(default)]
    pub jwks_ca: Option<String>,
    /// The key id of a `secret`/`public_key_file` key: a token must then name it in `kid`.
    /// Unset (or ""), such a key ignores the token's `kid` (one key: nothing to choose).
    #[serde(default)]
    pub kid: Option<String>,
    /// How often `jwks_url` is fetched. Default "5m".
    #[serde(default = "default_interval")]
    pub jwks_interval: conf::Duration,
    /// Least time between two unscheduled refreshes (`jwks_file` re-read, `jwks_url` fetch)
    /// caused by unknown `kid`s. Default "30s".
    #[serde(default = "default_refresh")]
    pub jwks_refresh: conf::Duration,
    /// Accepted `iss` values; when given, `iss` is required. Default: any.
    #[serde(default)]
    pub issuer: Vec<String>,
    /// Accepted `aud` values; when given, `aud` is required. Default: any.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`. Default "30s".
    #[serde(default = "default_leeway")]
    pub leeway: conf::Duration,
    /// Claims that must be present (besides `exp`). Default: none.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Where the token is read, first found wins: "header:Authorization" (the Bearer scheme),
    /// "header:NAME" (the whole value), "cookie:NAME", "query:NAME" (removed before
    /// forwarding). Default ["header:Authorization"].
    #[serde(default = "default_token_from")]
    pub token_from: Vec<String>,
    /// Claims sent upstream as headers, `{ claim = "Header-Name" }`; incoming copies of those
    /// headers are dropped. Default { sub = "X-Consumer-Id" }.
    #[serde(default = "default_forward")]
    pub forward_claims: BTreeMap<String, String>,
    /// Dotted path of the roles claim (e.g. "realm_access.roles"). Default: none.
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// Verified tokens cached per shard; 0 disables the cache. Default 10000.
    #[serde(default = "default_cache")]
    pub cache_size: usize,
    /// Longer tokens are refused unread. Default 8192.
    #[serde(default = "default_max_token")]
    pub max_token_bytes: usize,
}

fn default_refresh() -> conf::Duration {
    conf::Duration(Duration::from_secs(30))
}
fn default_interval() -> conf::Duration {
    conf::Duration(Duration::from_secs(300))
}
fn default_leeway() -> conf::Duration {
    conf::Duration(Duration::from_secs(30))
}
fn default_token_from() -> Vec<String> {
    vec!["header:Authorization".into()]
}
fn default_forward() -> BTreeMap<String, String> {
    BTreeMap::from([("sub".to_string(), "X-Consumer-Id".to_string())])
}
fn default_cache() -> usize {
    10_000
}
fn default_max_token() -> usize {
    8192
}

/// Where a token is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Bearer,
    Header(Box<[u8]>),
    Cookie(Box<[u8]>),
    Query(Box<[u8]>),
}

/// A verification key and the validation its family uses.
struct Key {
    kid: Option<String>,
    key: DecodingKey,
    validation: Rc<Validation>,
}

/// Keys from one source, replaced whole when a JWKS is fetched again.
struct KeySet {
    keys: Vec<Key>,
}

/// A cached verification.
struct Verified {
    digest: [u8; 32],
    exp: u64,
    nbf: u64,
    identity: Rc<Identity>,
    forward: Rc<[u8]>,
}

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Connect plus whole-answer deadline of a `jwks_url` fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// When a failed `jwks_url` fetch is tried again (at the latest: `jwks_interval`).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// Where a JWKS comes from again after the stage was built.
#[derive(Debug)]
enum Origin {
    /// `jwks_url`: fetched at start, every `interval`, and when asked.
    Url {
        addr: std::net::SocketAddr,
        host: Rc<str>,
        path: Rc<str>,
        interval: Duration,
        /// `https`, with this CA bundle (or the web roots).
        tls: Option<Option<Rc<std::path::PathBuf>>>,
    },
    /// `jwks_file`: read again when asked.
    File(Rc<std::path::PathBuf>),
}

/// The background task that keeps a JWKS fresh: the shard runs the job it names and hands
/// the document back (`Task::done`); the stage asks for a refresh after an unknown `kid`.
pub struct JwksSource {
    origin: Origin,
    keys: Rc<RefCell<KeySet>>,
    validations: Vec<(jsonwebtoken::AlgorithmFamily, Rc<Validation>)>,
    /// Least time between two refreshes asked for by unknown `kid`s.
    refresh: Duration,
    /// When a refresh was last asked for.
    asked_at: Cell<Option<Instant>>,
    /// When the last fetch ended.
    fetched_at: Cell<Option<Instant>>,
    /// A refresh was asked for and has not run yet.
    wanted: Cell<bool>,
    /// When the next scheduled fetch is due (`None` before the first).
    due: Cell<Option<Instant>>,
    wake: Wake,
    /// `oidc_issuer`: the URL's path is the issuer's, its metadata names the JWKS's path.
    discovery: Option<Discovery>,
}

/// What OIDC discovery found for a `JwksSource`.
#[derive(Debug)]
struct Discovery {
    /// The issuer, as configured (the metadata must name it).
    issuer: String,
    /// The JWKS's path, once the metadata named it (forgotten when a JWKS fetch fails).
    jwks: RefCell<Option<Rc<str>>>,
    /// The job out now is the metadata's.
    asking: Cell<bool>,
}

impl JwksSource {
    /// Asks for a refresh (an unknown `kid` at `now`), at most once per `refresh` and not
    /// within `refresh` of the last fetch.
    fn ask(&self, now: Instant) {
        let recent =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < self.refresh);
        if recent(self.asked_at.get()) || recent(self.fetched_at.get()) {
            return;
        }
        self.asked_at.set(Some(now));
        self.wanted.set(true);
        self.wake.raise();
    }

    fn job(&self) -> Job {
        match &self.origin {
            Origin::Url {
                addr,
                host,
                path,
                tls,
                ..
            } => Job::HttpGet {
                addr: *addr,
                host: host.clone(),
                tls: tls.is_some(),
                ca: tls.clone().flatten(),
                path: self.path(path),
                max_bytes: MAX_JWKS_BYTES,
                timeout: FETCH_TIMEOUT,
            },
            Origin::File(path) => Job::ReadFile {
                path: path.clone(),
                max_bytes: MAX_JWKS_BYTES,
            },
        }
    }
}

impl JwksSource {
    /// The path to fetch: the JWKS's (`jwks_url`'s, or the one discovery found), else the
    /// issuer's metadata (marked as asked).
    fn path(&self, configured: &Rc<str>) -> Rc<str> {
        let Some(d) = &self.discovery else {
            return configured.clone();
        };
        if let Some(p) = d.jwks.borrow().as_ref() {
            return p.clone();
        }
        d.asking.set(true);
        Rc::from(crate::oidc::well_known(configured))
    }

    /// Takes the metadata's answer: the JWKS's path, fetched at once.
    fn discovered(
        &self,
        d: &Discovery,
        result: Result<Vec<u8>, String>,
        now: Instant,
    ) -> Result<String, String> {
        match result.and_then(|body| crate::oidc::endpoint_path(&body, &d.issuer, "jwks_uri")) {
            Ok(p) => {
                let said = format!("OIDC metadata names jwks_uri path {p}");
                *d.jwks.borrow_mut() = Some(Rc::from(p));
                self.due.set(Some(now));
                Ok(said)
            }
            Err(e) => {
                self.due.set(Some(now + RETRY_AFTER_FAILURE));
                Err(e)
            }
        }
    }
}

impl Task for JwksSource {
    fn describe(&self) -> String {
        match &self.origin {
            Origin::Url {
                host, path, tls, ..
            } => {
                let scheme = if tls.is_some() { "https" } else { "http" };
                let what = if self.discovery.is_some() {
                    "oidc_issuer"
                } else {
                    "jwks_url"
                };
                format!("{what} {scheme}://{host}{path}")
            }
            Origin::File(p) => format!("jwks_file {}", p.display()),
        }
    }

    fn next(&self, now: Instant) -> Next {
        if self.wanted.replace(false) {
            return Next::Run(self.job());
        }
        match &self.origin {
            Origin::Url { .. } => match self.due.get() {
                Some(due) if now < due => Next::Sleep(Some(due)),
                _ => Next::Run(self.job()),
            },
            Origin::File(_) => Next::Sleep(None),
        }
    }

    fn done(&self, result: Result<Vec<u8>, String>, now: Instant) -> Result<String, String> {
        if let Some(d) = &self.discovery
            && d.asking.replace(false)
        {
            return self.discovered(d, result, now);
        }
        self.fetched_at.set(Some(now));
        let keys = match result.and_then(|body| parse_jwks(&body)) {
            Ok(k) => k,
            Err(e) => {
                // the issuer may have moved its keys: look at its metadata again
                if let Some(d) = &self.discovery {
                    *d.jwks.borrow_mut() = None;
                }
                // a failed fetch is tried again soon (the last good keys stay meanwhile)
                if let Origin::Url { interval, .. } = &self.origin {
                    self.due
                        .set(Some(now + (*interval).min(RETRY_AFTER_FAILURE)));
                }
                return Err(e);
            }
        };
        if let Origin::Url { interval, .. } = &self.origin {
            self.due.set(Some(now + *interval));
        }
        let keys = with_validations(keys, &self.validations);
        let n = keys.len();
        self.keys.borrow_mut().keys = keys;
        Ok(format!("{n} keys"))
    }

    fn wake(&self) -> &Wake {
        &self.wake
    }
}

/// The stage.
pub struct Jwt {
    algorithms: Vec<Algorithm>,
    source: Option<Rc<JwksSource>>,
    /// The key is a secret or PEM key (not a JWKS): a token's `kid` selects nothing.
    one_key: bool,
    keys: Rc<RefCell<KeySet>>,
    required: Vec<String>,
    leeway: u64,
    sources: Vec<Source>,
    forward: Vec<(String, Box<[u8]>)>,
    roles_claim: Vec<String>,
    cache: Option<RefCell<Lru<Verified>>>,
    max_token: usize,
}

impl StageBuild for Jwt {
    const KIND: &'static str = "jwt";
    type Config = Config;

    fn build(mut c: Config, ctx: &StageContext<'_>) -> Result<Jwt, String> {
        // "" means unset, so the documented example can list every source
        for s in [
            &mut c.secret,
            &mut c.secret_base64,
            &mut c.public_key_file,
            &mut c.jwks_file,
            &mut c.jwks_url,
            &mut c.oidc_issuer,
            &mut c.jwks_ca,
            &mut c.kid,
        ] {
            if s.as_deref() == Some("") {
                *s = None;
            }
        }
        // tokens of an OIDC issuer name it (OIDC Core §2)
        if let Some(i) = &c.oidc_issuer
            && c.issuer.is_empty()
        {
            c.issuer = vec![i.clone()];
        }
        let mut algorithms = Vec::new();
        for a in &c.algorithms {
            let alg: Algorithm = a.parse().map_err(|_| {
                format!("unknown algorithm `{a}`: expected HS256/384/512, RS256/384/512, PS256/384/512, ES256/384 or EdDSA")
            })?;
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err("algorithms must name at least one algorithm".into());
        }
        let mut validations = Vec::new();
        for alg in &algorithms {
            let family = alg.family();
            if validations.iter().any(|(f, _)| *f == family) {
                continue;
            }
            let mut v = Validation::new(*alg);
            v.algorithms = algorithms
                .iter()
                .copied()
                .filter(|a| a.family() == family)
                .collect();
            v.leeway = c.leeway.0.as_secs();
            // exp and nbf are checked against the exchange's time (`check_times`), never
            // against a clock read inside the hook; their presence is still required here
            v.validate_exp = false;
            v.validate_nbf = false;
            let mut spec = vec!["exp".to_string()];
            if !c.issuer.is_empty() {
                v.set_issuer(&c.issuer);
                spec.push("iss".into());
            }
            if c.audience.is_empty() {
                v.validate_aud = false;
            } else {
                v.set_audience(&c.audience);
                spec.push("aud".into());
            }
            spec.extend(
                c.required_claims
                    .iter()
                    .filter(|r| ["nbf", "sub"].contains(&r.as_str()))
                    .cloned(),
            );
            v.set_required_spec_claims(&spec);
            validations.push((family, Rc::new(v)));
        }
        let sources_given = [
            c.secret.is_some(),
            c.secret_base64.is_some(),
            c.public_key_file.is_some(),
            c.jwks_file.is_some(),
            c.jwks_url.is_some(),
            c.oidc_issuer.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if sources_given != 1 {
            return Err(
                "give exactly one of secret, secret_base64, public_key_file, jwks_file, jwks_url, oidc_issuer"
                    .into(),
            );
        }
        let mut keys = Vec::new();
        let mut origin = None;
        let kid = c.kid.clone();
        if let Some(s) = &c.secret {
            keys.push((kid, DecodingKey::from_secret(s.as_bytes())));
        } else if let Some(s) = &c.secret_base64 {
            keys.push((
                kid,
                DecodingKey::from_base64_secret(s).map_err(|e| format!("secret_base64: {e}"))?,
            ));
        } else if let Some(f) = &c.public_key_file {
            let path = ctx.dir.join(f);
            let pem =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            keys.push((
                kid,
                pem_key(&pem, &algorithms).map_err(|e| format!("{}: {e}", path.display()))?,
            ));
        } else if c.kid.is_some() {
            return Err(
                "kid names the key of `secret` or `public_key_file`; a JWKS names its own keys"
                    .into(),
            );
        } else if let Some(f) = &c.jwks_file {
            let path = ctx.dir.join(f);
            keys = read_jwks(&path)?;
            origin = Some(Origin::File(Rc::new(path)));
        } else if let Some(url) = c.jwks_url.as_ref().or(c.oidc_issuer.as_ref()) {
            let what = if c.jwks_url.is_some() {
                "jwks_url"
            } else {
                "oidc_issuer"
            };
            let (addr, host, path, https) = crate::http_url::parse(what, url)?;
            // OIDC Discovery §4: the metadata comes over TLS (plain HTTP on loopback only)
            if c.oidc_issuer.is_some() && !https && !addr.ip().is_loopback() {
                return Err("oidc_issuer must be https:// (plain http only on loopback)".into());
            }
            let ca = c.jwks_ca.as_deref().filter(|p| !p.is_empty());
            if ca.is_some() && !https {
                return Err("jwks_ca is for an https jwks_url".into());
            }
            let tls = https.then(|| ca.map(|p| Rc::new(ctx.dir.join(p))));
            origin = Some(Origin::Url {
                tls,
                addr,
                host: Rc::from(host),
                path: Rc::from(path),
                interval: c.jwks_interval.0.max(Duration::from_secs(1)),
            });
        }
        let keys = with_validations(keys, &validations);
        if keys.is_empty() && c.jwks_url.is_none() && c.oidc_issuer.is_none() {
            return Err("no key matches the accepted algorithms".into());
        }
        let one_key = origin.is_none();
        let keys = Rc::new(RefCell::new(KeySet { keys }));
        let source = origin.map(|origin| {
            Rc::new(JwksSource {
                origin,
                keys: keys.clone(),
                validations: validations.clone(),
                refresh: c.jwks_refresh.0,
                asked_at: Cell::new(None),
                fetched_at: Cell::new(None),
                wanted: Cell::new(false),
                due: Cell::new(None),
                wake: Wake::default(),
                discovery: c.oidc_issuer.as_ref().map(|issuer| Discovery {
                    issuer: issuer.clone(),
                    jwks: RefCell::new(None),
                    asking: Cell::new(false),
                }),
            })
        });
        let mut sources = Vec::new();
        for s in &c.token_from {
            let (kind, name) = s.split_once(':').unwrap_or((s, ""));
            if !proto::chars::is_token(name.as_bytes()) {
                return Err(format!(
                    "token_from `{s}`: expected header:NAME, cookie:NAME or query:NAME"
                ));
            }
            sources.push(match kind {
                "header" if name.eq_ignore_ascii_case("authorization") => Source::Bearer,
                "header" => Source::Header(name.as_bytes().into()),
                "cookie" => Source::Cookie(name.as_bytes().into()),
                "query" => Source::Query(name.as_bytes().into()),
                _ => {
                    return Err(format!(
                        "token_from `{s}`: expected header:NAME, cookie:NAME or query:NAME"
                    ));
                }
            });
        }
        if sources.is_empty() {
            return Err("token_from must name at least one place".into());
        }
        let mut forward = Vec::new();
        for (claim, header) in &c.forward_claims {
            if !proto::chars::is_token(header.as_bytes()) {
                return Err(format!(
                    "forward_claims.{claim}: `{header}` is not a header name"
                ));
            }
            forward.push((claim.clone(), header.as_bytes().into()));
        }
        Ok(Jwt {
            algorithms,
            source,
            one_key,
            keys,
            required: c.required_claims,
            leeway: c.leeway.0.as_secs(),
            sources,
            forward,
            roles_claim: c
                .roles_claim
                .map(|p| p.split('.').map(str::to_string).collect())
                .unwrap_or_default(),
            cache: (c.cache_size > 0).then(|| RefCell::new(Lru::new(c.cache_size))),
            max_token: c.max_token_bytes.max(16),
        })
    }
}

/// A PEM public key of the family the algorithms name.
fn pem_key(pem: &[u8], algorithms: &[Algorithm]) -> Result<DecodingKey, String> {
    use jsonwebtoken::AlgorithmFamily as F;
    let family = algorithms
        .first()
        .map(|a| a.family())
        .ok_or("no algorithm")?;
    let key = match family {
        F::Rsa => DecodingKey::from_rsa_pem(pem),
        F::Ec => DecodingKey::from_ec_pem(pem),
        F::Ed => DecodingKey::from_ed_pem(pem),
        F::Hmac => return Err("HS* algorithms take `secret`, not a PEM file".into()),
    };
    key.map_err(|e| format!("not a usable {family:?} public key: {e}"))
}

fn read_jwks(path: &std::path::Path) -> Result<Vec<(Option<String>, DecodingKey)>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_jwks(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse_jwks(text: &[u8]) -> Result<Vec<(Option<String>, DecodingKey)>, String> {
    let set: JwkSet =
        serde_json::from_slice(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let key =
            DecodingKey::from_jwk(jwk).map_err(|e| format!("key {:?}: {e}", jwk.common.key_id))?;
        keys.push((jwk.common.key_id.clone(), key));
    }
    Ok(keys)
}

/// Keys whose family an accepted algorithm uses, each with that family's validation.
fn with_validations(
    keys: Vec<(Option<String>, DecodingKey)>,
    validations: &[(jsonwebtoken::AlgorithmFamily, Rc<Validation>)],
) -> Vec<Key> {
    keys.into_iter()
        .filter_map(|(kid, key)| {
            let validation = validations
                .iter()
                .find(|(f, _)| *f == key.family())?
                .1
                .clone();
            Some(Key {
                kid,
                key,
                validation,
            })
        })
        .collect()
}

/// RFC 7515 §4.1.11: `crit` lists header parameters the recipient must understand, and this
/// stage understands no extension, so a token with `crit` is refused — whatever the list
/// holds (empty, a registered name, a name twice, a parameter that is absent: each invalid
/// on its own as well). RFC 7797's `b64: false` (an unencoded payload) is refused too.
fn check_extensions(token: &str) -> Result<(), Verdict<'static>> {
    use base64::Engine;
    let refuse = || {
        invalid(
            "jwt.extension",
            "token uses a header extension not supported",
        )
    };
    let encoded = token.split('.').next().unwrap_or_default();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| invalid("jwt.malformed", "malformed token"))?;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&json).map_err(|_| invalid("jwt.malformed", "malformed token"))?;
    if header.contains_key("crit") || header.get("b64").is_some_and(|b| b != &Value::Bool(true)) {
        return Err(refuse());
    }
    Ok(())
}

/// RFC 7519 §4.1.4/§4.1.5: refuses a token expired or not yet valid at `now` (Unix
/// seconds), allowing `leeway` either way.
fn check_times(claims: &Value, now: u64, leeway: u64) -> Result<(), Verdict<'static>> {
    let secs = |name: &str| match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid("jwt.malformed", "malformed token")),
    };
    let (now, leeway) = (now as f64, leeway as f64);
    if secs("exp")?.is_some_and(|exp| exp < now - leeway) {
        return Err(invalid("jwt.expired", "token expired"));
    }
    if secs("nbf")?.is_some_and(|nbf| nbf > now + leeway) {
        return Err(invalid("jwt.not_yet_valid", "token not yet valid"));
    }
    Ok(())
}

/// The value of cookie `name` across every Cookie field; `Err` when it appears twice.
fn cookie<'b>(
    head: &RequestHead,
    buf: &'b [u8],
    name: &[u8],
) -> Result<Option<&'b [u8]>, Repeated> {
    let mut found = None;
    let pairs = head
        .fields
        .iter()
        .filter(|f| f.name.get(buf).eq_ignore_ascii_case(b"cookie"))
        .flat_map(|f| f.value.get(buf).split(|&b| b == b';'));
    for pair in pairs {
        let pair = proto::chars::trim_ows(pair);
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (k, v) = pair.split_at(eq);
        if k == name {
            if found.is_some() {
                return Err(Repeated);
            }
            found = Some(v.get(1..).unwrap_or_default());
        }
    }
    Ok(found)
}

/// 401 with the RFC 6750 challenge.
fn invalid(reason: &'static str, description: &'static str) -> Verdict<'static> {
    Verdict::Reject(Rejection::new(401, reason, description).with_field(
        "WWW-Authenticate",
        &format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
    ))
}

impl Jwt {
    /// The token (borrowed from the head, or decoded from the query, whose edit then strips
    /// it). `Err` when it is given more than once: a repeated field, cookie or parameter, or
    /// more than one of the configured places (RFC 6750 §2: a client MUST NOT use more than
    /// one method to send the token; a request that repeats it is `invalid_request`, §3.1).
    fn token<'b>(
        &self,
        head: &RequestHead,
        buf: &'b [u8],
        ex: &mut Exchange,
    ) -> Result<Option<Cow<'b, [u8]>>, Repeated> {
        let mut found = None;
        for s in &self.sources {
            let here = match s {
                Source::Bearer => head.only_value_of(buf, b"authorization")?.and_then(|v| {
                    let (scheme, rest) = v.split_at(v.iter().position(|&b| b == b' ')?);
                    scheme
                        .eq_ignore_ascii_case(b"bearer")
                        .then(|| Cow::Borrowed(proto::chars::trim_ows(rest)))
                }),
                Source::Header(name) => head.only_value_of(buf, name)?.map(Cow::Borrowed),
                Source::Cookie(name) => cookie(head, buf, name)?.map(Cow::Borrowed),
                Source::Query(name) => {
                    crate::query::take_param(head, buf, name, &mut ex.edits)?.map(Cow::Owned)
                }
            };
            if here.is_some() {
                if found.is_some() {
                    return Err(Repeated);
                }
                found = here;
            }
        }
        Ok(found)
    }

    /// The key for a token's `kid`. An unknown `kid` asks the background task for a fresh
    /// key set (this token is refused meanwhile).
    fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now: Instant,
    ) -> Option<(DecodingKey, Rc<Validation>)> {
        let set = self.keys.borrow();
        let fits = |k: &&Key| k.validation.algorithms.contains(&alg);
        // a secret or PEM key: the token's kid selects nothing unless `kid` is configured,
        // and then the token must name it
        let found = match kid {
            _ if self.one_key => set
                .keys
                .iter()
                .filter(fits)
                .find(|k| k.kid.is_none() || k.kid.as_deref() == kid),
            Some(kid) => set
                .keys
                .iter()
                .filter(fits)
                .find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut candidates = set.keys.iter().filter(fits);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        };
        if let Some(k) = found {
            return Some((k.key.clone(), k.validation.clone()));
        }
        if kid.is_some()
            && let Some(source) = &self.source
        {
            source.ask(now);
        }
        None
    }

    fn verify(&self, token: &[u8], ex: &Exchange) -> Result<Verified, Verdict<'static>> {
        let text =
            std::str::from_utf8(token).map_err(|_| invalid("jwt.malformed", "malformed token"))?;
        let header = jsonwebtoken::decode_header(text)
            .map_err(|_| invalid("jwt.malformed", "malformed token"))?;
        check_extensions(text)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(invalid("jwt.algorithm", "algorithm not accepted"));
        }
        let (key, validation) = self
            .key_for(header.kid.as_deref(), header.alg, ex.now)
            .ok_or_else(|| invalid("jwt.unknown_key", "no key for this token"))?;
        let data =
            jsonwebtoken::decode::<Value>(text, &key, &validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => invalid("jwt.expired", "token expired"),
                ErrorKind::ImmatureSignature => invalid("jwt.not_yet_valid", "token not yet valid"),
                ErrorKind::InvalidIssuer => invalid("jwt.issuer", "issuer not accepted"),
                ErrorKind::InvalidAudience => invalid("jwt.audience", "audience not accepted"),
                ErrorKind::InvalidSignature => {
                    invalid("jwt.signature", "signature does not verify")
                }
                ErrorKind::InvalidAlgorithm => invalid("jwt.algorithm", "algorithm not accepted"),
                ErrorKind::MissingRequiredClaim(_) => {
                    invalid("jwt.claims", "a required claim is missing")
                }
                _ => invalid("jwt.malformed", "malformed token"),
            })?;
        let claims = data.claims;
        check_times(&claims, ex.unix_secs(), self.leeway)?;
        if self
            .required
            .iter()
            .any(|c| claims.get(c).is_none_or(Value::is_null))
        {
            return Err(invalid("jwt.claims", "a required claim is missing"));
        }
        let text_of = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let list = |v: Option<&Value>| -> Rc<[Box<str>]> {
            match v {
                Some(Value::String(s)) => s.split_whitespace().map(Box::from).collect(),
                Some(Value::Array(a)) => a.iter().filter_map(text_of).map(Box::from).collect(),
                _ => Rc::from(Vec::new()),
            }
        };
        let roles = if self.roles_claim.is_empty() {
            None
        } else {
            self.roles_claim.iter().try_fold(&claims, |v, k| v.get(k))
        };
        let identity = Identity {
            consumer: Rc::from(claims.get("sub").and_then(text_of).unwrap_or_default()),
            scopes: list(claims.get("scope").or_else(|| claims.get("scp"))),
            roles: list(roles),
            claims: claims
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((Box::from(k.as_str()), Box::from(text_of(v)?))))
                .collect(),
        };
        let mut forward = Vec::new();
        for (claim, header) in &self.forward {
            if let Some(v) = claims.get(claim).and_then(text_of)
                && v.bytes().all(proto::chars::is_field_value)
            {
                proto::write::put_field(&mut forward, header, v.as_bytes());
            }
        }
        let secs = |name: &str| claims.get(name).and_then(Value::as_u64);
        Ok(Verified {
            digest: [0; 32],
            exp: secs("exp").unwrap_or(0),
            nbf: secs("nbf").unwrap_or(0),
            identity: Rc::new(identity),
            forward: Rc::from(forward),
        })
    }
}

impl Stage for Jwt {
    fn tasks(&self) -> Vec<Rc<dyn Task>> {
        match &self.source {
            Some(s) => vec![s.clone() as Rc<dyn Task>],
            None => Vec::new(),
        }
    }

    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        // incoming copies of the headers this stage sets never reach the upstream
        for (i, f) in head.fields.iter().enumerate() {
            let name = f.name.get(buf);
            if self
                .forward
                .iter()
                .any(|(_, h)| name.eq_ignore_ascii_case(h))
            {
                ex.edits.fields.drop_field(i);
            }
        }
        let token = match self.token(head, buf, ex) {
            Ok(t) => t,
            Err(Repeated) => {
                return Verdict::Reject(
                    Rejection::new(400, "jwt.ambiguous", "the token is given more than once")
                        .with_field("WWW-Authenticate", "Bearer error=\"invalid_request\""),
                );
            }
        };
        let Some(token) = token else {
            return Verdict::Reject(
                Rejection::new(401, "jwt.missing", "a bearer token is required")
                    .with_field("WWW-Authenticate", "Bearer"),
            );
        };
        if token.len() > self.max_token {
            return invalid("jwt.too_long", "token too long");
        }
        // the cache is keyed by the token's SHA-256: hashed only when there is a cache
        let cached_key = self.cache.as_ref().map(|c| {
            let digest: [u8; 32] = Sha256::digest(&token).into();
            let key = u64::from_le_bytes(digest.first_chunk::<8>().copied().unwrap_or_default());
            (c, key, digest)
        });
        let hit = cached_key.and_then(|(c, key, digest)| {
            let now_unix = ex.unix_secs();
            let mut c = c.borrow_mut();
            let hit = c.get(key).filter(|v| v.digest == digest)?;
            if hit.exp.saturating_add(self.leeway) <= now_unix
                || hit.nbf > now_unix.saturating_add(self.leeway)
            {
                return None;
            }
            Some((hit.identity.clone(), hit.forward.clone()))
        });
        let (identity, forward) = match hit {
            Some(hit) => hit,
            None => {
                let mut v = match self.verify(&token, ex) {
                    Ok(v) => v,
                    Err(refusal) => return refusal,
                };
                let out = (v.identity.clone(), v.forward.clone());
                if let Some((c, key, digest)) = cached_key {
                    v.digest = digest;
                    c.borrow_mut().insert(key, v);
                }
                out
            }
        };
        ex.edits.fields.add.extend_from_slice(&forward);
        ex.identity = Some(identity);
        Verdict::Continue
    }
}
