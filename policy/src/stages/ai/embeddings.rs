//! OpenAI Embeddings (`POST …/embeddings`) over the providers that have them:
//! OpenAI-compatible servers get the request as it came (their model name put in), Gemini
//! gets `batchEmbedContents`, field by field:
//!
//! | OpenAI                                  | Gemini `{base}/models/{model}:batchEmbedContents` |
//! |-----------------------------------------|----------------------------------------------------|
//! | `input`: a string or a list of strings  | `requests[]`: `{model: "models/…", content: {parts: [{text}]}}`, one per string |
//! | `dimensions`                            | `outputDimensionality` of each request            |
//! | `encoding_format` `"float"`             | (the only one Gemini gives; `"base64"` is refused) |
//! | answer `data[]` {object, index, embedding} | `embeddings[].values`                           |
//! | `usage.prompt_tokens`                   | (none given: estimated at a token per 4 characters) |
//!
//! Anthropic has no embeddings API: its models are refused for embeddings at request time.

use serde_json::{Value, json};

use super::answer::Usage;
use super::chat::Bad;

/// An embeddings request, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embed {
    /// The model the client named.
    pub model: String,
    /// The texts.
    pub input: Vec<String>,
    /// `dimensions`.
    pub dimensions: Option<u64>,
    /// `encoding_format` is `"base64"`.
    pub base64: bool,
}

impl Embed {
    /// Reads a parsed request body.
    pub fn read(v: &Value) -> Result<Embed, Bad> {
        let (o, model) = super::chat::object_and_model(v)?;
        let input = match o.get("input") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|s| s.as_str().map(Into::into))
                .collect::<Option<Vec<String>>>()
                .ok_or("input: expected a string or a list of strings")?,
            _ => return Err("input: expected a string or a list of strings".into()),
        };
        let dimensions = match o.get("dimensions") {
            None | Some(Value::Null) => None,
            Some(d) => Some(d.as_u64().ok_or("dimensions: expected a whole number")?),
        };
        let base64 = o.get("encoding_format").and_then(Value::as_str) == Some("base64");
        Ok(Embed {
            model,
            input,
            dimensions,
            base64,
        })
    }

    /// Characters of the input.
    pub fn chars(&self) -> usize {
        self.input.iter().map(|s| s.chars().count()).sum()
    }
}

/// Gemini's target for `model`.
pub fn gemini_target(base: &str, model: &str) -> String {
    format!("{base}/models/{model}:batchEmbedContents")
}

/// Gemini's request.
pub fn gemini_request(e: &Embed, model: &str) -> Result<Value, Bad> {
    if e.base64 {
        return Err("encoding_format: this model's provider gives only \"float\"".into());
    }
    let requests: Vec<Value> = e
        .input
        .iter()
        .map(|t| {
            let mut r =
                json!({"model": format!("models/{model}"), "content": {"parts": [{"text": t}]}});
            if let (Some(d), Some(o)) = (e.dimensions, r.as_object_mut()) {
                o.insert("outputDimensionality".into(), json!(d));
            }
            r
        })
        .collect();
    Ok(json!({"requests": requests}))
}

/// Gemini's answer in OpenAI's form (`alias`: the model the client named; `chars`: the
/// input's size, for the estimated usage).
pub fn gemini_answer(v: &Value, alias: &str, chars: usize) -> Result<(Vec<u8>, Usage), Bad> {
    let list = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or("the provider's answer has no `embeddings`")?;
    let data: Vec<Value> = list
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({"object": "embedding", "index": i,
                "embedding": e.get("values").cloned().unwrap_or_else(|| json!([]))})
        })
        .collect();
    let prompt = super::tokens::estimate(chars);
    let out = json!({
        "object": "list",
        "data": data,
        "model": alias,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    });
    let usage = Usage {
        prompt,
        completion: 0,
    };
    Ok((serde_json::to_vec(&out).unwrap_or_default(), usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_for_gemini_and_back() -> Result<(), Bad> {
        let e = Embed::read(&json!({"model": "emb", "input": ["ab", "cdef"], "dimensions": 2}))?;
        assert_eq!(
            gemini_request(&e, "text-embedding-004")?.to_string(),
            r#"{"requests":[{"model":"models/text-embedding-004","content":{"parts":[{"text":"ab"}]},"outputDimensionality":2},{"model":"models/text-embedding-004","content":{"parts":[{"text":"cdef"}]},"outputDimensionality":2}]}"#
        );
        let (body, u) = gemini_answer(
            &json!({"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}),
            "emb",
            e.chars(),
        )?;
        assert_eq!(
            String::from_utf8_lossy(&body),
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]},{"object":"embedding","index":1,"embedding":[0.3,0.4]}],"model":"emb","usage":{"prompt_tokens":2,"total_tokens":2}}"#
        );
        assert_eq!(u.prompt, 2);
        assert_eq!(
            Embed::read(&json!({"model": "m", "input": [1, 2]}))
                .err()
                .as_deref(),
            Some("input: expected a string or a list of strings")
        );
        let b = Embed::read(&json!({"model": "m", "input": "x", "encoding_format": "base64"}))?;
        assert!(gemini_request(&b, "m").is_err());
        Ok(())
    }
}
