//! The `compress` stage: compresses response bodies as they stream (gzip, Brotli, zstd), in
//! the coding the client's `Accept-Encoding` rates highest among those offered. Skipped for
//! HEAD, 1xx/204/206/304, bodies already encoded, `Cache-Control: no-transform`, media types
//! not listed and `Content-Length` below `min_size`. A compressed response gets
//! `Content-Encoding`, loses `Content-Length` (the gateway frames it) and `Accept-Ranges`,
//! and its strong `ETag` is weakened; every response of a listed type gets
//! `Vary: Accept-Encoding`.
//!
//! ```toml
//! [[route.policy]]
//! kind = "compress"
//! codings = ["zstd", "gzip"]
//! min_size = "1KiB"
//! ```

use std::cell::Cell;

use proto::{Field, Method, RequestHead, ResponseHead};

pub mod accept;
pub mod config;
pub mod encoder;

use crate::cache::entry::values;
use crate::cache::table::bump;
use crate::exchange::Exchange;
use crate::slots::{Slots, counted};
use crate::stage::{BodyTap, Figure, Piece, Stage, StageBuild, StageContext, Verdict};
pub use config::{Coding, Config};
use encoder::{Encoder, Levels, Spares};

/// The stage.
pub struct Compress {
    codings: Vec<Coding>,
    min_size: u64,
    types: Vec<Vec<u8>>,
    levels: Levels,
    /// The coding chosen for each exchange's response, from its request.
    chosen: Slots<Coding>,
    /// The encoders of responses being compressed.
    active: Slots<Encoder>,
    /// Encoder states of ended responses, for the next ones.
    spares: std::cell::RefCell<Spares>,
    counts: Counts,
}

/// What the stage counts on its shard.
#[derive(Default)]
struct Counts {
    compressed: Cell<u64>,
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    failed: Cell<u64>,
}

impl StageBuild for Compress {
    const KIND: &'static str = "compress";
    type Config = Config;

    fn build(c: Config, _ctx: &StageContext<'_>) -> Result<Self, String> {
        let types = c.check()?;
        Ok(Compress {
            codings: c.codings,
            min_size: c.min_size.0,
            types,
            levels: Levels {
                gzip: c.gzip_level,
                brotli: c.brotli_level,
                zstd: c.zstd_level,
            },
            chosen: Slots::default(),
            active: Slots::default(),
            spares: Default::default(),
            counts: Default::default(),
        })
    }
}

/// Whether a comma-separated field's values hold `token` (case-insensitive).
fn lists(fields: &[Field], buf: &[u8], name: &[u8], token: &[u8]) -> bool {
    values(fields, buf, name)
        .flat_map(|v| v.split(|&c| c == b','))
        .any(|t| {
            let t = t.trim_ascii();
            let t = t
                .split(|&c| c == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            t.eq_ignore_ascii_case(token)
        })
}

impl Compress {
    /// Whether the response's media type is one compressed.
    fn listed_type(&self, head: &ResponseHead, buf: &[u8]) -> bool {
        let Some(ct) = values(&head.fields, buf, b"content-type").next() else {
            return false;
        };
        let media = ct
            .split(|&c| c == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let (major, _) =
            media.split_at(media.iter().position(|&c| c == b'/').unwrap_or(media.len()));
        self.types.iter().any(|t| match t.strip_suffix(b"/*") {
            Some(m) => major.eq_ignore_ascii_case(m),
            None => media.eq_ignore_ascii_case(t),
        })
    }

    /// Whether the body may be compressed at all (for any client).
    fn eligible(&self, head: &ResponseHead, buf: &[u8]) -> bool {
        let encoded = values(&head.fields, buf, b"content-encoding")
            .any(|v| !v.trim_ascii().eq_ignore_ascii_case(b"identity"));
        let refused = head.status < 200
            || matches!(head.status, 204 | 206 | 304)
            || encoded
            || values(&head.fields, buf, b"content-range").next().is_some()
            || lists(&head.fields, buf, b"cache-control", b"no-transform");
        !refused && self.listed_type(head, buf)
    }
}

impl Stage for Compress {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        if head.method == Method::Head {
            return Verdict::Continue;
        }
        let accept = values(&head.fields, buf, b"accept-encoding");
        if let Some(c) = accept::choose(accept, &self.codings) {
            self.chosen.put(ex.serial, c);
        }
        Verdict::Continue
    }

    fn on_response(&self, head: &ResponseHead, buf: &[u8], ex: &mut Exchange) {
        let chosen = self.chosen.take(ex.serial);
        if !self.eligible(head, buf) {
            return;
        }
        let edits = &mut ex.response;
        if !lists(&head.fields, buf, b"vary", b"accept-encoding")
            && !lists(&head.fields, buf, b"vary", b"*")
        {
            edits.add(b"Vary", b"Accept-Encoding");
        }
        let Some(coding) = chosen else {
            return;
        };
        if head.content_length.is_some_and(|n| n < self.min_size) {
            return;
        }
        let made = Encoder::new(
            coding,
            self.levels,
            head.content_length,
            &mut self.spares.borrow_mut(),
        );
        let Ok(encoder) = made else {
            bump(&self.counts.failed, 1);
            return;
        };
        self.active.put(ex.serial, encoder);
        // an upstream's `identity` is no coding (RFC 9110 §8.4.1): it goes, ours comes
        edits.drop_named(&head.fields, buf, b"content-encoding");
        edits.add(b"Content-Encoding", coding.token());
        edits.drop_named(&head.fields, buf, b"accept-ranges");
        edits.weaken_etags(&head.fields, buf);
        bump(&self.counts.compressed, 1);
    }

    fn response_body(&self, _head: &ResponseHead, _buf: &[u8], ex: &Exchange) -> Option<BodyTap> {
        self.active.has(ex.serial).then_some(BodyTap::Rewrite)
    }

    fn on_response_body(&self, piece: Piece<'_>, ex: &mut Exchange, out: &mut Vec<u8>) {
        let before = out.len();
        let ok = match piece {
            Piece::Data(d) => {
                bump(&self.counts.bytes_in, d.len() as u64);
                self.active.with(ex.serial, |e| e.write(d, out))
            }
            Piece::End => self
                .active
                .take(ex.serial)
                .map(|e| e.finish(out, &mut self.spares.borrow_mut())),
            Piece::TooLarge => None,
        };
        if matches!(ok, Some(Err(_))) {
            // a memory sink does not fail; if a coding did, the rest would be garbage
            bump(&self.counts.failed, 1);
            self.active.forget(ex.serial);
        }
        bump(&self.counts.bytes_out, (out.len() - before) as u64);
    }

    fn on_finish(&self, ex: &Exchange) {
        // a response cut short, or one never answered upstream, leaves its state here
        self.chosen.forget(ex.serial);
        self.active.forget(ex.serial);
    }

    fn figures(&self) -> Vec<Figure> {
        let c = &self.counts;
        counted(&[
            ("compressed", &c.compressed),
            ("bytes_in", &c.bytes_in),
            ("bytes_out", &c.bytes_out),
            ("failed", &c.failed),
        ])
    }
}
