//! The AI gateway stage: one OpenAI-compatible Chat Completions endpoint over many model
//! providers. The client's request (read whole, up to `max_body`) names one of the route's
//! models; it goes to that model's provider translated into the provider's API
//! (`anthropic.rs`, `gemini.rs`, or as it came for OpenAI-compatible servers, `openai.rs`)
//! with the provider's credential from the config (the client's credentials never leave),
//! to the provider's upstream group (so its TLS, pool, retries and breakers apply). The
//! answer comes back in OpenAI's format: whole, or streamed event by event (`flow.rs`).
//! Put it last in the route's list: the stages before it see the client's request.
//!
//! ```toml
//! [[route.policy]]
//! kind = "ai"
//! [[route.policy.provider]]
//! name = "claude"
//! kind = "anthropic"
//! upstream = "anthropic"
//! key_env = "ANTHROPIC_API_KEY"
//! [[route.policy.model]]
//! name = "fast"
//! provider = "claude"
//! model = "claude-haiku-4-5"
//! ```

pub mod aim;
pub mod answer;
pub mod anthropic;
pub mod chat;
pub mod config;
pub mod embeddings;
pub mod flow;
pub mod gemini;
pub mod guard;
pub mod openai;
pub mod prompt;
pub mod routing;
pub mod send;
pub mod sse;
pub mod tokens;
pub mod usage;

use std::cell::Cell;

use proto::{RequestHead, ResponseHead};
use serde_json::Value;

use crate::cache::entry::values;
use crate::cache::table::bump;
use std::rc::Rc;

use crate::exchange::{Exchange, TokenUsage};
use crate::slots::{Slots, counted};
use crate::stage::{BodyTap, Figure, Piece, Rejection, Stage, StageBuild, StageContext, Verdict};
use answer::Ids;
use config::{Kind, Model, Provider};
use flow::{Flow, Mode};

pub use config::Config;

/// Request fields that never go to a provider: the client's credentials (the provider gets
/// the gateway's), and codings the translation could not read.
const DROPPED: [&[u8]; 7] = [
    b"authorization",
    b"x-api-key",
    b"api-key",
    b"x-goog-api-key",
    b"anthropic-version",
    b"accept-encoding",
    b"content-type",
];

/// What the stage's table made (boxed: the stage registry's enum stays small).
struct Parts {
    max_body: u64,
    max_response: usize,
    providers: Vec<Provider>,
    models: Vec<Model>,
    routing: routing::Routing,
    guards: guard::Guards,
    tokens: Option<tokens::Tokens>,
    prompt: Option<prompt::Prompt>,
}

/// The stage.
pub struct Ai {
    parts: Box<Parts>,
    flows: Slots<Flow>,
    usage: usage::Usage,
    requests: Cell<u64>,
    redactions: Cell<u64>,
    streamed: Cell<u64>,
    prompt_tokens: Cell<u64>,
    completion_tokens: Cell<u64>,
    provider_errors: Cell<u64>,
    fallbacks: Cell<u64>,
}

impl StageBuild for Ai {
    const KIND: &'static str = "ai";
    type Config = Config;

    fn build(c: Config, ctx: &StageContext<'_>) -> Result<Ai, String> {
        let (providers, models) = config::check(&c, ctx.upstreams, ctx.dir)?;
        let guards = guard::Guards::new(c.max_prompt_chars, &c.deny, &c.redact)?;
        let tokens = match &c.tokens {
            Some(t) => Some(tokens::Tokens::new(t, ctx.shards)?),
            None => None,
        };
        let routing = routing::Routing::new(&models);
        let prompt = match &c.prompt {
            Some(p) => {
                let p = prompt::Prompt::new(p, ctx.params)?;
                if !routing.has(&p.model) {
                    return Err(format!(
                        "prompt: model `{}` is not one of this stage's",
                        p.model
                    ));
                }
                Some(p)
            }
            None => None,
        };
        Ok(Ai {
            parts: Box::new(Parts {
                max_body: c.max_body.0,
                max_response: usize::try_from(c.max_response.0).unwrap_or(usize::MAX),
                providers,
                models,
                routing,
                guards,
                tokens,
                prompt,
            }),
            flows: Slots::default(),
            usage: usage::Usage::new(),
            requests: Cell::new(0),
            redactions: Cell::new(0),
            fallbacks: Cell::new(0),
            streamed: Cell::new(0),
            prompt_tokens: Cell::new(0),
            completion_tokens: Cell::new(0),
            provider_errors: Cell::new(0),
        })
    }
}

