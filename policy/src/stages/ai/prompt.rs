//! Prompt templates as REST APIs (`[route.policy.prompt]`): the route's request fills a
//! template (`${body.<dotted field>}` of a JSON body, `${query.<name>}`, and every placeholder
//! of header templates: `${param.<capture>}`, `${consumer}`, `${jwt.<claim>}`…) that becomes
//! the user message of a chat with one configured model; the answer is the model's text
//! (`text/plain`), or its text parsed as JSON, or one field of that JSON.

use proto::RequestHead;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::exchange::Exchange;
use crate::template::Template;

/// `[route.policy.prompt]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptConf {
    /// The model (a name of this stage's models) asked.
    pub model: String,
    /// The system message. Default none.
    #[serde(default)]
    pub system: Option<String>,
    /// The user message, a template. Required.
    pub template: String,
    /// `"text"` (the model's text, `text/plain`) or `"json"` (its text parsed as JSON).
    /// Default `"text"`.
    #[serde(default = "default_answer")]
    pub answer: String,
    /// With `answer = "json"`: the dotted field of that JSON answered. Default: all of it.
    #[serde(default)]
    pub field: Option<String>,
    /// `max_tokens` asked. Default: the model's.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// `temperature` asked. Default: the provider's.
    #[serde(default)]
    pub temperature: Option<f64>,
}

fn default_answer() -> String {
    "text".to_string()
}

/// How the answer is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerAs {
    /// The text.
    Text,
    /// The text parsed as JSON, or the field at this dotted path of it.
    Json(Option<Vec<String>>),
}

/// One piece of the template.
#[derive(Debug)]
enum Piece {
    /// Text and header-template placeholders.
    Head(Template),
    /// A field of the JSON body.
    Body(Vec<String>),
    /// A query parameter.
    Query(Vec<u8>),
}

/// A checked prompt.
#[derive(Debug)]
pub struct Prompt {
    /// The model name.
    pub model: String,
    system: Option<String>,
    pieces: Vec<Piece>,
    /// How the answer is given.
    pub answer: AnswerAs,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
}

fn dotted(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() || p.split('.').any(str::is_empty) {
        return Err(format!("`{p}` is not a dotted field (`a`, `a.b`)"));
    }
    Ok(p.split('.').map(String::from).collect())
}

impl Prompt {
    /// Checks the table; `params` are the route's capture names.
    pub fn new(c: &PromptConf, params: &[String]) -> Result<Prompt, String> {
        let mut pieces = Vec::new();
        let mut rest = c.template.as_str();
        loop {
            let next = ["${body.", "${query."]
                .iter()
                .filter_map(|m| rest.find(m).map(|i| (i, *m)))
                .min();
            let Some((at, mark)) = next else {
                break;
            };
            let (lit, tail) = rest.split_at(at);
            if !lit.is_empty() {
                pieces.push(Piece::Head(Template::parse(lit, params)?));
            }
            let tail = tail.get(mark.len()..).unwrap_or_default();
            let end = tail
                .find('}')
                .ok_or_else(|| format!("prompt template: `{mark}` is not closed"))?;
            let name = tail.get(..end).unwrap_or_default();
            pieces.push(if mark == "${body." {
                Piece::Body(dotted(name).map_err(|e| format!("prompt template: {e}"))?)
            } else if !name.is_empty() {
                Piece::Query(name.as_bytes().to_vec())
            } else {
                return Err("prompt template: `${query.}` names no parameter".into());
            });
            rest = tail.get(end + 1..).unwrap_or_default();
        }
        if !rest.is_empty() {
            pieces.push(Piece::Head(Template::parse(rest, params)?));
        }
        let answer = match (c.answer.as_str(), &c.field) {
            ("text", None) => AnswerAs::Text,
            ("text", Some(_)) => return Err("prompt: `field` needs answer = \"json\"".into()),
            ("json", f) => AnswerAs::Json(f.as_deref().map(dotted).transpose()?),
            (other, _) => {
                return Err(format!(
                    "prompt: answer `{other}` is not \"text\" or \"json\""
                ));
            }
        };
        Ok(Prompt {
            model: c.model.clone(),
            system: c.system.clone(),
            pieces,
            answer,
            max_tokens: c.max_tokens,
            temperature: c.temperature,
        })
    }

