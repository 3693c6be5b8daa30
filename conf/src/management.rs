//! `[management]`: the catalogue of tenants, APIs, plans, consumers and subscriptions, kept
//! in an embedded database the control side owns and changed through the admin API.

use serde::Deserialize;
use toml::Spanned;

use crate::values::Duration;

/// `[management]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementConf {
    /// Where the catalogue and call figures live: "sqlite" (the file `path`) or "postgres"
    /// (the server `postgres` names, which the nodes of a fleet share). Default "sqlite".
    #[serde(default = "default_store")]
    pub store: Spanned<String>,
    /// With store = "postgres": the server, as `host=… port=… user=… dbname=…` or a
    /// `postgresql://` URL, without the password. Default none.
    #[serde(default)]
    pub postgres: Option<Spanned<String>>,
    /// With store = "postgres": a file holding the password, relative to the config file.
    /// Default none.
    #[serde(default)]
    pub password_file: Option<Spanned<String>>,
    /// The SQLite database file, relative to the config file (made on first start, its
    /// schema migrated on later ones). Default "shardgate.db".
    #[serde(default = "default_path")]
    pub path: Spanned<String>,
    /// How often the call figures are collected from the shards and written (each shard
    /// counts on its own meanwhile, and never waits for the store). Default "10s".
    #[serde(default = "default_flush")]
    pub flush: Duration,
    /// How long minute figures are kept before they are rolled up into hours. Default "1d".
    #[serde(default = "default_minutes")]
    pub keep_minutes: Duration,
    /// How long hour figures are kept before they are rolled up into days. Default "30d".
    #[serde(default = "default_hours")]
    pub keep_hours: Duration,
    /// How long day figures are kept. Default "365d".
    #[serde(default = "default_days")]
    pub keep_days: Duration,
}

fn default_store() -> Spanned<String> {
    Spanned::new(0..0, "sqlite".into())
}
fn default_flush() -> Duration {
    Duration::millis(10_000)
}
fn default_minutes() -> Duration {
    Duration::millis(86_400_000)
}
fn default_hours() -> Duration {
    Duration::millis(30 * 86_400_000)
}
fn default_days() -> Duration {
    Duration::millis(365 * 86_400_000)
}

fn default_path() -> Spanned<String> {
    Spanned::new(0..0, "shardgate.db".into())
}

/// What is wrong with it: (where, why).
pub fn check(m: &ManagementConf) -> Vec<(std::ops::Range<usize>, String)> {
    let mut errs = Vec::new();
    if m.path.get_ref().trim().is_empty() {
        errs.push((
            m.path.span(),
            "[management] path must name a file".to_string(),
        ));
    }
    match (m.store.get_ref().as_str(), &m.postgres) {
        ("sqlite", None) | ("postgres", Some(_)) => {}
        ("sqlite", Some(p)) => errs.push((
            p.span(),
            "[management] postgres needs store = \"postgres\"".into(),
        )),
        ("postgres", None) => errs.push((
            m.store.span(),
            "[management] store = \"postgres\" needs postgres = \"host=… dbname=…\"".into(),
        )),
        (other, _) => errs.push((
            m.store.span(),
            format!("[management] store = {other:?}: use \"sqlite\" or \"postgres\""),
        )),
    }
    if m.password_file.is_some() && m.postgres.is_none() {
        errs.push((
            0..0,
            "[management] password_file is for store = \"postgres\"".into(),
        ));
    }
    let at_least = |d: crate::values::Duration, s: u64| d.0 >= std::time::Duration::from_secs(s);
    if m.flush.0 < std::time::Duration::from_millis(100) {
        errs.push((0..0, "[management] flush: at least 100ms".into()));
    }
    if !at_least(m.keep_minutes, 3600)
        || !at_least(m.keep_hours, 86_400)
        || m.keep_days.0 < m.keep_hours.0
    {
        errs.push((
            0..0,
            "[management] keep_minutes at least 1h, keep_hours at least 1d, keep_days at least keep_hours".into(),
        ));
    }
    errs
}
