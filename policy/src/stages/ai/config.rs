//! `[[route.policy]] kind = "ai"`: its tables (`[[route.policy.provider]]`,
//! `[[route.policy.model]]`) and their checked form: each provider's upstream group resolved,
//! its credential read once at load into the field lines it sends, each model's provider
//! resolved.

use std::path::Path;

use serde::Deserialize;

use super::anthropic;

/// `[[route.policy]] kind = "ai"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Largest request body read (413 beyond). Default `1MiB`.
    #[serde(default = "default_max_body")]
    pub max_body: conf::values::ByteSize,
    /// Largest answer held whole to translate, and largest streamed event. Default `4MiB`.
    #[serde(default = "default_max_response")]
    pub max_response: conf::values::ByteSize,
    /// Longest prompt, in characters of all messages' text (413 beyond). Default none.
    #[serde(default)]
    pub max_prompt_chars: Option<usize>,
    /// Regular expressions a prompt must not match (400). Default none.
    #[serde(default)]
    pub deny: Vec<String>,
    /// `[[route.policy.redact]]`: patterns replaced in prompts before they leave.
    #[serde(default)]
    pub redact: Vec<super::guard::RedactConf>,
    /// `[route.policy.prompt]`: the route is a prompt template, not a chat endpoint.
    #[serde(default)]
    pub prompt: Option<super::prompt::PromptConf>,
    /// `[route.policy.tokens]`: token limits per consumer (or other key). Default none.
    #[serde(default)]
    pub tokens: Option<super::tokens::TokensConf>,
    /// The providers answering.
    pub provider: Vec<ProviderConf>,
    /// The models clients may name, each served by one provider.
    #[serde(default)]
    pub model: Vec<ModelConf>,
}

/// `[[route.policy.provider]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConf {
    /// Its name, for models.
    pub name: String,
    /// Its API: `"openai"` (and compatible servers), `"anthropic"` or `"gemini"`.
    pub kind: String,
    /// The `[[upstream]]` group its requests go to (with `[upstream.tls]` for HTTPS).
    pub upstream: String,
    /// The path its API's endpoints are under. Default `/v1` (`/v1beta` for gemini).
    #[serde(default)]
    pub base_path: Option<String>,
    /// The environment variable holding its API key.
    #[serde(default)]
    pub key_env: Option<String>,
    /// The file holding its API key (relative to the config's directory).
    #[serde(default)]
    pub key_file: Option<String>,
}

/// `[[route.policy.model]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConf {
    /// The name clients send in `model`.
    pub name: String,
    /// The provider serving it.
    pub provider: String,
    /// The provider's name for the model. Default: `name`.
    #[serde(default)]
    pub model: Option<String>,
    /// `max_tokens` sent when the client gives none (Anthropic requires one). Default 4096.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u64,
    /// Its share among the entries with the same `name` (a split across providers).
    /// Default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Models (names of entries) tried in turn when its provider answers 429 or 5xx, or
    /// gives no answer. Default none.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// US dollars per million prompt tokens, for the estimated cost. Default 0.
    #[serde(default)]
    pub price_prompt: f64,
    /// US dollars per million completion tokens. Default 0.
    #[serde(default)]
    pub price_completion: f64,
}

fn default_weight() -> u32 {
    1
}

fn default_max_body() -> conf::values::ByteSize {
    conf::values::ByteSize(1 << 20)
}

fn default_max_response() -> conf::values::ByteSize {
    conf::values::ByteSize(4 << 20)
}

fn default_max_tokens() -> u64 {
    4096
}

/// A provider's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// OpenAI Chat Completions, and servers speaking it.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
}

/// A checked provider.
#[derive(Debug)]
pub struct Provider {
    /// Its name.
    pub name: String,
    /// Its API.
    pub kind: Kind,
    /// Index of its upstream group.
    pub upstream: usize,
    /// Its endpoints' path prefix (no trailing `/`).
    pub base: String,
    /// The fields carrying its credential (and API version), name and value.
    pub auth: Vec<(&'static str, String)>,
}

/// A checked model.
#[derive(Debug)]
pub struct Model {
    /// The name clients use.
    pub name: String,
    /// Index of its provider.
    pub provider: usize,
    /// The provider's name for it.
    pub model: String,
    /// Default `max_tokens`.
    pub max_tokens: u64,
    /// Its share of its name's requests.
    pub weight: u32,
    /// The names tried when it fails, in order.
    pub fallback: Vec<String>,
    /// Millionths of a dollar per prompt token, per completion token.
    pub price: (f64, f64),
}

impl Model {
    /// The estimated cost of `u`, in millionths of a US dollar.
    pub fn cost(&self, prompt: u64, completion: u64) -> u64 {
        let c = prompt as f64 * self.price.0 + completion as f64 * self.price.1;
        if c.is_finite() && c > 0.0 {
            c.round() as u64
        } else {
            0
        }
    }
}

fn kind(k: &str) -> Result<Kind, String> {
    match k {
        "openai" => Ok(Kind::OpenAi),
        "anthropic" => Ok(Kind::Anthropic),
        "gemini" => Ok(Kind::Gemini),
        other => Err(format!(
            "provider kind `{other}` is not one of \"openai\", \"anthropic\", \"gemini\""
        )),
    }
}

/// The API key of `p`, read from its variable or file (`None`: it has none).
fn key(p: &ProviderConf, dir: &Path) -> Result<Option<String>, String> {
    let key = match (&p.key_env, &p.key_file) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "provider `{}`: give key_env or key_file, not both",
                p.name
            ));
        }
        (Some(var), None) => std::env::var(var).map_err(|_| {
            format!(
                "provider `{}`: the environment variable `{var}` is not set",
                p.name
            )
        })?,
        (None, Some(file)) => std::fs::read_to_string(dir.join(file))
            .map_err(|e| format!("provider `{}`: key_file `{file}`: {e}", p.name))?,
        (None, None) => return Ok(None),
    };
    let key = key.trim().to_string();
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "provider `{}`: its key is empty or holds characters a field value cannot",
            p.name
        ));
    }
    Ok(Some(key))
}

