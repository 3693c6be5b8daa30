//! Scenarios: what `loadtest compare` runs, one TOML file each under `loadtest/scenarios/`
//! (built in, so `--scenario tiny` works from anywhere) or any other path.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::generator::RequestSpec;

/// Gateway features the scenarios may require, and whether shardgate has them yet. A scenario
/// naming a feature that is not built is skipped with its reason, never faked.
pub const FEATURES: &[(&str, bool)] = &[
    ("jwt", true),
    ("rate_limit", true),
    ("quota", true),
    ("cache", true),
    ("tls", true),
    ("ai", true),
    ("h2", true),
];

/// The built-in scenarios: (name, TOML text).
pub const BUILT_IN: &[(&str, &str)] = &[
    ("tiny", include_str!("../scenarios/tiny.toml")),
    ("16k", include_str!("../scenarios/16k.toml")),
    ("upload-1m", include_str!("../scenarios/upload-1m.toml")),
    ("c1000", include_str!("../scenarios/c1000.toml")),
    ("churn", include_str!("../scenarios/churn.toml")),
    ("policy", include_str!("../scenarios/policy.toml")),
    ("cache", include_str!("../scenarios/cache.toml")),
    ("tls", include_str!("../scenarios/tls.toml")),
    (
        "tls-handshake",
        include_str!("../scenarios/tls-handshake.toml"),
    ),
    ("tls-resume", include_str!("../scenarios/tls-resume.toml")),
    ("kill-target", include_str!("../scenarios/kill-target.toml")),
    ("stop-target", include_str!("../scenarios/stop-target.toml")),
    ("balance", include_str!("../scenarios/balance.toml")),
    ("access-log", include_str!("../scenarios/access-log.toml")),
    ("scrape", include_str!("../scenarios/scrape.toml")),
    ("ids-off", include_str!("../scenarios/ids-off.toml")),
    (
        "cache-shared",
        include_str!("../scenarios/cache-shared.toml"),
    ),
    ("compress", include_str!("../scenarios/compress.toml")),
    (
        "compress-cost",
        include_str!("../scenarios/compress-cost.toml"),
    ),
    ("aggregate", include_str!("../scenarios/aggregate.toml")),
    ("rate-global", include_str!("../scenarios/rate-global.toml")),
    ("quota", include_str!("../scenarios/quota.toml")),
    ("ai-stream", include_str!("../scenarios/ai-stream.toml")),
    ("analytics", include_str!("../scenarios/analytics.toml")),
    ("smoke", include_str!("../scenarios/smoke.toml")),
    ("h2", include_str!("../scenarios/h2.toml")),
];

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name (the file stem; not in the file).
    #[serde(skip)]
    pub name: String,
    /// One line on what it measures.
    pub description: String,
    /// Gateway features it needs (see `FEATURES`).
    #[serde(default)]
    pub requires: Vec<String>,
    /// The built-in origin's behaviour.
    #[serde(default)]
    pub origin: OriginConf,
    /// The load.
    #[serde(default)]
    pub load: LoadConf,
    /// The request mix (`[[request]]`); one `GET /` when absent.
    #[serde(default, rename = "request")]
    pub requests: Vec<RequestConf>,
    /// What shardgate runs beyond plain proxying.
    #[serde(default)]
    pub gateway: GatewayConf,
    /// Something done to an origin in the middle of every measured window.
    #[serde(default)]
    pub event: Option<EventConf>,
}

/// `[event]`: an origin killed (or stopped) during each measured window, and brought back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventConf {
    /// `"kill"` (SIGKILL, restarted on the same port at `back_at_s`) or `"stop"` (SIGSTOP,
    /// SIGCONT at `back_at_s`: a target that hangs rather than refuses).
    pub action: EventAction,
    /// Which origin (0-based).
    #[serde(default)]
    pub origin: usize,
    /// Seconds into the measured window.
    pub at_s: f64,
    /// Seconds into the measured window when it is back.
    pub back_at_s: f64,
}

/// What happens to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    /// SIGKILL, then a new process on the same port.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Stop,
}

