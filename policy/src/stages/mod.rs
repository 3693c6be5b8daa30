//! The stage registry: adding a stage is one file in this folder and one line below.

pub mod api_key;
pub mod authorize;
pub mod cache;
pub mod client_cert;
pub mod compress;
pub mod concurrency;
pub mod cors;
pub mod headers;
pub mod ip;
pub mod jwt;
pub mod rate_limit;
pub mod respond;
#[cfg(test)]
pub mod tap_test;
pub mod validate;

crate::stages! {
    api_key::ApiKey,
    authorize::Authorize,
    cache::Cache,
    client_cert::ClientCertStage,
    compress::Compress,
    concurrency::Concurrency,
    cors::Cors,
    headers::Headers,
    ip::Ip,
    jwt::Jwt,
    rate_limit::RateLimit,
    respond::Respond,
    validate::Validate,
    #[cfg(test)]
    tap_test::TapTest,
}
