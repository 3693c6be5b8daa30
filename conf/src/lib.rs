//! shardgate's configuration: the TOML model (`model`), values with units (`values`),
//! cross-reference checks (`validate`) and errors that point at file:line:col (`error`).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod aggregate;
pub mod discovery;
pub mod error;
pub mod http2;
pub mod introspect;
pub mod management;
pub mod model;
pub mod observe;
pub mod redis;
pub mod route_traffic;
pub mod tls;
pub mod traffic;
mod traffic_check;
pub mod validate;
pub mod values;

pub use error::{ConfError, ConfErrors};
pub use http2::Http2Conf;
pub use model::{
    Config, Driver, ForwardingConf, HostRewrite, Listener, Pin, RouteConf, ServerConf, Shards,
    UpstreamConf, UpstreamProtocol,
};
pub use tls::{ClientAuth, ListenerConf, TlsConf, TlsVersion, UnknownSni, UpstreamTlsConf};
pub use traffic::{
    BalanceConf, BreakerConf, CheckKind, HashOn, HealthConf, OutlierConf, RetryConf, StartState,
    TargetConf,
};
pub use values::{ByteSize, Duration};

/// The embedded default configuration, used when no `--config` is given.
pub const DEFAULT: &str = include_str!("../examples/default.toml");
/// The name the embedded default is reported under in messages.
pub const DEFAULT_NAME: &str = "<embedded default>";

/// Reads and validates a configuration file.
pub fn load(path: &std::path::Path) -> Result<Config, ConfErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfErrors::one(ConfError::whole_file(
            &name,
            format!("cannot read file: {e}"),
        ))
    })?;
    load_str(&name, &text)
}

/// Parses and validates configuration text; `name` is used in error messages.
pub fn load_str(name: &str, text: &str) -> Result<Config, ConfErrors> {
    let file: model::FileModel =
        toml::from_str(text).map_err(|e| ConfErrors::one(ConfError::from_toml(name, text, &e)))?;
    validate::validate(name, text, file)
}
