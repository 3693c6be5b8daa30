//! The `compress` stage's configuration: the codings offered and their levels, the smallest
//! body worth it, and the content types compressed; checked here.

use serde::Deserialize;

/// A content coding the gateway can apply.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Brotli (RFC 7932).
    #[serde(rename = "br")]
    Br,
    /// Zstandard (RFC 8878).
    #[serde(rename = "zstd")]
    Zstd,
    /// gzip (RFC 1952).
    #[serde(rename = "gzip")]
    Gzip,
}

impl Coding {
    /// Every coding.
    pub const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    /// Its `Content-Encoding` token.
    pub fn token(self) -> &'static [u8] {
        match self {
            Coding::Br => b"br",
            Coding::Zstd => b"zstd",
            Coding::Gzip => b"gzip",
        }
    }

    /// Its place in `ALL`.
    pub fn index(self) -> usize {
        match self {
            Coding::Br => 0,
            Coding::Zstd => 1,
            Coding::Gzip => 2,
        }
    }
}

/// `[[route.policy]] kind = "compress"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Codings offered, in the gateway's order of preference when a client rates several
    /// alike. Default ["zstd", "gzip", "br"] (cheapest per response first:
    /// `cargo bench -p bench --bench compress`).
    #[serde(default = "all_codings")]
    pub codings: Vec<Coding>,
    /// Responses whose `Content-Length` is below this pass uncompressed. Default "1KiB".
    #[serde(default = "one_kib")]
    pub min_size: conf::ByteSize,
    /// Media types compressed (`type/subtype`, or `type/*`). Default text/*,
    /// application/json, application/javascript, application/xml, image/svg+xml.
    #[serde(default = "default_types")]
    pub types: Vec<String>,
    /// gzip level, 1 (fastest) to 9. Default 1 (as nginx's `gzip_comp_level`).
    #[serde(default = "one")]
    pub gzip_level: u32,
    /// Brotli quality, 0 to 11. Default 4.
    #[serde(default = "four")]
    pub brotli_level: u32,
    /// zstd level, 1 to 19. Default 1.
    #[serde(default = "one_i")]
    pub zstd_level: i32,
}

fn all_codings() -> Vec<Coding> {
    vec![Coding::Zstd, Coding::Gzip, Coding::Br]
}
fn one_kib() -> conf::ByteSize {
    conf::ByteSize(1024)
}
fn default_types() -> Vec<String> {
    [
        "text/*",
        "application/json",
        "application/javascript",
        "application/xml",
        "image/svg+xml",
    ]
    .map(String::from)
    .to_vec()
}
fn one() -> u32 {
    1
}
fn four() -> u32 {
    4
}
fn one_i() -> i32 {
    1
}

impl Config {
    /// Checks what serde cannot; the media types, lowercased.
    pub fn check(&self) -> Result<Vec<Vec<u8>>, String> {
        if self.codings.is_empty() {
            return Err("`codings` is empty: nothing would be compressed".into());
        }
        for (i, c) in self.codings.iter().enumerate() {
            if self.codings.iter().skip(i + 1).any(|d| d == c) {
                return Err(format!("`codings` names {:?} twice", c));
            }
        }
        if !(1..=9).contains(&self.gzip_level) {
            return Err("`gzip_level` must be 1..=9".into());
        }
        if self.brotli_level > 11 {
            return Err("`brotli_level` must be 0..=11".into());
        }
        if !(1..=19).contains(&self.zstd_level) {
            return Err("`zstd_level` must be 1..=19".into());
        }
        let mut types = Vec::with_capacity(self.types.len());
        for t in &self.types {
            let ok = t.split_once('/').is_some_and(|(a, b)| {
                let token = |s: &str| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|c| c.is_ascii_graphic() && !b"/;,\"".contains(&c))
                };
                token(a) && (b == "*" || token(b))
            });
            if !ok {
                return Err(format!(
                    "`types`: `{t}` is not a media type (`type/subtype` or `type/*`)"
                ));
            }
            types.push(t.to_ascii_lowercase().into_bytes());
        }
        Ok(types)
    }
}
