//! One exchange of an AI route from the provider's answer on: the answer held whole and
//! translated at its end, or a stream of server-sent events translated event by event into
//! OpenAI chunks as they come (never held whole), ending with the usage chunk (when the
//! client asked) and `[DONE]`.

use serde_json::{Value, json};

use super::answer::{self, Delta, Ids, Usage};
use super::config::Kind;
use super::prompt::{self, AnswerAs};
use super::send::Asked;
use super::sse::{self, Reader};
use super::{anthropic, gemini, openai};

/// How the answer is read.
#[derive(Debug)]
pub enum Mode {
    /// The request went; no answer yet (or one passed as it came).
    Sent,
    /// Held whole, up to the limit (`over`: it passed it).
    Whole {
        /// The provider's status.
        status: u16,
        /// What came so far.
        body: Vec<u8>,
        /// It was larger than the limit.
        over: bool,
    },
    /// Streamed.
    Stream {
        /// The event reader.
        sse: Reader,
        /// The provider's stream state.
        state: StreamState,
        /// The provider failed mid-stream (an error event went out): the rest is dropped.
        failed: bool,
    },
}

/// A provider's stream state.
#[derive(Debug)]
pub enum StreamState {
    /// OpenAI-compatible: events relabelled, no state.
    OpenAi,
    /// Anthropic: block indices, prompt tokens.
    Anthropic(anthropic::Stream),
    /// Gemini: calls so far.
    Gemini(gemini::Stream),
}

/// An exchange's state.
#[derive(Debug)]
pub struct Flow {
    /// Index of the provider.
    pub provider: usize,
    /// Its API.
    pub kind: Kind,
    /// What the answer's chunks carry.
    pub ids: Ids,
    /// The request asked for a stream.
    pub stream: bool,
    /// The client asked for the usage chunk.
    pub include_usage: bool,
    /// Tokens the provider counted.
    pub usage: Option<Usage>,
    /// Reading the answer.
    pub mode: Mode,
    /// The provider answered with an error (non-2xx, or an error event).
    pub provider_error: bool,
    /// Its key in the token limits, when the route has them.
    pub token_key: Option<u64>,
    /// The model entry it went to last.
    pub model: usize,
    /// The client's request (guarded), for the fallbacks' translations.
    pub request: Value,
    /// The request read.
    pub asked: Asked,
    /// Where this stage's fields start in `ex.edits.fields.add`.
    pub added: usize,
    /// The entries it went to.
    pub tried: Vec<usize>,
    /// The fallback names still to try.
    pub rest: Vec<String>,
    /// A prompt route's answer: the model's text or JSON instead of a completion.
    pub answer_as: Option<AnswerAs>,
    /// The bytes each chunk starts with, once the stream started (`answer::chunk_prefix`).
    pub prefix: Vec<u8>,
    /// Characters of the request's text (for estimated usage).
    pub chars: usize,
}

impl Flow {
    /// Drops what only a fallback's translation needs (the client's request, its messages).
    pub fn lighten(&mut self) {
        self.request = Value::Null;
        match &mut self.asked {
            Asked::Chat(c) => {
                c.messages = Vec::new();
                c.system = Vec::new();
                c.tools = Vec::new();
            }
            Asked::Embed(e) => e.input = Vec::new(),
        }
    }

    /// Starts reading an answer with `status`; `sse`: it is an event stream. Streamed when a
    /// streamed request gets a 2xx event stream; held whole otherwise (a provider may answer
    /// a streamed request whole).
    pub fn answer(&mut self, status: u16, sse: bool, limit: usize) {
        self.provider_error = !(200..300).contains(&status);
        self.mode = if self.stream && sse && !self.provider_error {
            let state = match self.kind {
                Kind::OpenAi => StreamState::OpenAi,
                Kind::Anthropic => StreamState::Anthropic(anthropic::Stream::default()),
                Kind::Gemini => StreamState::Gemini(gemini::Stream::default()),
            };
            Mode::Stream {
                sse: Reader::new(limit),
                state,
                failed: false,
            }
        } else {
            Mode::Whole {
                status,
                body: Vec::new(),
                over: false,
            }
        };
    }

    /// A piece of the answer; what goes to the client is appended to `out`.
    pub fn data(&mut self, d: &[u8], limit: usize, out: &mut Vec<u8>) {
        let mut events = Vec::new();
        match &mut self.mode {
            Mode::Sent => out.extend_from_slice(d),
            Mode::Whole { body, over, .. } => {
                if body.len() + d.len() > limit {
                    *over = true;
                    body.clear();
                } else if !*over {
                    body.extend_from_slice(d);
                }
            }
            Mode::Stream { sse, failed, .. } => {
                if *failed {
                    return;
                }
                if sse.feed(d, &mut events).is_err() {
                    *failed = true;
                    self.provider_error = true;
                    error_event(out, "the provider sent an event larger than max_response");
                    return;
                }
            }
        }
        for e in &events {
            self.event(e, out);
        }
    }

