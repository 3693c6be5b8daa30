//! Anthropic Messages (`POST {base}/messages`, `x-api-key`, `anthropic-version`), field by
//! field from and to OpenAI's Chat Completions:
//!
//! | OpenAI                                   | Anthropic                                          |
//! |------------------------------------------|----------------------------------------------------|
//! | `system` / `developer` messages          | `system` (joined by blank lines)                   |
//! | `user` text / `image_url` parts          | `user` `text` / `image` blocks (`base64` for `data:` URLs, else `url`) |
//! | `assistant` text and `tool_calls`        | `assistant` `text` and `tool_use` blocks (`input` parsed from `arguments`) |
//! | `tool` messages (consecutive ones merged)| one `user` message of `tool_result` blocks         |
//! | `max_completion_tokens` / `max_tokens`   | `max_tokens` (required: the model's default when absent) |
//! | `temperature`, `top_p`, `stop`, `stream` | `temperature`, `top_p`, `stop_sequences`, `stream` |
//! | `tools[].function` {name, description, parameters} | `tools[]` {name, description, input_schema} |
//! | `tool_choice` auto / required / none / named | `{type: auto}` / `any` / `none` / `{type: tool, name}` |
//! | answer `content`, `tool_calls`           | `text` blocks joined, `tool_use` blocks            |
//! | `finish_reason` stop / length / tool_calls / content_filter | `stop_reason` end_turn, stop_sequence, pause_turn / max_tokens / tool_use / refusal |
//! | `usage` prompt / completion tokens       | `usage.input_tokens` (+ cache reads and writes) / `output_tokens` |
//! | error `{error: {message, type}}`         | `{type: "error", error: {type, message}}`          |
//!
//! Streamed: `message_start` gives the id and prompt tokens, `content_block_start` of a
//! `tool_use` starts a call, `content_block_delta` `text_delta` / `input_json_delta` are
//! content / arguments, `message_delta` the finish reason and completion tokens; `ping`,
//! `content_block_stop` and `message_stop` carry nothing; `error` ends the answer with an error.

use serde_json::{Map, Value, json};

use super::answer::{Answer, Delta, Finish, Usage, field};
use super::chat::{Bad, Call, Chat, Msg, Part, ToolChoice};

/// The API version sent.
pub const VERSION: &str = "2023-06-01";

fn image(url: &str) -> Value {
    match url
        .strip_prefix("data:")
        .and_then(|r| r.split_once(";base64,"))
    {
        Some((media, data)) => json!({"type": "image",
            "source": {"type": "base64", "media_type": media, "data": data}}),
        None => json!({"type": "image", "source": {"type": "url", "url": url}}),
    }
}

fn assistant(text: &Option<String>, calls: &[Call], i: usize) -> Result<Value, Bad> {
    let mut blocks = Vec::with_capacity(calls.len() + 1);
    if let Some(t) = text {
        blocks.push(json!({"type": "text", "text": t}));
    }
    for c in calls {
        let input: Value = serde_json::from_str(&c.arguments).map_err(|_| {
            format!(
                "messages[{i}]: the arguments of tool call `{}` are not JSON",
                c.id
            )
        })?;
        blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
    }
    Ok(json!({"role": "assistant", "content": blocks}))
}

fn messages(chat: &Chat) -> Result<Vec<Value>, Bad> {
    let mut out: Vec<Value> = Vec::with_capacity(chat.messages.len());
    let mut results: Vec<Value> = Vec::new();
    for (i, m) in chat.messages.iter().enumerate() {
        if let Msg::Tool { call_id, content } = m {
            results
                .push(json!({"type": "tool_result", "tool_use_id": call_id, "content": content}));
            continue;
        }
        if !results.is_empty() {
            out.push(json!({"role": "user", "content": std::mem::take(&mut results)}));
        }
        out.push(match m {
            Msg::User(parts) => {
                let blocks: Vec<Value> = parts
                    .iter()
                    .map(|p| match p {
                        Part::Text(t) => json!({"type": "text", "text": t}),
                        Part::Image(u) => image(u),
                    })
                    .collect();
                json!({"role": "user", "content": blocks})
            }
            // an empty turn is refused by the API: it says nothing anyway
            Msg::Assistant { text: None, calls } if calls.is_empty() => continue,
            Msg::Assistant { text, calls } => assistant(text, calls, i)?,
            Msg::Tool { .. } => continue,
        });
    }
    if !results.is_empty() {
        out.push(json!({"role": "user", "content": results}));
    }
    Ok(out)
}

