//! The OpenAI Chat Completions request, read into the neutral form every provider file writes
//! from (`Chat`), with a precise error for each field it cannot take. Fields of the request
//! that no provider translation reads pass only to OpenAI-compatible providers (which get the
//! client's JSON with its `model` replaced).

use serde_json::{Map, Value};

/// A chat request, as the provider translations see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Chat {
    /// The model the client named (an alias of the route's).
    pub model: String,
    /// `system` and `developer` messages' text, in order.
    pub system: Vec<String>,
    /// The conversation.
    pub messages: Vec<Msg>,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// `stop`: one string or a list.
    pub stop: Vec<String>,
    /// `tools` of type `function`.
    pub tools: Vec<Tool>,
    /// `tool_choice`.
    pub tool_choice: ToolChoice,
    /// `stream`.
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the usage.
    pub include_usage: bool,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// A `user` message: text and images.
    User(Vec<Part>),
    /// An `assistant` message: its text and the tools it called.
    Assistant {
        /// Its text, when it has some.
        text: Option<String>,
        /// Its tool calls.
        calls: Vec<Call>,
    },
    /// A `tool` message: the result of a call.
    Tool {
        /// The `tool_call_id` it answers.
        call_id: String,
        /// The result, as text.
        content: String,
    },
}

/// A part of a user message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text.
    Text(String),
    /// An image by URL (`https:` or `data:<media type>;base64,<data>`).
    Image(String),
}

/// A tool call an assistant made (in a request's history, or in an answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Its id.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// Its arguments: a JSON object, as text.
    pub arguments: String,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Its parameters' JSON Schema (`{}` when none was given).
    pub parameters: Value,
}

/// Whether and which tools the model must call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// Not said: the provider's default.
    Unset,
    /// `"auto"`.
    Auto,
    /// `"none"`.
    None,
    /// `"required"`: some tool.
    Required,
    /// `{"type": "function", "function": {"name": …}}`.
    Named(String),
}

/// Why a request cannot be read: the problem's detail.
pub type Bad = String;

fn text_of(v: &Value, at: &str) -> Result<String, Bad> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for (i, p) in parts.iter().enumerate() {
                match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => out.push_str(t),
                    _ => return Err(format!("{at}[{i}]: only text parts are taken here")),
                }
            }
            Ok(out)
        }
        Value::Null => Ok(String::new()),
        _ => Err(format!("{at}: expected a string or a list of text parts")),
    }
}

fn user_parts(v: &Value, at: &str) -> Result<Vec<Part>, Bad> {
    let Value::Array(parts) = v else {
        return Ok(vec![Part::Text(text_of(v, at)?)]);
    };
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let kind = p.get("type").and_then(Value::as_str);
        let part = match kind {
            Some("text") => p
                .get("text")
                .and_then(Value::as_str)
                .map(|t| Part::Text(t.into())),
            Some("image_url") => p
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .map(|u| Part::Image(u.into())),
            _ => None,
        };
        out.push(part.ok_or_else(|| format!("{at}[{i}]: expected a text or image_url part"))?);
    }
    Ok(out)
}

fn calls_of(v: Option<&Value>, at: &str) -> Result<Vec<Call>, Bad> {
    let Some(Value::Array(calls)) = v else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(calls.len());
    for (i, c) in calls.iter().enumerate() {
        let f = c.get("function");
        let (Some(id), Some(name)) = (
            c.get("id").and_then(Value::as_str),
            f.and_then(|f| f.get("name")).and_then(Value::as_str),
        ) else {
            return Err(format!(
                "{at}.tool_calls[{i}]: needs `id` and `function.name`"
            ));
        };
        let arguments = match f.and_then(|f| f.get("arguments")) {
            Some(Value::String(a)) => a.clone(),
            None | Some(Value::Null) => "{}".to_string(),
            Some(other) => other.to_string(),
        };
        out.push(Call {
            id: id.into(),
            name: name.into(),
            arguments,
        });
    }
    Ok(out)
}

fn message(m: &Value, i: usize, system: &mut Vec<String>) -> Result<Option<Msg>, Bad> {
    let at = format!("messages[{i}]");
    let content = m.get("content").unwrap_or(&Value::Null);
    let msg = match m.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => {
            system.push(text_of(content, &format!("{at}.content"))?);
            return Ok(None);
        }
        Some("user") => Msg::User(user_parts(content, &format!("{at}.content"))?),
        Some("assistant") => {
            let text = text_of(content, &format!("{at}.content"))?;
            Msg::Assistant {
                text: (!text.is_empty()).then_some(text),
                calls: calls_of(m.get("tool_calls"), &at)?,
            }
        }
        Some("tool") => Msg::Tool {
            call_id: m
                .get("tool_call_id")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{at}: a tool message needs `tool_call_id`"))?
                .into(),
            content: text_of(content, &format!("{at}.content"))?,
        },
        Some(r) => return Err(format!("{at}.role: `{r}` is not a chat role")),
        None => return Err(format!("{at}: needs a `role`")),
    };
    Ok(Some(msg))
}

fn tools_of(v: Option<&Value>) -> Result<Vec<Tool>, Bad> {
    let Some(Value::Array(tools)) = v else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let f = t.get("function");
        let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
        let (Some("function"), Some(name)) = (t.get("type").and_then(Value::as_str), name) else {
            return Err(format!("tools[{i}]: expected a function with a `name`"));
        };
        out.push(Tool {
            name: name.into(),
            description: f
                .and_then(|f| f.get("description"))
                .and_then(Value::as_str)
                .map(Into::into),
            parameters: f
                .and_then(|f| f.get("parameters"))
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new())),
        });
    }
    Ok(out)
}

