//! What a provider answered, in neutral form (`Answer` whole, `Delta` streamed), and how it
//! is written in OpenAI's Chat Completions format: `chat.completion` objects,
//! `chat.completion.chunk` events, usage, and error bodies.

use serde_json::{Value, json};

use super::chat::Call;

/// The string at `key` of `v` (empty when absent or not a string).
pub fn field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Why the model stopped (OpenAI's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// `stop`: a natural end or a stop sequence.
    Stop,
    /// `length`: the token limit.
    Length,
    /// `tool_calls`: it called tools.
    ToolCalls,
    /// `content_filter`: a safety filter stopped it.
    ContentFilter,
}

impl Finish {
    /// OpenAI's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
            Finish::ToolCalls => "tool_calls",
            Finish::ContentFilter => "content_filter",
        }
    }
}

/// Tokens counted by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt: u64,
    /// Completion tokens.
    pub completion: u64,
}

impl Usage {
    /// OpenAI's `usage` object.
    pub fn json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt.saturating_add(self.completion),
        })
    }

    /// Reads OpenAI's `usage` object.
    pub fn of_openai(v: &Value) -> Option<Usage> {
        let u = v.get("usage").filter(|u| u.is_object())?;
        Some(Usage {
            prompt: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
            completion: u
                .get("completion_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        })
    }
}

/// A whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The provider's id for it.
    pub id: String,
    /// The text, when there is some.
    pub text: Option<String>,
    /// The tools called.
    pub calls: Vec<Call>,
    /// Why it stopped.
    pub finish: Finish,
    /// Tokens used.
    pub usage: Usage,
}

/// A piece of a streamed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// The answer starts (the provider's id for it, when it tells one): the chunk naming
    /// the assistant's role.
    Start {
        /// The provider's id.
        id: Option<String>,
    },
    /// More text.
    Text(String),
    /// A tool call starts (`index` counts the calls of this answer from 0).
    CallStart {
        /// Which call.
        index: u32,
        /// Its id.
        id: String,
        /// Its function's name.
        name: String,
    },
    /// More of a call's arguments (JSON text).
    CallArgs {
        /// Which call.
        index: u32,
        /// The next piece.
        args: String,
    },
    /// The answer ended.
    Finish(Finish),
    /// Tokens used so far (a provider may tell more than once; the last one counts).
    Usage(Usage),
}

/// What every chunk of one streamed answer (and a whole answer) carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// `id`.
    pub id: String,
    /// `created`: seconds since the Unix epoch.
    pub created: u64,
    /// `model`: the name the client asked for.
    pub model: String,
}

/// A `chat.completion` object.
pub fn completion(a: &Answer, ids: &Ids) -> Vec<u8> {
    let mut message = json!({"role": "assistant", "content": a.text});
    if !a.calls.is_empty()
        && let Some(m) = message.as_object_mut()
    {
        let calls: Vec<Value> = a.calls.iter().map(call_json).collect();
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    let v = json!({
        "id": a.id,
        "object": "chat.completion",
        "created": ids.created,
        "model": ids.model,
        "choices": [{"index": 0, "message": message, "finish_reason": a.finish.name()}],
        "usage": a.usage.json(),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

fn call_json(c: &Call) -> Value {
    json!({
        "id": c.id,
        "type": "function",
        "function": {"name": c.name, "arguments": c.arguments},
    })
}

/// Appends one server-sent event whose data is `v`.
pub fn event(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut *out, v);
    out.extend_from_slice(b"\n\n");
}

/// The stream's end marker.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// The bytes of every chunk event of a stream up to its delta (`data: {"id":…,"delta":`),
/// made once per stream: text chunks are then written without building a JSON value.
pub fn chunk_prefix(ids: &Ids) -> Vec<u8> {
    let head = json!({
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
    });
    let mut out = b"data: ".to_vec();
    let _ = serde_json::to_writer(&mut out, &head);
    // the object without its closing brace, then the choices up to the delta
    out.pop();
    out.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
    out
}

/// A text chunk event, after `prefix` (`chunk_prefix`): the same bytes `chunk` would give.
pub fn text_chunk(prefix: &[u8], text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(prefix);
    out.extend_from_slice(b"{\"content\":");
    let _ = serde_json::to_writer(&mut *out, text);
    out.extend_from_slice(b"},\"finish_reason\":null}]}\n\n");
}

/// A `chat.completion.chunk` with one choice whose `delta` is `delta`.
pub fn chunk(ids: &Ids, delta: Value, finish: Option<Finish>) -> Value {
    json!({
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish.map(Finish::name)}],
    })
}

/// The chunk that carries the usage (no choices), sent last when the client asked for it.
pub fn usage_chunk(ids: &Ids, u: Usage) -> Value {
    json!({
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "choices": [],
        "usage": u.json(),
    })
}

/// The `delta` of a chunk for one piece (`None` for usage, which is no chunk of its own).
pub fn delta_json(d: &Delta) -> Option<(Value, Option<Finish>)> {
    Some(match d {
        Delta::Start { .. } => (json!({"role": "assistant", "content": ""}), None),
        Delta::Text(t) => (json!({"content": t}), None),
        Delta::CallStart { index, id, name } => (
            json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            None,
        ),
        Delta::CallArgs { index, args } => (
            json!({"tool_calls": [{"index": index, "function": {"arguments": args}}]}),
            None,
        ),
        Delta::Finish(f) => (json!({}), Some(*f)),
        Delta::Usage(_) => return None,
    })
}

/// The `type` of an OpenAI error for a status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 | 404 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

/// An OpenAI error body for a provider's error with `status` and `message`.
pub fn error(status: u16, message: &str) -> Vec<u8> {
    let v = json!({"error": {
        "message": message,
        "type": error_type(status),
        "param": null,
        "code": null,
    }});
    serde_json::to_vec(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Ids {
        Ids {
            id: "msg_1".into(),
            created: 1_700_000_000,
            model: "fast".into(),
        }
    }

    #[test]
    fn writes_a_completion_with_text_and_calls() {
        let a = Answer {
            id: "msg_1".into(),
            text: Some("hi".into()),
            calls: vec![Call {
                id: "c".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }],
            finish: Finish::ToolCalls,
            usage: Usage {
                prompt: 3,
                completion: 4,
            },
        };
        assert_eq!(
            String::from_utf8_lossy(&completion(&a, &ids())),
            r#"{"id":"msg_1","object":"chat.completion","created":1700000000,"model":"fast","choices":[{"index":0,"message":{"role":"assistant","content":"hi","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#
        );
    }

    #[test]
    fn text_chunks_written_directly_match_built_ones() {
        let prefix = chunk_prefix(&ids());
        for text in ["a", "quote \" and \\ and \n and é", ""] {
            let (mut direct, mut built) = (Vec::new(), Vec::new());
            text_chunk(&prefix, text, &mut direct);
            let (d, f) = delta_json(&Delta::Text(text.into())).unwrap_or_default();
            event(&mut built, &chunk(&ids(), d, f));
            assert_eq!(
                String::from_utf8_lossy(&direct),
                String::from_utf8_lossy(&built)
            );
        }
    }

    #[test]
    fn writes_chunks_and_errors() {
        let mut out = Vec::new();
        let (d, f) = delta_json(&Delta::Text("a".into())).unwrap_or_default();
        event(&mut out, &chunk(&ids(), d, f));
        assert_eq!(
            String::from_utf8_lossy(&out),
            "data: {\"id\":\"msg_1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"fast\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&error(429, "slow down")),
            r#"{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":null}}"#
        );
    }
}
