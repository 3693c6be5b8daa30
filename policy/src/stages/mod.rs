//! The stage registry: adding a stage is one file in this folder and one line below.

pub mod ai;
pub mod api_key;
pub mod authorize;
pub mod cache;
pub mod client_cert;
pub mod compress;
pub mod concurrency;
pub mod cors;
pub mod headers;
pub mod introspect;
pub mod ip;
pub mod json_fields;
pub mod jwt;
pub mod quota;
pub mod rate_limit;
pub mod redirect;
pub mod respond;
pub mod rewrite;
pub mod subscription;
#[cfg(test)]
pub mod tap_test;
pub mod validate;

crate::stages! {
    ai::Ai,
    api_key::ApiKey,
    authorize::Authorize,
    cache::Cache,
    client_cert::ClientCertStage,
    compress::Compress,
    concurrency::Concurrency,
    cors::Cors,
    headers::Headers,
    introspect::Introspect,
    ip::Ip,
    json_fields::JsonFields,
    jwt::Jwt,
    quota::Quota,
    rate_limit::RateLimit,
    redirect::Redirect,
    respond::Respond,
    rewrite::Rewrite,
    subscription::Subscription,
    validate::Validate,
    #[cfg(test)]
    tap_test::TapTest,
}