    /// One streamed event.
    fn event(&mut self, e: &sse::Event, out: &mut Vec<u8>) {
        let Mode::Stream { state, failed, .. } = &mut self.mode else {
            return;
        };
        if *failed || e.data == "[DONE]" {
            return;
        }
        if let StreamState::Anthropic(_) = state
            && !self.prefix.is_empty()
            && let Some(text) = anthropic::text_delta(&e.name, &e.data)
        {
            answer::text_chunk(&self.prefix, &text, out);
            return;
        }
        let Ok(mut v) = serde_json::from_str::<Value>(&e.data) else {
            // not JSON: nothing a client could read either
            return;
        };
        let mut deltas = Vec::new();
        let got = match state {
            StreamState::OpenAi => {
                let usage = openai::relabel(&mut v, &self.ids.model);
                if usage.is_some() {
                    self.usage = usage;
                }
                if !openai::usage_only(&v) || self.include_usage {
                    answer::event(out, &v);
                }
                return;
            }
            StreamState::Anthropic(s) => s.event(&e.name, &v, &mut deltas),
            StreamState::Gemini(s) => s.event(&v, &mut deltas),
        };
        for d in &deltas {
            match d {
                Delta::Usage(u) => self.usage = Some(*u),
                Delta::Start { id: Some(id) } if !id.is_empty() => {
                    self.ids.id.clone_from(id);
                    self.prefix = answer::chunk_prefix(&self.ids);
                }
                Delta::Start { .. } => self.prefix = answer::chunk_prefix(&self.ids),
                _ => {}
            }
            if let Some((delta, finish)) = answer::delta_json(d) {
                answer::event(out, &answer::chunk(&self.ids, delta, finish));
            }
        }
        if let Err(msg) = got {
            *failed = true;
            self.provider_error = true;
            error_event(out, &msg);
        }
    }

    /// The answer ended: what is left goes to `out`.
    pub fn end(&mut self, out: &mut Vec<u8>) {
        match std::mem::replace(&mut self.mode, Mode::Sent) {
            Mode::Sent => {}
            Mode::Whole { status, body, over } => {
                if over {
                    self.fail(
                        502,
                        "the provider\'s answer is larger than max_response",
                        out,
                    );
                    return;
                }
                self.whole(status, &body, out);
            }
            Mode::Stream { .. } => {
                if let (true, Some(u)) = (self.include_usage, self.usage) {
                    answer::event(out, &answer::usage_chunk(&self.ids, u));
                }
                out.extend_from_slice(answer::DONE);
            }
        }
    }

    /// A whole answer, translated.
    fn whole(&mut self, status: u16, body: &[u8], out: &mut Vec<u8>) {
        let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
            let msg = format!("the provider answered {status} with a body that is not JSON");
            self.fail(status.max(500), &msg, out);
            return;
        };
        if self.provider_error {
            let msg = match self.kind {
                // already OpenAI's shape
                Kind::OpenAi => {
                    out.extend_from_slice(body);
                    return;
                }
                Kind::Anthropic => anthropic::error_message(&v),
                Kind::Gemini => gemini::error_message(&v),
            };
            let msg = msg.unwrap_or_else(|| format!("the provider answered {status}"));
            out.extend_from_slice(&answer::error(status, &msg));
            return;
        }
        let read = match self.kind {
            Kind::OpenAi => {
                self.usage = openai::relabel(&mut v, &self.ids.model);
                if let Some(how) = &self.answer_as {
                    let text = openai::text(&v).unwrap_or_default();
                    self.prompt_answer(how.clone(), &text, out);
                    return;
                }
                let _ = serde_json::to_writer(&mut *out, &v);
                return;
            }
            Kind::Gemini if matches!(self.asked, Asked::Embed(_)) => {
                let chars = self.chars;
                match super::embeddings::gemini_answer(&v, &self.ids.model, chars) {
                    Ok((body, usage)) => {
                        self.usage = Some(usage);
                        out.extend_from_slice(&body);
                    }
                    Err(msg) => {
                        self.fail(502, &msg, out);
                    }
                }
                return;
            }
            Kind::Anthropic => anthropic::answer(&v),
            Kind::Gemini => gemini::answer(&v),
        };
        match read {
            Ok(a) if self.answer_as.is_some() => {
                self.usage = Some(a.usage);
                let how = self.answer_as.clone().unwrap_or(AnswerAs::Text);
                self.prompt_answer(how, a.text.as_deref().unwrap_or_default(), out);
            }
            Ok(mut a) => {
                self.usage = Some(a.usage);
                if a.id.is_empty() {
                    a.id.clone_from(&self.ids.id);
                }
                out.extend_from_slice(&answer::completion(&a, &self.ids));
            }
            Err(msg) => {
                self.fail(502, &msg, out);
            }
        }
    }
}

impl Flow {
    /// The provider failed: an OpenAI error body with `status` and `message` is the answer.
    fn fail(&mut self, status: u16, message: &str, out: &mut Vec<u8>) {
        self.provider_error = true;
        out.extend_from_slice(&answer::error(status, message));
    }

    /// A prompt route's answer from the model's text (an error body when it is not the
    /// JSON asked for: the status already went).
    fn prompt_answer(&mut self, how: AnswerAs, text: &str, out: &mut Vec<u8>) {
        match prompt::answer(&how, text) {
            Ok(body) => out.extend_from_slice(&body),
            Err(msg) => {
                self.fail(502, &msg, out);
            }
        }
    }
}

/// An error event in a stream (OpenAI's shape).
fn error_event(out: &mut Vec<u8>, message: &str) {
    answer::event(
        out,
        &json!({"error": {"message": message, "type": "api_error", "param": null, "code": null}}),
    );
}