/// `[gateway]`: extra shardgate configuration for this scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConf {
    /// Extra routes `/svc{i}/v1/items/{id}` to the origin, besides the catch-all.
    pub routes: usize,
    /// TOML appended to shardgate's config (e.g. global `[[policy]]` stages).
    pub config: String,
    /// HS256 secret: `{jwt}` in request header values becomes a token signed with it
    /// (`sub = "loadtest"`, valid for an hour).
    pub jwt_secret: Option<String>,
    /// TOML lines inside shardgate's `[[upstream]]` table (e.g. `balance = "round_robin"`).
    pub upstream: String,
    /// Also run shardgate without `routes`, `config` and `upstream` in the same rounds, as the baseline
    /// the ratios are taken against; nginx and HAProxy, which cannot run the same policy, are
    /// left out.
    pub against_bare: bool,
    /// With `against_bare`: TOML the baseline runs instead of nothing (the same feature
    /// set another way, e.g. a cache without `shared`). Default none.
    pub baseline: String,
    /// An admin listener (`ip:port`, set in `config`) whose `/metrics` is scraped every
    /// `scrape_every` seconds for the whole run.
    pub scrape: Option<String>,
    /// Seconds between scrapes. Default 1.
    #[serde(default = "one")]
    pub scrape_every: f64,
    /// nginx caches too (`proxy_cache`, 200s kept an hour, keyed by URI, one lock per miss);
    /// HAProxy, whose cache is another kind (memory-only, small objects), is left out.
    pub nginx_cache: bool,
    /// nginx compresses too: `gzip on` at this level for JSON of 1 KiB or more (proxied
    /// responses included, `Vary` set); HAProxy is left out.
    pub nginx_gzip: Option<u32>,
    /// A `redis-server` (Debian package) runs on a free loopback port on the load CPUs for
    /// the whole scenario, and `{redis}` in `config` and `baseline` becomes its address; the
    /// scenario is skipped, saying why, without one.
    pub redis: bool,
}

fn one() -> f64 {
    1.0
}

/// `[origin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConf {
    /// Response body bytes.
    pub size: usize,
    /// Response status.
    pub status: u16,
    /// Delay before each response, in milliseconds.
    pub latency_ms: u64,
    /// Origin processes, each its own port; every proxy balances across them.
    pub count: usize,
    /// JSON bodies (`application/json`, varied records) instead of a repeating alphabet.
    pub json: bool,
    /// Answer as an Anthropic Messages stream (server-sent events) whose text is `size`
    /// bytes, in deltas of 16.
    pub anthropic_stream: bool,
}

impl Default for OriginConf {
    fn default() -> Self {
        OriginConf {
            size: 100,
            status: 200,
            latency_ms: 0,
            count: 1,
            json: false,
            anthropic_stream: false,
        }
    }
}

/// `[load]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadConf {
    /// Concurrent connections.
    pub connections: usize,
    /// Measured seconds per round.
    pub duration_s: f64,
    /// Seconds of load before each measured window, not counted.
    pub warmup_s: f64,
    /// Total requests per second (open loop); absent for closed loop.
    pub rate: Option<f64>,
    /// Reuse connections (otherwise `Connection: close` on every request).
    pub keepalive: bool,
    /// Seconds before a request without its response counts as a timeout.
    pub timeout_s: f64,
    /// HTTPS from the generator to the proxy (one ECDSA P-256 certificate for `localhost`,
    /// TLS 1.2 and 1.3 on every proxy; plain HTTP on to the origin).
    pub tls: bool,
    /// With `tls`: resume sessions (tickets) on new connections; off, every connection is a
    /// full handshake.
    pub resume: bool,
    /// HTTP/2 from the clients (h2load; h2c, or ALPN `h2` with `tls`); HTTP/1.1 to the origin.
    pub h2: bool,
    /// With `h2`: requests in flight per connection.
    pub streams: usize,
}

impl Default for LoadConf {
    fn default() -> Self {
        LoadConf {
            connections: 64,
            duration_s: 10.0,
            warmup_s: 2.0,
            rate: None,
            keepalive: true,
            timeout_s: 10.0,
            tls: false,
            resume: true,
            h2: false,
            streams: 8,
        }
    }
}

/// `[[request]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestConf {
    /// Method.
    pub method: String,
    /// Origin-form target.
    pub path: String,
    /// Extra header fields.
    pub headers: BTreeMap<String, String>,
    /// Body size in bytes (filled with a repeating pattern).
    pub body_size: usize,
    /// The body, as it is (instead of `body_size`). Default none.
    pub body: Option<String>,
    /// Relative weight in the mix.
    pub weight: u32,
}

impl Default for RequestConf {
    fn default() -> Self {
        RequestConf {
            method: "GET".into(),
            path: "/".into(),
            headers: BTreeMap::new(),
            body_size: 0,
            body: None,
            weight: 1,
        }
    }
}

