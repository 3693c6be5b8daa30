//! URLs of the services stages fetch from themselves (a JWKS, an introspection endpoint):
//! `http(s)://host[:port]/path`, the host resolved once, when the config is loaded.

/// `http(s)://host[:port]/path` → address (resolved now), Host value, path, https; `what`
/// names the field in messages.
pub fn parse(
    what: &str,
    url: &str,
) -> Result<(std::net::SocketAddr, String, String, bool), String> {
    use std::net::ToSocketAddrs;
    let (rest, https) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(r), _) => (r, true),
        (None, Some(r)) => (r, false),
        (None, None) => {
            return Err(format!(
                "{what} `{url}`: expected an http:// or https:// URL"
            ));
        }
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    if authority.is_empty() || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{what} `{url}` is not a valid URL"));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:{}", if https { 443 } else { 80 })
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{what} `{url}`: cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{what} `{url}`: {authority} has no address"))?;
    Ok((addr, authority.to_string(), path.to_string(), https))
}