fn provider(
    p: &ProviderConf,
    upstreams: &[conf::model::Upstream],
    dir: &Path,
) -> Result<Provider, String> {
    let kind = kind(&p.kind)?;
    let upstream = upstreams
        .iter()
        .position(|u| u.name == p.upstream)
        .ok_or_else(|| format!("provider `{}`: unknown upstream `{}`", p.name, p.upstream))?;
    let base = match &p.base_path {
        Some(b) if !b.starts_with('/') || b.bytes().any(|c| c <= b' ' || c == b'?') => {
            return Err(format!(
                "provider `{}`: base_path `{b}` is not a path",
                p.name
            ));
        }
        Some(b) => b.trim_end_matches('/').to_string(),
        None if kind == Kind::Gemini => "/v1beta".to_string(),
        None => "/v1".to_string(),
    };
    let key = key(p, dir)?;
    let mut auth = Vec::new();
    match (kind, key) {
        (Kind::OpenAi, Some(k)) => auth.push(("Authorization", format!("Bearer {k}"))),
        (Kind::Anthropic, Some(k)) => auth.push(("x-api-key", k)),
        (Kind::Gemini, Some(k)) => auth.push(("x-goog-api-key", k)),
        (_, None) => {}
    }
    if kind == Kind::Anthropic {
        auth.push(("anthropic-version", anthropic::VERSION.to_string()));
    }
    Ok(Provider {
        name: p.name.clone(),
        kind,
        upstream,
        base,
        auth,
    })
}

/// Checks the tables: providers and models named once, each reference resolved.
pub fn check(
    c: &Config,
    upstreams: &[conf::model::Upstream],
    dir: &Path,
) -> Result<(Vec<Provider>, Vec<Model>), String> {
    let mut providers: Vec<Provider> = Vec::with_capacity(c.provider.len());
    for p in &c.provider {
        if providers.iter().any(|q| q.name == p.name) {
            return Err(format!("provider `{}` is defined twice", p.name));
        }
        providers.push(provider(p, upstreams, dir)?);
    }
    let mut models: Vec<Model> = Vec::with_capacity(c.model.len());
    for m in &c.model {
        if m.name.is_empty() {
            return Err("a model has an empty name".into());
        }
        let price_ok = |p: f64| p.is_finite() && p >= 0.0;
        if !price_ok(m.price_prompt) || !price_ok(m.price_completion) {
            return Err(format!("model `{}`: prices must be 0 or more", m.name));
        }
        if m.weight == 0 {
            return Err(format!("model `{}`: weight must be at least 1", m.name));
        }
        let provider = providers
            .iter()
            .position(|p| p.name == m.provider)
            .ok_or_else(|| format!("model `{}`: unknown provider `{}`", m.name, m.provider))?;
        let model = m.model.clone().unwrap_or_else(|| m.name.clone());
        // Gemini's model is a path segment
        let gemini = providers
            .get(provider)
            .is_some_and(|p| p.kind == Kind::Gemini);
        let bad = |b: u8| !b.is_ascii_graphic() || gemini && b"/?#%".contains(&b);
        if model.is_empty() || model.bytes().any(bad) {
            return Err(format!("model `{}`: `{model}` is not a model name", m.name));
        }
        models.push(Model {
            name: m.name.clone(),
            provider,
            model,
            max_tokens: m.max_tokens.max(1),
            weight: m.weight,
            fallback: m.fallback.clone(),
            price: (m.price_prompt, m.price_completion),
        });
    }
    if models.is_empty() {
        return Err("offers no model: add a [[route.policy.model]]".into());
    }
    for m in &models {
        for f in &m.fallback {
            if *f == m.name || !models.iter().any(|n| n.name == *f) {
                return Err(format!(
                    "model `{}`: fallback `{f}` is not another model of this route",
                    m.name
                ));
            }
        }
    }
    Ok((providers, models))
}