/// The Messages request for `chat`, to `model`, with `max_tokens` when the client gave none.
pub fn request(chat: &Chat, model: &str, max_tokens: u64) -> Result<Value, Bad> {
    let mut o = Map::new();
    o.insert("model".into(), json!(model));
    o.insert(
        "max_tokens".into(),
        json!(chat.max_tokens.unwrap_or(max_tokens)),
    );
    if !chat.system.is_empty() {
        o.insert("system".into(), json!(chat.system.join("\n\n")));
    }
    o.insert("messages".into(), Value::Array(messages(chat)?));
    if let Some(t) = chat.temperature {
        // OpenAI takes 0 to 2, Anthropic 0 to 1: refused here rather than by the provider
        if !(0.0..=1.0).contains(&t) {
            return Err(format!("temperature {t}: Anthropic models take 0 to 1"));
        }
        o.insert("temperature".into(), json!(t));
    }
    if let Some(p) = chat.top_p {
        o.insert("top_p".into(), json!(p));
    }
    if !chat.stop.is_empty() {
        o.insert("stop_sequences".into(), json!(chat.stop));
    }
    if !chat.tools.is_empty() {
        let tools: Vec<Value> = chat
            .tools
            .iter()
            .map(|t| {
                let mut schema = t.parameters.clone();
                if schema.as_object().is_some_and(Map::is_empty) {
                    schema = json!({"type": "object"});
                }
                let mut tool = json!({"name": t.name});
                if let (Some(m), Some(d)) = (tool.as_object_mut(), &t.description) {
                    m.insert("description".into(), json!(d));
                }
                if let Some(m) = tool.as_object_mut() {
                    m.insert("input_schema".into(), schema);
                }
                tool
            })
            .collect();
        o.insert("tools".into(), Value::Array(tools));
    }
    let choice = match &chat.tool_choice {
        ToolChoice::Unset => None,
        ToolChoice::Auto => Some(json!({"type": "auto"})),
        ToolChoice::None => Some(json!({"type": "none"})),
        ToolChoice::Required => Some(json!({"type": "any"})),
        ToolChoice::Named(n) => Some(json!({"type": "tool", "name": n})),
    };
    if let Some(c) = choice {
        o.insert("tool_choice".into(), c);
    }
    if chat.stream {
        o.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(o))
}

fn finish(reason: Option<&str>) -> Finish {
    match reason {
        Some("max_tokens" | "model_context_window_exceeded") => Finish::Length,
        Some("tool_use") => Finish::ToolCalls,
        Some("refusal") => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

fn prompt_tokens(u: &Value) -> u64 {
    [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .iter()
    .filter_map(|k| u.get(k).and_then(Value::as_u64))
    .fold(0, u64::saturating_add)
}

/// Reads a whole Messages answer.
pub fn answer(v: &Value) -> Result<Answer, Bad> {
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or("the provider's answer has no `content`")?;
    let (mut text, mut calls) = (None::<String>, Vec::new());
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = b.get("text").and_then(Value::as_str).unwrap_or_default();
                text.get_or_insert_with(String::new).push_str(t);
            }
            Some("tool_use") => calls.push(Call {
                id: field(b, "id"),
                name: field(b, "name"),
                arguments: b.get("input").map_or_else(|| "{}".into(), Value::to_string),
            }),
            _ => {}
        }
    }
    let u = v.get("usage").unwrap_or(&Value::Null);
    Ok(Answer {
        id: field(v, "id"),
        text,
        calls,
        finish: finish(v.get("stop_reason").and_then(Value::as_str)),
        usage: Usage {
            prompt: prompt_tokens(u),
            completion: u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0),
        },
    })
}

/// The message of an error answer.
pub fn error_message(v: &Value) -> Option<String> {
    let e = v.get("error")?;
    Some(e.get("message").and_then(Value::as_str)?.to_string())
}

/// The text of a `content_block_delta` event's `text_delta`, read without building a JSON
/// value (the event most of a stream is made of); `None` for any other event.
pub fn text_delta<'a>(name: &str, data: &'a str) -> Option<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow)]
        text: Option<Cow<'a, str>>,
    }
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(borrow)]
        delta: Option<Body<'a>>,
    }
    if name != "content_block_delta" {
        return None;
    }
    let e: Event<'a> = serde_json::from_str(data).ok()?;
    let d = e.delta?;
    if d.kind == "text_delta" { d.text } else { None }
}

/// A streamed answer's state: content block index → tool call ordinal, prompt tokens.
#[derive(Debug, Default)]
pub struct Stream {
    calls: Vec<(u64, u32)>,
    prompt: u64,
}