    /// Whether the template reads the body.
    pub fn reads_body(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Body(_)))
    }

    /// The Chat Completions request a request makes (it then goes as a client's would), or
    /// what is missing from it.
    pub fn request(
        &self,
        head: &RequestHead,
        buf: &[u8],
        body: &[u8],
        ex: &Exchange,
    ) -> Result<Value, String> {
        let v: Value = if self.reads_body() {
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?
        } else {
            Value::Null
        };
        let (_, query) = proto::path::split_query(ex.target(head, buf));
        let mut text = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::Head(t) => t.render(head, buf, ex, &mut text),
                Piece::Body(path) => match path.iter().try_fold(&v, |v, k| v.get(k)) {
                    Some(Value::String(s)) => text.extend_from_slice(s.as_bytes()),
                    Some(Value::Null) | None => {
                        return Err(format!("the body has no `{}`", path.join(".")));
                    }
                    Some(other) => text.extend_from_slice(other.to_string().as_bytes()),
                },
                Piece::Query(name) => {
                    let value = query
                        .split(|&b| b == b'&')
                        .find_map(|pair| pair.strip_prefix(name.as_slice())?.strip_prefix(b"="));
                    let value = value.ok_or_else(|| {
                        format!("the query has no `{}`", String::from_utf8_lossy(name))
                    })?;
                    // `+` is a space there too
                    text.extend_from_slice(&crate::query::percent_decode(value));
                }
            }
        }
        let mut messages = Vec::with_capacity(2);
        if let Some(s) = &self.system {
            messages.push(json!({"role": "system", "content": s}));
        }
        messages.push(json!({"role": "user", "content": String::from_utf8_lossy(&text)}));
        let mut req = json!({"model": self.model, "messages": messages});
        if let Some(o) = req.as_object_mut() {
            if let Some(n) = self.max_tokens {
                o.insert("max_tokens".into(), json!(n));
            }
            if let Some(t) = self.temperature {
                o.insert("temperature".into(), json!(t));
            }
        }
        Ok(req)
    }
}

/// The answer to give for the model's `text`: the text, or JSON (`Err`: it is not JSON, or
/// lacks the field).
pub fn answer(how: &AnswerAs, text: &str) -> Result<Vec<u8>, String> {
    match how {
        AnswerAs::Text => Ok(text.as_bytes().to_vec()),
        AnswerAs::Json(field) => {
            // models often fence JSON in a code block
            let t = text.trim();
            let t = t
                .strip_prefix("```json")
                .or_else(|| t.strip_prefix("```"))
                .and_then(|r| r.strip_suffix("```"))
                .unwrap_or(t);
            let v: Value = serde_json::from_str(t.trim())
                .map_err(|_| "the model's answer is not JSON".to_string())?;
            let v = match field {
                None => &v,
                Some(path) => path
                    .iter()
                    .try_fold(&v, |v, k| v.get(k))
                    .ok_or_else(|| format!("the model's answer has no `{}`", path.join(".")))?,
            };
            Ok(serde_json::to_vec(v).unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_text_json_and_fields() {
        let j = AnswerAs::Json(Some(vec!["a".into(), "b".into()]));
        assert_eq!(answer(&AnswerAs::Text, "hi"), Ok(b"hi".to_vec()));
        assert_eq!(
            answer(&j, "```json\n{\"a\":{\"b\":[1]}}\n```"),
            Ok(b"[1]".to_vec())
        );
        assert_eq!(
            answer(&AnswerAs::Json(None), " {\"x\":1} "),
            Ok(b"{\"x\":1}".to_vec())
        );
        assert_eq!(
            answer(&j, "{\"a\":1}"),
            Err("the model's answer has no `a.b`".into())
        );
        assert_eq!(
            answer(&j, "nope"),
            Err("the model's answer is not JSON".into())
        );
    }

    #[test]
    fn refuses_bad_tables() {
        let conf = |template: &str, answer: &str, field: Option<&str>| PromptConf {
            model: "m".into(),
            system: None,
            template: template.into(),
            answer: answer.into(),
            field: field.map(Into::into),
            max_tokens: None,
            temperature: None,
        };
        for (c, want) in [
            (
                conf("${body.a", "text", None),
                "prompt template: `${body.` is not closed",
            ),
            (
                conf("${body.a..b}", "text", None),
                "prompt template: `a..b` is not a dotted field (`a`, `a.b`)",
            ),
            (
                conf("x", "text", Some("a")),
                "prompt: `field` needs answer = \"json\"",
            ),
            (
                conf("x", "xml", None),
                "prompt: answer `xml` is not \"text\" or \"json\"",
            ),
        ] {
            assert_eq!(Prompt::new(&c, &[]).err().as_deref(), Some(want));
        }
        assert!(
            Prompt::new(
                &conf("S: ${body.t} (${query.lang}) ${param.id}", "text", None),
                &["id".into()]
            )
            .is_ok()
        );
    }
}
