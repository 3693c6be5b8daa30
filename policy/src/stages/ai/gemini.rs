//! Google Gemini (`POST {base}/models/{model}:generateContent`, streamed
//! `:streamGenerateContent?alt=sse`, `x-goog-api-key`), field by field from and to OpenAI's
//! Chat Completions:
//!
//! | OpenAI                                   | Gemini                                             |
//! |------------------------------------------|----------------------------------------------------|
//! | `system` / `developer` messages          | `systemInstruction.parts[].text`                   |
//! | `user` text / `image_url` (`data:` URLs) | `user` content, `text` / `inlineData` {mimeType, data} parts (other URLs: `fileData` {fileUri}) |
//! | `assistant` text and `tool_calls`        | `model` content, `text` and `functionCall` {name, args} parts |
//! | `tool` messages (consecutive ones merged)| one `user` content of `functionResponse` {name, response} parts (the name from the call it answers; a result that is not a JSON object goes as `{"content": …}`) |
//! | `max_completion_tokens` / `max_tokens`, `temperature`, `top_p`, `stop` | `generationConfig` `maxOutputTokens`, `temperature`, `topP`, `stopSequences` |
//! | `tools[].function` {name, description, parameters} | `tools[0].functionDeclarations[]` {name, description, parameters} |
//! | `tool_choice` auto / required / none / named | `toolConfig.functionCallingConfig.mode` AUTO / ANY / NONE / ANY with `allowedFunctionNames` |
//! | answer `content`, `tool_calls`           | `candidates[0].content.parts` `text` joined, `functionCall`s (ids `call_<n>` when Gemini gives none) |
//! | `finish_reason` stop / length / tool_calls / content_filter | `finishReason` STOP / MAX_TOKENS / STOP with calls / SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, IMAGE_SAFETY (or a blocked prompt) |
//! | `usage` prompt / completion tokens       | `usageMetadata.promptTokenCount` / `candidatesTokenCount` + `thoughtsTokenCount` |
//! | id                                       | `responseId`                                       |
//! | error `{error: {message, type}}`         | `{error: {code, message, status}}`                 |
//!
//! Streamed: each event is a partial answer; its parts are content and whole calls, the last
//! one has `finishReason`, `usageMetadata` counts so far.

use serde_json::{Map, Value, json};

use super::answer::{Answer, Delta, Finish, Usage, field};
use super::chat::{Bad, Call, Chat, Msg, Part, ToolChoice};