impl Scenario {
    /// Loads a built-in scenario by name, or a file by path.
    pub fn load(name_or_path: &str) -> anyhow::Result<Scenario> {
        let (name, text) = match BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            Some((n, t)) => ((*n).to_string(), (*t).to_string()),
            None => {
                let path = std::path::Path::new(name_or_path);
                let text = std::fs::read_to_string(path).with_context(|| {
                    let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                    format!(
                        "no built-in scenario {name_or_path:?} (built in: {}) and no such file",
                        names.join(", ")
                    )
                })?;
                let stem = path
                    .file_stem()
                    .map_or_else(|| name_or_path.to_string(), |s| s.to_string_lossy().into());
                (stem, text)
            }
        };
        Scenario::parse(&name, &text)
    }

    /// Parses scenario TOML; errors name the scenario, line and column.
    pub fn parse(name: &str, text: &str) -> anyhow::Result<Scenario> {
        let mut s: Scenario = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|r| {
                let before = text.get(..r.start).unwrap_or_default();
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("{line}:{col}: ")
            });
            anyhow::anyhow!("scenario {name}:{}{}", at.unwrap_or_default(), e.message())
        })?;
        s.name = name.to_string();
        anyhow::ensure!(
            s.load.connections > 0,
            "scenario {name}: connections must be > 0"
        );
        anyhow::ensure!(
            s.load.duration_s > 0.0 && s.load.warmup_s >= 0.0 && s.load.timeout_s > 0.0,
            "scenario {name}: durations must be positive"
        );
        anyhow::ensure!(
            s.origin.count >= 1,
            "scenario {name}: origin count must be ≥ 1"
        );
        if let Some(e) = &s.event {
            anyhow::ensure!(
                e.origin < s.origin.count,
                "scenario {name}: event origin {} of {} origins",
                e.origin,
                s.origin.count
            );
            anyhow::ensure!(
                0.0 <= e.at_s && e.at_s < e.back_at_s,
                "scenario {name}: event at_s must be before back_at_s"
            );
        }
        Ok(s)
    }

    /// The required features that shardgate does not have yet.
    pub fn missing(&self) -> Vec<String> {
        self.requires
            .iter()
            .filter(|f| !FEATURES.iter().any(|(n, built)| n == f && *built))
            .cloned()
            .collect()
    }

    /// The request mix as the generator takes it (`{jwt}` in header values replaced by a
    /// token signed with `gateway.jwt_secret`).
    pub fn request_specs(&self) -> Vec<RequestSpec> {
        if self.requests.is_empty() {
            return vec![RequestSpec::get("/")];
        }
        let token = self
            .gateway
            .jwt_secret
            .as_deref()
            .map(mint_jwt)
            .unwrap_or_default();
        self.requests
            .iter()
            .map(|r| RequestSpec {
                method: r.method.clone(),
                path: r.path.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.replace("{jwt}", &token)))
                    .collect(),
                body: match &r.body {
                    Some(b) => b.as_bytes().to_vec(),
                    None => (0..r.body_size).map(|i| b'a' + (i % 26) as u8).collect(),
                },
                weight: r.weight,
            })
            .collect()
    }

    /// Measured window per round.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.load.duration_s)
    }

    /// Warm-up before each window.
    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.load.warmup_s)
    }
}

/// An HS256 token for `sub = "loadtest"`, valid for an hour.
fn mint_jwt(secret: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    let claims = serde_json::json!({ "sub": "loadtest", "exp": exp });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

/// The shardgate config text a scenario adds: its extra routes, then its `config`.
pub fn gateway_extra(g: &GatewayConf) -> String {
    let mut s = String::new();
    for i in 0..g.routes {
        s += &format!(
            "\n[[route]]\nname = \"svc{i}\"\npath = \"/svc{i}/v1/items/{{id}}\"\nupstream = \"origin\"\n"
        );
    }
    s += "\n";
    s += &g.config;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_parses() {
        for (name, _) in BUILT_IN {
            // every scenario file in the folder is built in, and the other way round
            assert!(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(format!("scenarios/{name}.toml"))
                    .is_file(),
                "{name}"
            );
            let s = Scenario::load(name).unwrap();
            assert!(!s.description.is_empty(), "{name}");
            assert!(!s.request_specs().is_empty(), "{name}");
        }
    }

    #[test]
    fn unbuilt_features_are_reported_missing() {
        assert_eq!(
            Scenario::load("tiny").unwrap().missing(),
            Vec::<String>::new()
        );
        assert_eq!(
            Scenario::load("policy").unwrap().missing(),
            Vec::<String>::new()
        );
        assert_eq!(
            Scenario::load("tls").unwrap().missing(),
            Vec::<String>::new()
        );
        assert_eq!(
            Scenario::load("cache").unwrap().missing(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_policy_scenario_mints_its_token_and_routes() {
        let s = Scenario::load("policy").unwrap();
        let auth = &s.request_specs()[0].headers[0].1;
        assert!(
            auth.starts_with("Bearer ey") && auth.matches('.').count() == 2,
            "{auth}"
        );
        let extra = gateway_extra(&s.gateway);
        assert_eq!(extra.matches("[[route]]").count(), 1000);
        assert!(extra.contains("kind = \"jwt\"") && extra.contains("kind = \"rate_limit\""));
    }

    #[test]
    fn unknown_fields_are_errors_with_a_position() {
        let e = Scenario::parse("x", "description = \"d\"\n[load]\nconections = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("scenario x:3:1: unknown field `conections`"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_scenario_names_the_built_in_ones() {
        let e = Scenario::load("nope").unwrap_err().to_string();
        assert!(e.contains("tiny, 16k"), "{e}");
    }
}
