//! `[admin]`: the operator's listener (health, readiness, metrics), apart from the data
//! listeners: its own address, by default loopback only, optionally behind a bearer token.

use serde::Deserialize;
use toml::Spanned;

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConf {
    /// Address of the admin listener (`ip:port`; port 0 picks one).
    #[serde(default = "listen")]
    pub listen: Spanned<String>,
    /// A bearer token every admin request must carry (`Authorization: Bearer …`); empty: none.
    #[serde(default)]
    pub token: String,
}

fn listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:9901".into())
}
