//! `GET /config`: the running config file as TOML with every secret replaced, so it can be
//! shared: bearer tokens, HMAC secrets, plain-text API keys and their hashes, passwords.

/// Replaces a secret value.
const REDACTED: &str = "<redacted>";

/// True for a key whose value is a secret.
fn secret(key: &str) -> bool {
    matches!(key, "token" | "key" | "key_sha256" | "postgres")
        || key.contains("secret")
        || key.contains("password")
}

fn redact(v: &mut toml::Value) {
    match v {
        toml::Value::Table(t) => redact_table(t),
        toml::Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

fn redact_table(t: &mut toml::Table) {
    for (k, v) in t.iter_mut() {
        if secret(k) && !v.is_table() {
            *v = toml::Value::String(REDACTED.into());
        } else {
            redact(v);
        }
    }
}

/// The running config's text, redacted, with where it came from on top.
pub fn redacted(c: &conf::Config) -> String {
    let mut table: toml::Table = match c.text.parse() {
        Ok(t) => t,
        // it parsed when it was loaded; never show raw text that might hold secrets
        Err(_) => return format!("# {}: could not be shown\n", c.source),
    };
    redact_table(&mut table);
    let body = toml::to_string(&table).unwrap_or_default();
    format!("# running config: {} (secrets redacted)\n{body}", c.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_everywhere_and_the_rest_kept() -> Result<(), String> {
        let text = r#"
[server]
listen = ["127.0.0.1:0"]
[admin]
token = "t0ps3cret"
[[upstream]]
name = "a"
targets = ["127.0.0.1:1"]
[[route]]
path = "/"
upstream = "a"
[[route.policy]]
kind = "jwt"
secret = "hmac-s3cret"
[[route.policy]]
kind = "api_key"
insecure_plaintext = true
consumers = [{ name = "c", key = "plain-k3y" }, { name = "d", key_sha256 = "abcd" }]
"#;
        let c = conf::load_str("t.toml", text).map_err(|e| e.to_string())?;
        let out = redacted(&c);
        for s in ["t0ps3cret", "hmac-s3cret", "plain-k3y", "abcd"] {
            assert!(!out.contains(s), "{s} leaked:\n{out}");
        }
        assert_eq!(out.matches(REDACTED).count(), 4, "{out}");
        assert!(
            out.contains("127.0.0.1:1") && out.contains("kind = \"jwt\""),
            "{out}"
        );
        assert!(out.starts_with("# running config: t.toml"));
        Ok(())
    }
}
