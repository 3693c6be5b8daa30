//! The broker's settings from `[redis]`: one client per server (`address`, then `standbys`),
//! each with the database, the password from its file and the TLS files read at start.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

/// The broker's settings, from `[redis]`.
pub struct Settings {
    /// Each server (its address, for log lines) with the database, password and TLS
    /// settings; nothing connected yet. `address` first, then `standbys`.
    pub servers: Vec<(String, redis::Client)>,
    /// To connect.
    pub connect_timeout: Duration,
    /// Per command.
    pub command_timeout: Duration,
}

/// Reads a `[redis]` file named relative to `dir`.
fn read(dir: &Path, what: &str, f: Option<&Spanned<String>>) -> Result<Option<Vec<u8>>, String> {
    let Some(f) = f else {
        return Ok(None);
    };
    let path = dir.join(f.get_ref());
    std::fs::read(&path)
        .map(Some)
        .map_err(|e| format!("[redis] {what} {}: {e}", path.display()))
}

/// `:<password>@` for a URL, percent-encoded; the file's last line break is not part of it.
fn userinfo(password: Option<Vec<u8>>) -> String {
    let Some(bytes) = password else {
        return String::new();
    };
    let end = bytes
        .iter()
        .rposition(|&b| b != b'\n' && b != b'\r')
        .map_or(0, |i| i + 1);
    let encoded: String = bytes
        .get(..end)
        .unwrap_or_default()
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!(":{encoded}@")
}

impl Settings {
    /// From `[redis]` (its files read relative to `dir`).
    pub fn new(r: &conf::redis::RedisConf, dir: &Path) -> Result<Settings, String> {
        let password = userinfo(read(dir, "password_file", r.password_file.as_ref())?);
        let ca = read(dir, "ca_file", r.ca_file.as_ref())?;
        let cert = read(dir, "cert_file", r.cert_file.as_ref())?;
        let key = read(dir, "key_file", r.key_file.as_ref())?;
        let scheme = if r.tls { "rediss" } else { "redis" };
        let mut servers = Vec::new();
        for address in std::iter::once(&r.address).chain(&r.standbys) {
            let address = address.get_ref();
            let url = format!("{scheme}://{password}{address}/{}", r.database);
            let client = if ca.is_some() || cert.is_some() {
                let client_tls = cert
                    .clone()
                    .zip(key.clone())
                    .map(|(client_cert, client_key)| redis::ClientTlsConfig {
                        client_cert,
                        client_key,
                    });
                let certs = redis::TlsCertificates {
                    client_tls,
                    root_cert: ca.clone(),
                };
                redis::Client::build_with_tls(url.as_str(), certs)
            } else {
                redis::Client::open(url.as_str())
            }
            .map_err(|e| format!("[redis] {address}: {e}"))?;
            servers.push((address.clone(), client));
        }
        Ok(Settings {
            servers,
            connect_timeout: r.connect_timeout.0,
            command_timeout: r.command_timeout.0,
        })
    }
}
