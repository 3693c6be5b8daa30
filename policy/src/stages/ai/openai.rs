//! OpenAI-compatible providers (OpenAI, Azure-style proxies, vLLM, Ollama, llama.cpp…:
//! `POST {base}/chat/completions`, `Authorization: Bearer`): the client's JSON goes as it came
//! but for `model` (the provider's name for it) and, when streamed, `stream_options.
//! include_usage` (asked always, so usage is counted; the usage chunk is passed on only when
//! the client asked for it). Answers come back with `model` set to the name the client used.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use super::answer::Usage;

/// The client's request object written with `model` and usage reporting set, without
/// copying it first.
struct Edited<'a> {
    client: &'a Map<String, Value>,
    model: &'a str,
    stream: bool,
}

impl Serialize for Edited<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let mut options = false;
        for (k, v) in self.client {
            match (k.as_str(), v) {
                ("model", _) => m.serialize_entry(k, self.model)?,
                ("stream_options", Value::Object(o)) if self.stream => {
                    options = true;
                    let mut o = o.clone();
                    o.insert("include_usage".into(), json!(true));
                    m.serialize_entry(k, &o)?;
                }
                ("stream_options", _) if self.stream => {
                    options = true;
                    m.serialize_entry(k, v)?;
                }
                _ => m.serialize_entry(k, v)?,
            }
        }
        if self.stream && !options {
            m.serialize_entry("stream_options", &json!({"include_usage": true}))?;
        }
        m.end()
    }
}

/// The request: the client's, with `model` and usage reporting set.
pub fn request(client: &Value, model: &str, stream: bool) -> Vec<u8> {
    let written = match client {
        Value::Object(o) => serde_json::to_vec(&Edited {
            client: o,
            model,
            stream,
        }),
        other => serde_json::to_vec(other),
    };
    written.unwrap_or_default()
}

/// An answer or chunk with `model` renamed to `alias`; its usage, when it tells one.
pub fn relabel(v: &mut Value, alias: &str) -> Option<Usage> {
    if let Some(o) = v.as_object_mut()
        && o.contains_key("model")
    {
        o.insert("model".into(), json!(alias));
    }
    Usage::of_openai(v)
}

/// The text of an answer (its first choice's message), for prompt routes.
pub fn text(v: &Value) -> Option<String> {
    let m = v.get("choices")?.get(0)?.get("message")?;
    Some(m.get("content")?.as_str()?.to_string())
}

/// Whether a chunk is only the usage (no choices).
pub fn usage_only(v: &Value) -> bool {
    v.get("choices")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
        && v.get("usage").is_some_and(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_the_model_and_asks_for_usage_when_streamed() {
        let c = json!({"model": "fast", "messages": [], "seed": 7, "stream": true});
        assert_eq!(
            String::from_utf8_lossy(&request(&c, "gpt-x", true)),
            r#"{"model":"gpt-x","messages":[],"seed":7,"stream":true,"stream_options":{"include_usage":true}}"#
        );
        let mut a = json!({"model": "gpt-x", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 1}});
        assert_eq!(
            relabel(&mut a, "fast"),
            Some(Usage {
                prompt: 2,
                completion: 1
            })
        );
        assert_eq!(a.get("model"), Some(&json!("fast")));
        assert!(usage_only(&a));
    }
}