fn bad(reason: &'static str, detail: String) -> Verdict<'static> {
    Verdict::Reject(Rejection::new(400, reason, detail))
}

impl Stage for Ai {
    fn wants_body(&self, _head: &RequestHead, _buf: &[u8]) -> Option<u64> {
        Some(self.parts.max_body)
    }

    fn on_body(
        &self,
        head: &RequestHead,
        buf: &[u8],
        body: &[u8],
        ex: &mut Exchange,
    ) -> Verdict<'_> {
        let read = match &self.parts.prompt {
            Some(p) => p.request(head, buf, body, ex),
            None => serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}")),
        };
        let mut v: Value = match read {
            Ok(v) => v,
            Err(d) => return bad("ai.bad_request", d),
        };
        match self.parts.guards.apply(&mut v) {
            Ok(n) => bump(&self.redactions, n),
            Err(guard::Refused::TooLong(n)) => {
                let d = format!("the prompt is {n} characters long, more than this route takes");
                return Verdict::Reject(Rejection::new(413, "ai.prompt_too_long", d));
            }
            Err(guard::Refused::Denied(i)) => {
                let d = format!("the prompt matches deny pattern {}", i + 1);
                return bad("ai.denied", d);
            }
        }
        let asked = match send::Asked::read(&v, head.path(buf)) {
            Ok(a) => a,
            Err(d) => return bad("ai.bad_request", d),
        };
        let Some(m) = self.parts.routing.pick(asked.model(), &self.parts.models) else {
            let d = format!(
                "model `{}` is not offered here; offered: {}",
                asked.model(),
                self.parts.routing.offered()
            );
            return bad("ai.unknown_model", d);
        };
        let chars = asked.chars();
        let token_key = match &self.parts.tokens {
            Some(t) => {
                let key = t.key(head, buf, ex);
                if let Err(spent) = t.admit(key, tokens::estimate(chars), ex) {
                    let d = format!(
                        "the token limit per {} is reached; retry after {} s",
                        spent.window, spent.retry_after
                    );
                    let r = Rejection::new(429, "ai.tokens", d)
                        .with_field("Retry-After", &spent.retry_after.to_string());
                    return Verdict::Reject(r);
                }
                Some(key)
            }
            None => None,
        };
        for name in DROPPED {
            ex.edits.fields.drop_named(&head.fields, buf, name);
        }
        let created = ex
            .wall
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut f = Flow {
            provider: 0,
            kind: Kind::OpenAi,
            model: m,
            ids: Ids {
                id: aim::fallback_id(ex),
                created,
                model: asked.model().to_string(),
            },
            stream: asked.stream(),
            include_usage: asked.include_usage(),
            usage: None,
            mode: Mode::Sent,
            provider_error: false,
            token_key,
            request: v,
            asked,
            added: ex.edits.fields.add.len(),
            tried: Vec::new(),
            rest: Vec::new(),
            answer_as: self.parts.prompt.as_ref().map(|p| p.answer.clone()),
            prefix: Vec::new(),
            chars,
        };
        if let Err(d) = aim::aim(&self.parts.models, &self.parts.providers, &mut f, m, ex) {
            return bad("ai.bad_request", d);
        }
        if f.rest.is_empty() {
            // nothing to translate again: the request need not be held while it streams
            f.lighten();
        }
        bump(&self.requests, 1);
        if f.stream {
            bump(&self.streamed, 1);
        }
        self.flows.put(ex.serial, f);
        Verdict::Continue
    }

    fn reroutes(&self) -> bool {
        self.parts.models.iter().any(|m| !m.fallback.is_empty())
    }

    fn reroute(&self, _status: Option<u16>, ex: &mut Exchange) -> bool {
        let Some(mut f) = self.flows.take(ex.serial) else {
            return false;
        };
        let mut sent = false;
        while !sent && !f.rest.is_empty() {
            let name = f.rest.remove(0);
            // a fallback the request was already sent to is not tried again
            let next = self
                .parts
                .routing
                .untried(&name, &self.parts.models, &f.tried);
            if let Some(m) = next {
                sent = aim::aim(&self.parts.models, &self.parts.providers, &mut f, m, ex).is_ok();
            }
        }
        if sent {
            bump(&self.fallbacks, 1);
        }
        self.flows.put(ex.serial, f);
        sent
    }

    fn on_response(&self, head: &ResponseHead, buf: &[u8], ex: &mut Exchange) {
        let encoded = values(&head.fields, buf, b"content-encoding")
            .any(|v| !v.trim_ascii().eq_ignore_ascii_case(b"identity"));
        let sse = values(&head.fields, buf, b"content-type").any(|v| {
            let media = v.split(|&c| c == b';').next().unwrap_or_default();
            media
                .trim_ascii()
                .eq_ignore_ascii_case(b"text/event-stream")
        });
        let limit = self.parts.max_response;
        let prompt = self.parts.prompt.as_ref().map(|p| &p.answer);
        let streams = self.flows.with(ex.serial, |f| {
            // an answer in a coding it did not ask for, or an OpenAI error, passes as it came
            let passes = encoded || f.kind == Kind::OpenAi && !(200..300).contains(&head.status);
            if passes {
                f.provider_error = !(200..300).contains(&head.status);
                return None;
            }
            f.answer(head.status, sse, limit);
            Some(matches!(f.mode, Mode::Stream { .. }))
        });
        let Some(Some(stream)) = streams else {
            return;
        };
        let edits = &mut ex.response;
        edits.drop_named(&head.fields, buf, b"etag");
        edits.drop_named(&head.fields, buf, b"accept-ranges");
        let ok = (200..300).contains(&head.status);
        if stream {
            edits.set(&head.fields, buf, b"content-type", b"text/event-stream");
            edits.set(&head.fields, buf, b"cache-control", b"no-cache");
        } else if let (Some(prompt::AnswerAs::Text), true) = (prompt, ok) {
            edits.set(
                &head.fields,
                buf,
                b"content-type",
                b"text/plain; charset=utf-8",
            );
        } else {
            edits.set(&head.fields, buf, b"content-type", b"application/json");
        }
    }

    fn response_body(&self, _head: &ResponseHead, _buf: &[u8], ex: &Exchange) -> Option<BodyTap> {
        self.flows
            .with(ex.serial, |f| !matches!(f.mode, Mode::Sent))
            .filter(|&t| t)
            .map(|_| BodyTap::Rewrite)
    }

    fn on_response_body(&self, piece: Piece<'_>, ex: &mut Exchange, out: &mut Vec<u8>) {
        let limit = self.parts.max_response;
        let ended = self.flows.with(ex.serial, |f| match piece {
            Piece::Data(d) => {
                f.data(d, limit, out);
                None
            }
            Piece::End => {
                f.end(out);
                f.usage.map(|u| (f.model, f.provider, u))
            }
            Piece::TooLarge => None,
        });
        if let Some(Some((m, p, u))) = ended {
            let (Some(m), Some(p)) = (self.parts.models.get(m), self.parts.providers.get(p)) else {
                return;
            };
            ex.tokens = Some(Box::new(TokenUsage {
                model: Rc::from(m.name.as_str()),
                provider: Rc::from(p.name.as_str()),
                prompt: u.prompt,
                completion: u.completion,
                cost_microusd: m.cost(u.prompt, u.completion),
            }));
        }
    }

    fn on_finish(&self, ex: &Exchange) {
        let Some(f) = self.flows.take(ex.serial) else {
            return;
        };
        if let Some(u) = f.usage {
            bump(&self.prompt_tokens, u.prompt);
            bump(&self.completion_tokens, u.completion);
            if let (Some(t), Some(key)) = (&self.parts.tokens, f.token_key) {
                t.count(key, u.prompt.saturating_add(u.completion), ex);
            }
        }
        if f.provider_error {
            bump(&self.provider_errors, 1);
        }
        let u = f.usage.unwrap_or_default();
        let cost = self
            .parts
            .models
            .get(f.model)
            .map_or(0, |m| m.cost(u.prompt, u.completion));
        let tally = usage::Tally {
            requests: 1,
            prompt: u.prompt,
            completion: u.completion,
            cost_microusd: cost,
        };
        self.usage
            .add(ex.consumer().unwrap_or_default(), f.model, tally);
    }

    fn figures(&self) -> Vec<Figure> {
        let mut figures = counted(&[
            ("requests", &self.requests),
            ("streamed", &self.streamed),
            ("prompt_tokens", &self.prompt_tokens),
            ("completion_tokens", &self.completion_tokens),
            ("provider_errors", &self.provider_errors),
            ("redactions", &self.redactions),
            ("fallbacks", &self.fallbacks),
        ]);
        let names = |m: usize| {
            let model = self.parts.models.get(m);
            let provider = model.and_then(|m| self.parts.providers.get(m.provider));
            (
                model.map(|m| m.name.clone()).unwrap_or_default(),
                provider.map(|p| p.name.clone()).unwrap_or_default(),
            )
        };
        figures.extend(self.usage.figures(&names));
        figures
    }
}
