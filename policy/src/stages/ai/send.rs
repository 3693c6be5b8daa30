//! What a client asked (a chat, or embeddings), read from its request, and that request
//! translated for one provider: the body and the target it goes to.

use serde_json::Value;

use super::chat::{Bad, Chat};
use super::config::{Kind, Model, Provider};
use super::embeddings::{self, Embed};
use super::{anthropic, gemini, openai};

/// A request, read.
#[derive(Debug, Clone, PartialEq)]
pub enum Asked {
    /// Chat Completions.
    Chat(Chat),
    /// Embeddings.
    Embed(Embed),
}

impl Asked {
    /// Reads the request `v` sent to `target` (embeddings when its path ends in
    /// `/embeddings`, else a chat).
    pub fn read(v: &Value, target: &[u8]) -> Result<Asked, Bad> {
        let (path, _) = proto::path::split_query(target);
        if path.ends_with(b"/embeddings") {
            Embed::read(v).map(Asked::Embed)
        } else {
            Chat::read(v).map(Asked::Chat)
        }
    }

    /// The model the client named.
    pub fn model(&self) -> &str {
        match self {
            Asked::Chat(c) => &c.model,
            Asked::Embed(e) => &e.model,
        }
    }

    /// Characters of its text.
    pub fn chars(&self) -> usize {
        match self {
            Asked::Chat(c) => c.chars(),
            Asked::Embed(e) => e.chars(),
        }
    }

    /// Whether it asks for a stream.
    pub fn stream(&self) -> bool {
        matches!(self, Asked::Chat(c) if c.stream)
    }

    /// Whether it asks for the usage chunk.
    pub fn include_usage(&self) -> bool {
        matches!(self, Asked::Chat(c) if c.include_usage)
    }
}

/// The provider's request for `asked` (the client's JSON `v`) to model entry `m`: its body
/// and target.
pub fn translate(
    v: &Value,
    asked: &Asked,
    m: &Model,
    p: &Provider,
) -> Result<(Vec<u8>, String), Bad> {
    let json = |v: Value| serde_json::to_vec(&v).unwrap_or_default();
    let (body, target) = match (asked, p.kind) {
        (Asked::Chat(c), Kind::OpenAi) => (
            openai::request(v, &m.model, c.stream),
            format!("{}/chat/completions", p.base),
        ),
        (Asked::Chat(c), Kind::Anthropic) => (
            json(anthropic::request(c, &m.model, m.max_tokens)?),
            format!("{}/messages", p.base),
        ),
        (Asked::Chat(c), Kind::Gemini) => (
            json(gemini::request(c)?),
            gemini::target(&p.base, &m.model, c.stream),
        ),
        (Asked::Embed(_), Kind::OpenAi) => (
            openai::request(v, &m.model, false),
            format!("{}/embeddings", p.base),
        ),
        (Asked::Embed(e), Kind::Gemini) => (
            json(embeddings::gemini_request(e, &m.model)?),
            embeddings::gemini_target(&p.base, &m.model),
        ),
        (Asked::Embed(_), Kind::Anthropic) => {
            return Err(format!(
                "model `{}`: its provider `{}` (anthropic) has no embeddings",
                m.name, p.name
            ));
        }
    };
    Ok((body, target))
}
