//! OpenID Connect discovery (OIDC Discovery 1.0 §4): an issuer's metadata at
//! `{issuer}/.well-known/openid-configuration`, read for an endpoint it names (`jwks_uri`,
//! `introspection_endpoint`). The metadata must name the issuer itself (§4.3), and the
//! endpoint must be on the issuer's own scheme, host and port: the gateway resolves hosts
//! once, at start, never on a shard's path.

/// The metadata's path under the issuer's path.
pub fn well_known(issuer_path: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer_path.trim_end_matches('/')
    )
}

/// `scheme://authority` of a URL.
fn origin(url: &str) -> Option<&str> {
    let after = url.find("://")? + 3;
    let end = url.get(after..)?.find('/').map_or(url.len(), |i| after + i);
    url.get(..end)
}

/// The path of the endpoint `field` names in metadata `body` of `issuer`.
pub fn endpoint_path(body: &[u8], issuer: &str, field: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the OIDC metadata is not JSON: {e}"))?;
    let named = v.get("issuer").and_then(serde_json::Value::as_str);
    if named != Some(issuer) {
        return Err(format!(
            "the OIDC metadata names issuer {named:?}, not `{issuer}`"
        ));
    }
    let Some(url) = v.get(field).and_then(serde_json::Value::as_str) else {
        return Err(format!("the OIDC metadata has no {field}"));
    };
    let ours = origin(issuer).unwrap_or_default();
    match url.strip_prefix(ours) {
        // the path goes into a request line as it is: visible ASCII only
        Some(path)
            if !ours.is_empty()
                && path.starts_with('/')
                && path.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(path.to_string())
        }
        _ => Err(format!(
            "{field} `{url}` is not on the issuer's own host ({ours}): not followed"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_taken_from_the_issuers_own_metadata_only() {
        assert_eq!(
            well_known("/realms/main/"),
            "/realms/main/.well-known/openid-configuration"
        );
        assert_eq!(well_known("/"), "/.well-known/openid-configuration");
        let iss = "https://idp.example:8443/realms/main";
        let doc = |issuer: &str, jwks: &str| {
            format!(r#"{{"issuer": "{issuer}", "jwks_uri": "{jwks}"}}"#).into_bytes()
        };
        let ok = doc(iss, "https://idp.example:8443/realms/main/certs");
        assert_eq!(
            endpoint_path(&ok, iss, "jwks_uri"),
            Ok("/realms/main/certs".into())
        );
        for (bad, why) in [
            (
                doc("https://evil.example", "https://idp.example:8443/c"),
                "names issuer",
            ),
            (
                doc(iss, "https://other.example/certs"),
                "not on the issuer's own host",
            ),
            (
                doc(iss, "https://idp.example:8443.evil/c"),
                "not on the issuer's own host",
            ),
            (
                doc(iss, "http://idp.example:8443/c"),
                "not on the issuer's own host",
            ),
            (b"{".to_vec(), "not JSON"),
        ] {
            let e = endpoint_path(&bad, iss, "jwks_uri")
                .err()
                .unwrap_or_default();
            assert!(e.contains(why), "{e}");
        }
        let no = format!(r#"{{"issuer": "{iss}"}}"#).into_bytes();
        assert!(endpoint_path(&no, iss, "introspection_endpoint").is_err());
    }
}