/// The target for `model` under `base` (`/v1beta`).
pub fn target(base: &str, model: &str, stream: bool) -> String {
    if stream {
        format!("{base}/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("{base}/models/{model}:generateContent")
    }
}

fn part(p: &Part) -> Value {
    match p {
        Part::Text(t) => json!({"text": t}),
        Part::Image(u) => match u
            .strip_prefix("data:")
            .and_then(|r| r.split_once(";base64,"))
        {
            Some((mime, data)) => json!({"inlineData": {"mimeType": mime, "data": data}}),
            None => json!({"fileData": {"fileUri": u}}),
        },
    }
}

fn model_turn(text: &Option<String>, calls: &[Call], i: usize) -> Result<Value, Bad> {
    let mut parts = Vec::with_capacity(calls.len() + 1);
    if let Some(t) = text {
        parts.push(json!({"text": t}));
    }
    for c in calls {
        let args: Value = serde_json::from_str(&c.arguments).map_err(|_| {
            format!(
                "messages[{i}]: the arguments of tool call `{}` are not JSON",
                c.id
            )
        })?;
        parts.push(json!({"functionCall": {"name": c.name, "args": args}}));
    }
    Ok(json!({"role": "model", "parts": parts}))
}

fn contents(chat: &Chat) -> Result<Vec<Value>, Bad> {
    let mut out: Vec<Value> = Vec::with_capacity(chat.messages.len());
    let mut results: Vec<Value> = Vec::new();
    // the function name of each call made so far, by id (a result names only its call's id)
    let mut names: ahash::AHashMap<&str, &str> = ahash::AHashMap::new();
    for (i, m) in chat.messages.iter().enumerate() {
        if let Msg::Assistant { calls, .. } = m {
            names.extend(calls.iter().map(|c| (c.id.as_str(), c.name.as_str())));
        }
        if let Msg::Tool { call_id, content } = m {
            let name = names.get(call_id.as_str()).map(|n| n.to_string());
            let name = name.ok_or_else(|| {
                format!("messages[{i}]: tool_call_id `{call_id}` answers no earlier tool call")
            })?;
            let response = match serde_json::from_str::<Value>(content) {
                Ok(v @ Value::Object(_)) => v,
                _ => json!({"content": content}),
            };
            results.push(json!({"functionResponse": {"name": name, "response": response}}));
            continue;
        }
        if !results.is_empty() {
            out.push(json!({"role": "user", "parts": std::mem::take(&mut results)}));
        }
        out.push(match m {
            Msg::User(parts) => {
                json!({"role": "user", "parts": parts.iter().map(part).collect::<Vec<_>>()})
            }
            // an empty turn is refused by the API: it says nothing anyway
            Msg::Assistant { text: None, calls } if calls.is_empty() => continue,
            Msg::Assistant { text, calls } => model_turn(text, calls, i)?,
            Msg::Tool { .. } => continue,
        });
    }
    if !results.is_empty() {
        out.push(json!({"role": "user", "parts": results}));
    }
    Ok(out)
}

/// The `generateContent` request for `chat`.
pub fn request(chat: &Chat) -> Result<Value, Bad> {
    let mut o = Map::new();
    o.insert("contents".into(), Value::Array(contents(chat)?));
    if !chat.system.is_empty() {
        let parts: Vec<Value> = chat.system.iter().map(|t| json!({"text": t})).collect();
        o.insert("systemInstruction".into(), json!({"parts": parts}));
    }
    let mut g = Map::new();
    if let Some(n) = chat.max_tokens {
        g.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(t) = chat.temperature {
        g.insert("temperature".into(), json!(t));
    }
    if let Some(p) = chat.top_p {
        g.insert("topP".into(), json!(p));
    }
    if !chat.stop.is_empty() {
        g.insert("stopSequences".into(), json!(chat.stop));
    }
    if !g.is_empty() {
        o.insert("generationConfig".into(), Value::Object(g));
    }
    if !chat.tools.is_empty() {
        let decls: Vec<Value> = chat
            .tools
            .iter()
            .map(|t| {
                let mut d = json!({"name": t.name});
                if let Some(m) = d.as_object_mut() {
                    if let Some(desc) = &t.description {
                        m.insert("description".into(), json!(desc));
                    }
                    if t.parameters.as_object().is_none_or(|p| !p.is_empty()) {
                        m.insert("parameters".into(), t.parameters.clone());
                    }
                }
                d
            })
            .collect();
        o.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    let config = match &chat.tool_choice {
        ToolChoice::Unset => None,
        ToolChoice::Auto => Some(json!({"mode": "AUTO"})),
        ToolChoice::None => Some(json!({"mode": "NONE"})),
        ToolChoice::Required => Some(json!({"mode": "ANY"})),
        ToolChoice::Named(n) => Some(json!({"mode": "ANY", "allowedFunctionNames": [n]})),
    };
    if let Some(c) = config {
        o.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
    }
    Ok(Value::Object(o))
}

fn finish(reason: &str, calls: bool) -> Finish {
    match reason {
        "MAX_TOKENS" => Finish::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            Finish::ContentFilter
        }
        _ if calls => Finish::ToolCalls,
        _ => Finish::Stop,
    }
}

fn usage(v: &Value) -> Option<Usage> {
    let u = v.get("usageMetadata")?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        prompt: n("promptTokenCount"),
        completion: n("candidatesTokenCount").saturating_add(n("thoughtsTokenCount")),
    })
}

/// The parts of the first candidate.
fn parts(v: &Value) -> &[Value] {
    v.get("candidates")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("content"))
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn call(p: &Value, n: usize) -> Option<Call> {
    let f = p.get("functionCall")?;
    Some(Call {
        id: f
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("call_{n}"), Into::into),
        name: field(f, "name"),
        arguments: f.get("args").map_or_else(|| "{}".into(), Value::to_string),
    })
}

/// The finish reason of the first candidate, when it has one (a blocked prompt has no
/// candidate: a content filter).
fn reason(v: &Value) -> Option<&str> {
    let c = v.get("candidates").and_then(|c| c.get(0));
    match c {
        Some(c) => c.get("finishReason").and_then(Value::as_str),
        None => v
            .get("promptFeedback")
            .and_then(|f| f.get("blockReason"))
            .map(|_| "SAFETY"),
    }
}

/// Reads a whole answer.
pub fn answer(v: &Value) -> Result<Answer, Bad> {
    if !v.is_object() {
        return Err("the provider's answer is not an object".into());
    }
    let (mut text, mut calls) = (None::<String>, Vec::new());
    for p in parts(v) {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            text.get_or_insert_with(String::new).push_str(t);
        } else if let Some(c) = call(p, calls.len()) {
            calls.push(c);
        }
    }
    let finish = finish(reason(v).unwrap_or("STOP"), !calls.is_empty());
    Ok(Answer {
        id: field(v, "responseId"),
        text,
        calls,
        finish,
        usage: usage(v).unwrap_or_default(),
    })
}

/// The message of an error answer.
pub fn error_message(v: &Value) -> Option<String> {
    Some(v.get("error")?.get("message")?.as_str()?.to_string())
}

