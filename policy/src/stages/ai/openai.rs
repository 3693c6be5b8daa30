//! OpenAI-compatible providers (OpenAI, Azure-style proxies, vLLM, Ollama, llama.cpp…:
//! `POST {base}/chat/completions`, `Authorization: Bearer`): the client's JSON goes as it came
//! but for `model` (the provider's name for it) and, when streamed, `stream_options.
//! include_usage` (asked always, so usage is counted; the usage chunk is passed on only when
//! the client asked for it). Answers come back with `model` set to the name the client used.

use serde_json::{Value, json};

use super::answer::Usage;

/// The request: the client's, with `model` and usage reporting set.
pub fn request(client: &Value, model: &str, stream: bool) -> Value {
    let mut v = client.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("model".into(), json!(model));
        if stream {
            let opts = o.entry("stream_options").or_insert_with(|| json!({}));
            if let Some(opts) = opts.as_object_mut() {
                opts.insert("include_usage".into(), json!(true));
            }
        }
    }
    v
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
            request(&c, "gpt-x", true).to_string(),
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
