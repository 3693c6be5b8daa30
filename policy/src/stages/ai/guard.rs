//! Prompt guards, applied to the client's request before anything leaves the gateway: a limit
//! on the prompt's length (characters of every message's text), a deny list of regular
//! expressions (a match refuses the request), and redaction of configured patterns (e-mail
//! addresses, card numbers that pass the Luhn check, or any regular expression) in every
//! message's text, so no provider, OpenAI-compatible or translated, receives them.

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

/// `[[route.policy.redact]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConf {
    /// `"email"`, `"card"` (numbers of 13–19 digits passing the Luhn check), or a regular
    /// expression.
    pub pattern: String,
    /// What a match becomes. Default `[redacted]`.
    #[serde(default = "default_replacement")]
    pub replacement: String,
}

fn default_replacement() -> String {
    "[redacted]".to_string()
}

const EMAIL: &str = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}";
const CARD: &str = r"\b\d(?:[ -]?\d){12,18}\b";

/// A checked redaction.
#[derive(Debug)]
struct Redact {
    re: Regex,
    /// Only matches whose digits pass the Luhn check (`card`).
    luhn: bool,
    replacement: String,
}

/// The guards of one stage.
#[derive(Debug, Default)]
pub struct Guards {
    max_chars: Option<usize>,
    deny: Vec<Regex>,
    redact: Vec<Redact>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The prompt is longer than allowed (its length).
    TooLong(usize),
    /// Deny pattern `i` matched.
    Denied(usize),
}

fn regex(p: &str, what: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(p)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("{what} `{p}` is not a regular expression: {e}"))
}

/// Whether the digits of `s` pass the Luhn check.
fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| match (i % 2, d * 2) {
            (1, dd) if dd > 9 => dd - 9,
            (1, dd) => dd,
            _ => d,
        })
        .sum();
    digits.len() >= 13 && sum.is_multiple_of(10)
}

/// The text places of a request: each message's `content` string, or its parts' `text`;
/// an embeddings request's `input` strings.
fn texts(v: &mut Value) -> Vec<&mut String> {
    let mut out = Vec::new();
    let Some(o) = v.as_object_mut() else {
        return out;
    };
    let (mut messages, mut input) = (None, None);
    for (k, v) in o.iter_mut() {
        match k.as_str() {
            "messages" => messages = Some(v),
            "input" => input = Some(v),
            _ => {}
        }
    }
    match input {
        Some(Value::String(s)) => out.push(s),
        Some(Value::Array(list)) => out.extend(list.iter_mut().filter_map(|s| match s {
            Value::String(s) => Some(s),
            _ => None,
        })),
        _ => {}
    }
    let Some(Value::Array(messages)) = messages else {
        return out;
    };
    for m in messages {
        match m.get_mut("content") {
            Some(Value::String(s)) => out.push(s),
            Some(Value::Array(parts)) => {
                for p in parts {
                    if let Some(Value::String(s)) = p.get_mut("text") {
                        out.push(s);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

impl Guards {
    /// Checks the guards' settings.
    pub fn new(
        max_chars: Option<usize>,
        deny: &[String],
        redact: &[RedactConf],
    ) -> Result<Guards, String> {
        let deny = deny
            .iter()
            .map(|p| regex(p, "deny pattern"))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(redact.len());
        for r in redact {
            let (p, luhn) = match r.pattern.as_str() {
                "email" => (EMAIL, false),
                "card" => (CARD, true),
                p => (p, false),
            };
            out.push(Redact {
                re: regex(p, "redact pattern")?,
                luhn,
                replacement: r.replacement.clone(),
            });
        }
        Ok(Guards {
            max_chars,
            deny,
            redact: out,
        })
    }

    /// Checks the request `v` and redacts it in place; how many matches were redacted.
    pub fn apply(&self, v: &mut Value) -> Result<u64, Refused> {
        let mut texts = texts(v);
        if let Some(max) = self.max_chars {
            let len: usize = texts.iter().map(|t| t.chars().count()).sum();
            if len > max {
                return Err(Refused::TooLong(len));
            }
        }
        for (i, re) in self.deny.iter().enumerate() {
            if texts.iter().any(|t| re.is_match(t)) {
                return Err(Refused::Denied(i));
            }
        }
        let mut redacted = 0;
        for t in texts.iter_mut() {
            for r in &self.redact {
                if !r.re.is_match(t) {
                    continue;
                }
                let out = r.re.replace_all(t, |c: &regex::Captures<'_>| {
                    let m = c.get(0).map_or("", |m| m.as_str());
                    if r.luhn && !luhn(m) {
                        m.to_string()
                    } else {
                        redacted += 1;
                        r.replacement.clone()
                    }
                });
                **t = out.into_owned();
            }
        }
        Ok(redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(pattern: &str, replacement: &str) -> RedactConf {
        RedactConf {
            pattern: pattern.into(),
            replacement: replacement.into(),
        }
    }

    #[test]
    fn redacts_emails_and_real_card_numbers_only() -> Result<(), String> {
        let g = Guards::new(
            None,
            &[],
            &[
                conf("email", "[email]"),
                conf("card", "[card]"),
                conf(r"\bACME-\d+\b", "[id]"),
            ],
        )?;
        let mut v = serde_json::json!({"messages": [
            {"role": "user", "content": "mail ann.lee+x@mail.example.org, card 4111 1111 1111 1111, not 4111 1111 1111 1112, ACME-77"},
            {"role": "user", "content": [{"type": "text", "text": "b@c.io"}]}
        ]});
        assert_eq!(g.apply(&mut v), Ok(4));
        assert_eq!(
            v.to_string(),
            r#"{"messages":[{"role":"user","content":"mail [email], card [card], not 4111 1111 1111 1112, [id]"},{"role":"user","content":[{"type":"text","text":"[email]"}]}]}"#
        );
        Ok(())
    }

    #[test]
    fn refuses_long_and_denied_prompts() -> Result<(), String> {
        let g = Guards::new(Some(16), &["(?i)ignore (all )?previous".into()], &[])?;
        let mut long =
            serde_json::json!({"messages": [{"content": "123456789"}, {"content": "12345678"}]});
        assert_eq!(g.apply(&mut long), Err(Refused::TooLong(17)));
        let mut bad = serde_json::json!({"messages": [{"content": "IGNORE previous"}]});
        assert_eq!(g.apply(&mut bad), Err(Refused::Denied(0)));
        assert!(Guards::new(None, &["(".into()], &[]).is_err());
        Ok(())
    }
}
