//! Shared benchmark inputs: the request corpus of `proto/tests/corpus` and generated route
//! tables, so benches and tests measure the same bytes.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

/// A small API GET (3 fields).
pub const SMALL_GET: &[u8] = include_bytes!("../../proto/tests/corpus/small_get.http");
/// A browser-like GET with 15 fields and cookies.
pub const BROWSER_GET: &[u8] = include_bytes!("../../proto/tests/corpus/browser_get.http");
/// A POST with a JSON body and a bearer token.
pub const POST_JSON: &[u8] = include_bytes!("../../proto/tests/corpus/post_json.http");

/// The parse benchmark inputs: (name, bytes).
pub const REQUESTS: &[(&str, &[u8])] = &[
    ("small_get", SMALL_GET),
    ("browser_get", BROWSER_GET),
    ("post_json", POST_JSON),
];

/// A config with `n` routes of the shape `/svc{i}/v1/items/{id}`, plus a catch-all.
pub fn routes_config(n: usize) -> conf::Config {
    let mut text = String::from("[[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:9\"]\n");
    for i in 0..n {
        text += &format!(
            "\n[[route]]\nname = \"r{i}\"\npath = \"/svc{i}/v1/items/{{id}}\"\nupstream = \"u\"\n"
        );
    }
    text += "\n[[route]]\nname = \"rest\"\npath = \"/{*rest}\"\nupstream = \"u\"\n";
    match conf::load_str("bench.toml", &text) {
        Ok(c) => c,
        Err(e) => unreachable!("generated config is valid: {e}"),
    }
}