fn tool_choice(v: Option<&Value>) -> Result<ToolChoice, Bad> {
    Ok(match v {
        None | Some(Value::Null) => ToolChoice::Unset,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => return Err(format!("tool_choice: `{other}` is not a choice")),
        },
        Some(o) => match o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
        {
            Some(name) => ToolChoice::Named(name.into()),
            None => return Err("tool_choice: expected a string or a named function".into()),
        },
    })
}

fn number(o: &Map<String, Value>, key: &str) -> Result<Option<f64>, Bad> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("{key}: expected a number")),
    }
}

fn count(o: &Map<String, Value>, key: &str) -> Result<Option<u64>, Bad> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{key}: expected a whole number")),
    }
}

/// A request body's object and the `model` it names.
pub fn object_and_model(v: &Value) -> Result<(&Map<String, Value>, String), Bad> {
    let o = v.as_object().ok_or("the body is not a JSON object")?;
    let model = o
        .get("model")
        .and_then(Value::as_str)
        .ok_or("`model` is missing")?;
    Ok((o, model.to_string()))
}

impl Chat {
    /// Characters of the prompt's text (system and every message).
    pub fn chars(&self) -> usize {
        let msgs: usize = self
            .messages
            .iter()
            .map(|m| match m {
                Msg::User(parts) => parts
                    .iter()
                    .map(|p| match p {
                        Part::Text(t) => t.chars().count(),
                        Part::Image(_) => 0,
                    })
                    .sum(),
                Msg::Assistant { text, calls } => {
                    text.as_deref().map_or(0, |t| t.chars().count())
                        + calls.iter().map(|c| c.arguments.len()).sum::<usize>()
                }
                Msg::Tool { content, .. } => content.chars().count(),
            })
            .sum();
        msgs + self.system.iter().map(|s| s.chars().count()).sum::<usize>()
    }

    /// Reads a parsed request body.
    pub fn read(v: &Value) -> Result<Chat, Bad> {
        let (o, model) = object_and_model(v)?;
        let Some(Value::Array(list)) = o.get("messages") else {
            return Err("`messages` is missing or not a list".into());
        };
        let mut system = Vec::new();
        let mut messages = Vec::with_capacity(list.len());
        for (i, m) in list.iter().enumerate() {
            if let Some(m) = message(m, i, &mut system)? {
                messages.push(m);
            }
        }
        if messages.is_empty() {
            return Err("`messages` holds no user, assistant or tool message".into());
        }
        let stop = match o.get("stop") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| s.as_str().map(Into::into))
                .collect::<Option<Vec<String>>>()
                .ok_or("stop: expected a string or a list of strings")?,
            Some(_) => return Err("stop: expected a string or a list of strings".into()),
        };
        if o.get("n").and_then(Value::as_u64).is_some_and(|n| n != 1) {
            return Err("n: only one choice (n = 1) is offered".into());
        }
        Ok(Chat {
            model,
            system,
            messages,
            max_tokens: match count(o, "max_completion_tokens")? {
                Some(n) => Some(n),
                None => count(o, "max_tokens")?,
            },
            temperature: number(o, "temperature")?,
            top_p: number(o, "top_p")?,
            stop,
            tools: tools_of(o.get("tools"))?,
            tool_choice: tool_choice(o.get("tool_choice"))?,
            stream: o.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: o
                .get("stream_options")
                .and_then(|s| s.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Chat, Bad> {
        Chat::read(&serde_json::from_str(text).map_err(|e| e.to_string())?)
    }

    #[test]
    fn reads_roles_parts_tools_and_limits() -> Result<(), Bad> {
        let c = read(
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},
            "max_tokens":9,"max_completion_tokens":7,"temperature":0.5,"stop":"END",
            "messages":[{"role":"system","content":"be brief"},
              {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"https://i/x.png"}}]},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"42"}],
            "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
            "tool_choice":{"type":"function","function":{"name":"f"}}}"#,
        )?;
        assert_eq!(c.system, vec!["be brief".to_string()]);
        assert_eq!(c.max_tokens, Some(7));
        assert_eq!(c.stop, vec!["END".to_string()]);
        assert!(c.stream && c.include_usage);
        assert_eq!(c.tool_choice, ToolChoice::Named("f".into()));
        assert_eq!(
            c.messages,
            vec![
                Msg::User(vec![
                    Part::Text("hi".into()),
                    Part::Image("https://i/x.png".into())
                ]),
                Msg::Assistant {
                    text: None,
                    calls: vec![Call {
                        id: "c1".into(),
                        name: "f".into(),
                        arguments: "{\"a\":1}".into()
                    }]
                },
                Msg::Tool {
                    call_id: "c1".into(),
                    content: "42".into()
                },
            ]
        );
        Ok(())
    }

    #[test]
    fn names_the_field_it_cannot_take() {
        for (body, want) in [
            ("[]", "the body is not a JSON object"),
            (r#"{"messages":[]}"#, "`model` is missing"),
            (r#"{"model":"m"}"#, "`messages` is missing or not a list"),
            (
                r#"{"model":"m","messages":[{"role":"system","content":"x"}]}"#,
                "`messages` holds no user, assistant or tool message",
            ),
            (
                r#"{"model":"m","messages":[{"role":"bot","content":"x"}]}"#,
                "messages[0].role: `bot` is not a chat role",
            ),
            (
                r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
                "messages[0]: a tool message needs `tool_call_id`",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
                "temperature: expected a number",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#,
                "n: only one choice (n = 1) is offered",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"audio"}]}]}"#,
                "messages[0].content[0]: expected a text or image_url part",
            ),
        ] {
            assert_eq!(read(body).err().as_deref(), Some(want), "{body}");
        }
    }
}