/// A streamed answer's state: whether it started, the calls so far.
#[derive(Debug, Default)]
pub struct Stream {
    started: bool,
    calls: u32,
}

impl Stream {
    /// Reads one event's parsed data into deltas; `Err` carries a provider error.
    pub fn event(&mut self, v: &Value, out: &mut Vec<Delta>) -> Result<(), String> {
        if let Some(msg) = error_message(v) {
            return Err(msg);
        }
        if !self.started {
            self.started = true;
            let id = v.get("responseId").and_then(Value::as_str).map(Into::into);
            out.push(Delta::Start { id });
        }
        for p in parts(v) {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                out.push(Delta::Text(t.into()));
            } else if let Some(c) = call(p, self.calls as usize) {
                let index = self.calls;
                self.calls = self.calls.saturating_add(1);
                out.push(Delta::CallStart {
                    index,
                    id: c.id,
                    name: c.name,
                });
                out.push(Delta::CallArgs {
                    index,
                    args: c.arguments,
                });
            }
        }
        if let Some(r) = reason(v) {
            out.push(Delta::Finish(finish(r, self.calls > 0)));
        }
        if let Some(u) = usage(v) {
            out.push(Delta::Usage(u));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    #[test]
    fn translates_a_request_field_by_field() -> Result<(), Bad> {
        let c = Chat::read(&parse(
            r#"{"model":"g","max_tokens":64,"top_p":0.9,"stop":"X",
            "messages":[{"role":"system","content":"sys"},
              {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,BBB="}}]},
              {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"{\"temp\":3}"},
              {"role":"user","content":"and?"}],
            "tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object"}}}],
            "tool_choice":{"type":"function","function":{"name":"weather"}}}"#,
        ))?;
        assert_eq!(
            request(&c)?.to_string(),
            r#"{"contents":[{"role":"user","parts":[{"text":"hi"},{"inlineData":{"mimeType":"image/jpeg","data":"BBB="}}]},{"role":"model","parts":[{"functionCall":{"name":"weather","args":{"city":"Oslo"}}}]},{"role":"user","parts":[{"functionResponse":{"name":"weather","response":{"temp":3}}}]},{"role":"user","parts":[{"text":"and?"}]}],"systemInstruction":{"parts":[{"text":"sys"}]},"generationConfig":{"maxOutputTokens":64,"topP":0.9,"stopSequences":["X"]},"tools":[{"functionDeclarations":[{"name":"weather","parameters":{"type":"object"}}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["weather"]}}}"#
        );
        let orphan = Chat::read(&parse(
            r#"{"model":"g","messages":[{"role":"tool","tool_call_id":"zz","content":"1"}]}"#,
        ))?;
        assert_eq!(
            request(&orphan).err().as_deref(),
            Some("messages[0]: tool_call_id `zz` answers no earlier tool call")
        );
        assert_eq!(
            target("/v1beta", "m", true),
            "/v1beta/models/m:streamGenerateContent?alt=sse"
        );
        Ok(())
    }

    #[test]
    fn reads_answers_blocks_and_stream_events() -> Result<(), Bad> {
        let a = answer(&parse(
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"a"},{"text":"b"},{"functionCall":{"name":"f","args":{"x":1}}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,"thoughtsTokenCount":1},"responseId":"r1"}"#,
        ))?;
        assert_eq!((a.id.as_str(), a.text.as_deref()), ("r1", Some("ab")));
        assert_eq!(
            (a.finish, a.usage.prompt, a.usage.completion),
            (Finish::ToolCalls, 4, 3)
        );
        assert_eq!(a.calls.first().map(|c| c.id.as_str()), Some("call_0"));
        let blocked = answer(&parse(r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#))?;
        assert_eq!(
            (blocked.text, blocked.finish),
            (None, Finish::ContentFilter)
        );
        let mut s = Stream::default();
        let mut out = Vec::new();
        s.event(
            &parse(r#"{"candidates":[{"content":{"parts":[{"text":"x"}]}}],"responseId":"r2"}"#),
            &mut out,
        )?;
        s.event(&parse(r#"{"candidates":[{"content":{"parts":[{"text":"y"}]},"finishReason":"MAX_TOKENS"}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":2}}"#), &mut out)?;
        assert_eq!(
            out,
            vec![
                Delta::Start {
                    id: Some("r2".into())
                },
                Delta::Text("x".into()),
                Delta::Text("y".into()),
                Delta::Finish(Finish::Length),
                Delta::Usage(Usage {
                    prompt: 1,
                    completion: 2
                }),
            ]
        );
        let e = parse(r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#);
        assert_eq!(s.event(&e, &mut out), Err("quota".to_string()));
        Ok(())
    }
}