impl Stream {
    /// Reads one event (`name`, parsed `data`) into deltas; `Err` carries a provider error.
    pub fn event(&mut self, name: &str, v: &Value, out: &mut Vec<Delta>) -> Result<(), String> {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match name {
            "message_start" => {
                let m = v.get("message").unwrap_or(&Value::Null);
                self.prompt = prompt_tokens(m.get("usage").unwrap_or(&Value::Null));
                let id = m.get("id").and_then(Value::as_str).map(Into::into);
                out.push(Delta::Start { id });
                // counted at once: a stream cut short still has its prompt counted
                out.push(Delta::Usage(Usage {
                    prompt: self.prompt,
                    completion: 0,
                }));
            }
            "content_block_start" => {
                let b = v.get("content_block").unwrap_or(&Value::Null);
                match b.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let ordinal = u32::try_from(self.calls.len()).unwrap_or(u32::MAX);
                        self.calls.push((index, ordinal));
                        out.push(Delta::CallStart {
                            index: ordinal,
                            id: field(b, "id"),
                            name: field(b, "name"),
                        });
                    }
                    Some("text") => {
                        let t = b.get("text").and_then(Value::as_str).unwrap_or_default();
                        if !t.is_empty() {
                            out.push(Delta::Text(t.into()));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let d = v.get("delta").unwrap_or(&Value::Null);
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let t = d.get("text").and_then(Value::as_str).unwrap_or_default();
                        out.push(Delta::Text(t.into()));
                    }
                    Some("input_json_delta") => {
                        let args = d.get("partial_json").and_then(Value::as_str);
                        let call = self.calls.iter().find(|(i, _)| *i == index);
                        if let (Some((_, ordinal)), Some(args)) = (call, args) {
                            out.push(Delta::CallArgs {
                                index: *ordinal,
                                args: args.into(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                let reason = v.get("delta").and_then(|d| d.get("stop_reason"));
                if let Some(r) = reason.and_then(Value::as_str) {
                    out.push(Delta::Finish(finish(Some(r))));
                }
                let completion = v.get("usage").and_then(|u| u.get("output_tokens"));
                out.push(Delta::Usage(Usage {
                    prompt: self.prompt,
                    completion: completion.and_then(Value::as_u64).unwrap_or(0),
                }));
            }
            "error" => {
                let msg = error_message(v).unwrap_or_else(|| "the provider failed".into());
                return Err(msg);
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(text: &str) -> Chat {
        let v: Value = serde_json::from_str(text).unwrap_or_default();
        Chat::read(&v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn translates_a_request_field_by_field() -> Result<(), Bad> {
        let c = chat(
            r#"{"model":"fast","temperature":0.2,"stop":["X"],"stream":true,
            "messages":[{"role":"system","content":"a"},{"role":"developer","content":"b"},
              {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAA="}}]},
              {"role":"assistant","content":"ok","tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"q\":1}"}}]},
              {"role":"tool","tool_call_id":"t1","content":"r1"},{"role":"tool","tool_call_id":"t1","content":"r2"}],
            "tools":[{"type":"function","function":{"name":"f","description":"d"}}],"tool_choice":"required"}"#,
        );
        assert_eq!(
            request(&c, "claude-x", 512)?.to_string(),
            r#"{"model":"claude-x","max_tokens":512,"system":"a\n\nb","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAA="}}]},{"role":"assistant","content":[{"type":"text","text":"ok"},{"type":"tool_use","id":"t1","name":"f","input":{"q":1}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r1"},{"type":"tool_result","tool_use_id":"t1","content":"r2"}]}],"temperature":0.2,"stop_sequences":["X"],"tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"},"stream":true}"#
        );
        Ok(())
    }

    #[test]
    fn refuses_a_temperature_anthropic_cannot_take() {
        let c =
            chat(r#"{"model":"m","temperature":1.5,"messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(
            request(&c, "m", 1).err().as_deref(),
            Some("temperature 1.5: Anthropic models take 0 to 1")
        );
    }

    #[test]
    fn reads_answers_and_stream_events() -> Result<(), Bad> {
        let v: Value = serde_json::from_str(
            r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"a"},{"type":"tool_use","id":"t","name":"f","input":{"x":1}}],"stop_reason":"tool_use","usage":{"input_tokens":5,"cache_read_input_tokens":2,"output_tokens":3}}"#,
        )
        .map_err(|e| e.to_string())?;
        let a = answer(&v)?;
        assert_eq!(a.text.as_deref(), Some("a"));
        assert_eq!(
            a.calls.first().map(|c| &c.arguments[..]),
            Some(r#"{"x":1}"#)
        );
        assert_eq!(
            (a.finish, a.usage.prompt, a.usage.completion),
            (Finish::ToolCalls, 7, 3)
        );
        let mut s = Stream::default();
        let mut out = Vec::new();
        for (name, data) in [
            (
                "message_start",
                r#"{"message":{"id":"msg_2","usage":{"input_tokens":4}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"index":0,"delta":{"type":"text_delta","text":"hi"}}"#,
            ),
            (
                "content_block_start",
                r#"{"index":1,"content_block":{"type":"tool_use","id":"t","name":"f"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a"}}"#,
            ),
            (
                "message_delta",
                r#"{"delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":9}}"#,
            ),
        ] {
            let v: Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
            s.event(name, &v, &mut out)?;
        }
        assert_eq!(
            out,
            vec![
                Delta::Start {
                    id: Some("msg_2".into())
                },
                Delta::Usage(Usage {
                    prompt: 4,
                    completion: 0
                }),
                Delta::Text("hi".into()),
                Delta::CallStart {
                    index: 0,
                    id: "t".into(),
                    name: "f".into()
                },
                Delta::CallArgs {
                    index: 0,
                    args: "{\"a".into()
                },
                Delta::Finish(Finish::Length),
                Delta::Usage(Usage {
                    prompt: 4,
                    completion: 9
                }),
            ]
        );
        let e: Value = serde_json::from_str(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
        )
        .map_err(|e| e.to_string())?;
        assert_eq!(s.event("error", &e, &mut out), Err("busy".to_string()));
        Ok(())
    }
}
