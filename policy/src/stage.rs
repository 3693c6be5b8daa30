//! The `Stage` trait and what its hooks return (`Verdict`, `Rejection`, `BodyTap`), how a
//! stage is built from its table (`StageBuild`), and the `stages!` registry macro.

use std::borrow::Cow;
use std::path::Path;
use std::rc::Rc;

use proto::{RequestHead, ResponseHead};
use serde::de::DeserializeOwned;

use crate::cache::Purge;
use crate::exchange::Exchange;
use crate::reply::LocalReply;
use crate::task::Task;

/// What a stage decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'s> {
    /// Go on to the next stage.
    Continue,
    /// Stop here and answer the client with a reply the stage rendered at load; later stages
    /// and the upstream are skipped.
    Respond(&'s LocalReply),
    /// Stop here and answer with a reply the stage holds by reference count (an entry it
    /// stored, say); later stages and the upstream are skipped.
    Serve(Rc<LocalReply>),
    /// Stop here and refuse with an `application/problem+json` answer.
    Reject(Rejection),
    /// Wait until this gate opens (another exchange is fetching what this one needs, or
    /// another shard is answering), then run this stage again; the connection bounds each
    /// wait, and waits at most `MAX_WAITS` times per exchange (`ex.waits` counts them).
    Wait(Rc<crate::gate::Gate>),
    /// Stop here and answer with a bodyless response (a CORS preflight's 204).
    Answer {
        /// Status code (a bodyless one: 204, 304, …).
        status: u16,
        /// Whole field lines to send.
        fields: Vec<u8>,
    },
}

/// A refusal: status, the problem's detail, and extra response fields (`WWW-Authenticate`,
/// `Retry-After`, …). Rendered per request, so only refusals pay for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Status code.
    pub status: u16,
    /// Why, for the counters (`"jwt.expired"`, `"ip.denied"`, …).
    pub reason: &'static str,
    /// The problem document's `detail`.
    pub detail: Cow<'static, str>,
    /// Whole field lines (`Name: value\r\n`) to send with it.
    pub fields: Vec<u8>,
}

impl Rejection {
    /// A refusal with no extra fields.
    pub fn new(status: u16, reason: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Rejection {
            status,
            reason,
            detail: detail.into(),
            fields: Vec::new(),
        }
    }

    /// Adds a response field (the value must be a valid field value).
    pub fn with_field(mut self, name: &str, value: &str) -> Self {
        proto::write::put_field(&mut self.fields, name.as_bytes(), value.as_bytes());
        self
    }
}

/// How a stage sees the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyTap {
    /// It looks at each piece as it passes, unchanged (a cache filling an entry), until
    /// `limit` bytes passed; then it is told `Piece::TooLarge` and sees no more.
    Observe {
        /// Most body bytes it looks at.
        limit: u64,
    },
    /// It writes what replaces each piece (a transform, compression); the response then goes
    /// to the client with framing of the gateway's own (chunked, or until close).
    Rewrite,
}

/// A piece of a response body as a tapping stage sees it (decoded data, never framing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// The next bytes of the body.
    Data(&'a [u8]),
    /// The body ended; a rewriting stage writes out what it held back.
    End,
    /// An observing stage's limit was passed; it sees nothing more of this body.
    TooLarge,
}

/// The most times one exchange waits on `Verdict::Wait` (a shared cache: for the owner's
/// answer, for a revalidation on its own shard, for the owner's answer again).
pub const MAX_WAITS: u8 = 3;

/// What stages may know while they are built.
#[derive(Debug, Clone, Copy)]
pub struct StageContext<'a> {
    /// How many shards share the traffic (limits divide by it).
    pub shards: usize,
    /// The directory relative file paths (keys, JWKS) are read from.
    pub dir: &'a Path,
    /// The shard it is built for (`0..shards`).
    pub shard: usize,
    /// Where the stage is in the config: letters from its copies on other shards carry it.
    pub address: &'a crate::letter::Address,
    /// The names of its route's captures, in pattern order (none for global stages).
    pub params: &'a [String],
    /// `[redis]`, when the config has it (global rate limits lease from it).
    pub redis: Option<&'a conf::redis::RedisConf>,
    /// The config's upstream groups, in order (a stage that picks one names it).
    pub upstreams: &'a [conf::model::Upstream],
    /// The config has `[management]` (its catalogue reaches every shard).
    pub management: bool,
}

/// The address of a stage built outside any config (tests, benchmarks).
static NOWHERE: crate::letter::Address = crate::letter::Address {
    route: None,
    position: 0,
};

impl<'a> StageContext<'a> {
    /// The context of a stage built alone (not from a config) for a gateway of `shards`.
    pub fn alone(shards: usize, dir: &'a Path) -> StageContext<'a> {
        StageContext {
            shards,
            dir,
            shard: 0,
            address: &NOWHERE,
            params: &[],
            redis: None,
            upstreams: &[],
            management: false,
        }
    }
}

/// One policy stage. Hooks are synchronous, see shard-local state only, and get the time
/// from the exchange (`ex.now`, `ex.wall`); none blocks or does IO.
pub trait Stage {
    /// Request head, in config order.
    fn on_request(&self, _head: &RequestHead, _buf: &[u8], _ex: &mut Exchange) -> Verdict<'_> {
        Verdict::Continue
    }
    /// The most body bytes this stage must see whole for this request, if it must. Such a
    /// body is read (up to the smallest limit asked; 413 beyond) before anything is forwarded.
    fn wants_body(&self, _head: &RequestHead, _buf: &[u8]) -> Option<u64> {
        None
    }
    /// The whole request body (de-chunked), after every stage's `on_request` let it through.
    fn on_body(
        &self,
        _head: &RequestHead,
        _buf: &[u8],
        _body: &[u8],
        _ex: &mut Exchange,
    ) -> Verdict<'_> {
        Verdict::Continue
    }
    /// The request (whose body a stage read whole) failed upstream: answered `status` (a
    /// 429 or 5xx), or, with `None`, no answer came (unreachable, timed out). A stage that
    /// can send it elsewhere instead (an AI route's fallback provider) sets the new request
    /// in `ex.edits` (`body`, `target`, `fields`) and `ex.upstream.group`, and returns true;
    /// the failed answer is then dropped unread. Only called when `reroutes` said so.
    fn reroute(&self, _status: Option<u16>, _ex: &mut Exchange) -> bool {
        false
    }
    /// Whether `reroute` may ever return true (the connection then keeps a copy of the
    /// request head).
    fn reroutes(&self) -> bool {
        false
    }
    /// Response head from the upstream, in reverse config order. Change it through
    /// `ex.response` (drop received fields by index, add or replace fields).
    fn on_response(&self, _head: &ResponseHead, _buf: &[u8], _ex: &mut Exchange) {}
    /// Whether this stage sees the body of this response (asked after every `on_response`).
    fn response_body(&self, _head: &ResponseHead, _buf: &[u8], _ex: &Exchange) -> Option<BodyTap> {
        None
    }
    /// A piece of the response body, in reverse config order. A `Rewrite` stage appends what
    /// replaces it to `out` (nothing to hold it back); an `Observe` stage leaves `out` alone.
    /// A body cut short (the upstream or the client failed) gets no `End`: `on_finish` then
    /// sees `ex.outcome == Aborted`.
    fn on_response_body(&self, _piece: Piece<'_>, _ex: &mut Exchange, _out: &mut Vec<u8>) {}
    /// Once per exchange, whatever the outcome (`ex.outcome` says which).
    fn on_finish(&self, _ex: &Exchange) {}
    /// Work the shard runs in the background for this stage (fetching a key set, …).
    fn tasks(&self) -> Vec<Rc<dyn Task>> {
        Vec::new()
    }
    /// Drops the stored responses `what` names (a purge reached this shard); how many.
    fn purge(&self, _what: &Purge) -> u64 {
        0
    }
    /// The answer to a background fetch a stage asked for (`ex.refresh`) with `token`:
    /// `None` when it failed. `wall`: seconds since the Unix epoch when it arrived.
    fn on_refresh(&self, _token: u64, _answer: Option<Fetched<'_>>, _wall: u64) {}
    /// The stage's own figures on this shard (a cache's hits, misses, bytes), for metrics.
    fn figures(&self) -> Vec<Figure> {
        Vec::new()
    }
    /// A letter its copy on shard `from` posted to it (`crate::letter`). `wall`: seconds
    /// since the Unix epoch when it arrived.
    fn on_letter(&self, _from: usize, _body: Box<dyn std::any::Any + Send>, _wall: u64) {}
}

/// A whole response fetched in the background: its head (parsed, over `buf`) and body.
#[derive(Debug, Clone, Copy)]
pub struct Fetched<'a> {
    /// The head.
    pub head: &'a ResponseHead,
    /// The bytes the head's spans point into.
    pub buf: &'a [u8],
    /// The body (de-chunked).
    pub body: &'a [u8],
}

/// One of a stage's own figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    /// Its name (`hits`, `bytes_stored`).
    pub name: &'static str,
    /// Its value on this shard.
    pub value: u64,
    /// A level (entries held now), not a count since start.
    pub gauge: bool,
    /// More labels (`model` = `fast`, …), as written: the exposition escapes them.
    pub labels: Vec<(&'static str, String)>,
}

impl Figure {
    /// A count with more labels.
    pub fn labelled(name: &'static str, value: u64, labels: &[(&'static str, &str)]) -> Figure {
        Figure {
            name,
            value,
            gauge: false,
            labels: labels.iter().map(|&(k, v)| (k, v.to_string())).collect(),
        }
    }
}

/// How a stage is built from its `[[route.policy]]` table.
pub trait StageBuild: Sized {
    /// The `kind = "…"` that selects this stage.
    const KIND: &'static str;
    /// The stage's own fields (`deny_unknown_fields`).
    type Config: DeserializeOwned;
    /// Builds the stage, checking everything serde cannot.
    fn build(config: Self::Config, ctx: &StageContext<'_>) -> Result<Self, String>;
}

/// Expands the registry list into `AnyStage`, its dispatching `Stage` impl, `KINDS` and
/// `build_stage`.
#[macro_export]
macro_rules! stages {
    ($($(#[$attr:meta])* $module:ident :: $ty:ident),* $(,)?) => {
        /// Every stage kind, statically dispatched.
        pub enum AnyStage {
            $(
                #[doc = concat!("`", stringify!($module), "`")]
                $(#[$attr])*
                $ty($module::$ty),
            )*
        }

        /// The `kind` names, for messages.
        pub const KINDS: &[&str] = &[$($(#[$attr])* <$module::$ty as $crate::stage::StageBuild>::KIND),*];

        /// The field names of a stage kind's `Config` (read from serde), for the test that
        /// every field is documented in `conf/examples/shardgate.toml`.
        pub fn config_fields(kind: &str) -> &'static [&'static str] {
            $(
                $(#[$attr])*
                if kind == <$module::$ty as $crate::stage::StageBuild>::KIND {
                    return conf::introspect::field_names::<<$module::$ty as $crate::stage::StageBuild>::Config>();
                }
            )*
            &[]
        }

        impl $crate::stage::Stage for AnyStage {
            #[inline]
            fn on_request(&self, head: &proto::RequestHead, buf: &[u8], ex: &mut $crate::Exchange) -> $crate::Verdict<'_> {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.on_request(head, buf, ex),)* }
            }
            #[inline]
            fn wants_body(&self, head: &proto::RequestHead, buf: &[u8]) -> Option<u64> {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.wants_body(head, buf),)* }
            }
            fn reroute(&self, status: Option<u16>, ex: &mut $crate::Exchange) -> bool {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.reroute(status, ex),)* }
            }
            fn reroutes(&self) -> bool {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.reroutes(),)* }
            }
            fn on_body(&self, head: &proto::RequestHead, buf: &[u8], body: &[u8], ex: &mut $crate::Exchange) -> $crate::Verdict<'_> {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.on_body(head, buf, body, ex),)* }
            }
            #[inline]
            fn on_response(&self, head: &proto::ResponseHead, buf: &[u8], ex: &mut $crate::Exchange) {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.on_response(head, buf, ex),)* }
            }
            #[inline]
            fn response_body(&self, head: &proto::ResponseHead, buf: &[u8], ex: &$crate::Exchange) -> Option<$crate::BodyTap> {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.response_body(head, buf, ex),)* }
            }
            fn on_response_body(&self, piece: $crate::Piece<'_>, ex: &mut $crate::Exchange, out: &mut Vec<u8>) {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.on_response_body(piece, ex, out),)* }
            }
            #[inline]
            fn on_finish(&self, ex: &$crate::Exchange) {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.on_finish(ex),)* }
            }
            fn tasks(&self) -> Vec<std::rc::Rc<dyn $crate::task::Task>> {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.tasks(),)* }
            }
            fn purge(&self, what: &$crate::cache::Purge) -> u64 {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.purge(what),)* }
            }
            fn on_refresh(&self, token: u64, answer: Option<$crate::stage::Fetched<'_>>, wall: u64) {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.on_refresh(token, answer, wall),)* }
            }
            fn figures(&self) -> Vec<$crate::stage::Figure> {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.figures(),)* }
            }
            fn on_letter(&self, from: usize, body: Box<dyn std::any::Any + Send>, wall: u64) {
                match self { $($(#[$attr])* AnyStage::$ty(s) => s.on_letter(from, body, wall),)* }
            }
        }

        impl AnyStage {
            /// The stage's `kind`.
            pub fn kind(&self) -> &'static str {
                match self { $($(#[$attr])* AnyStage::$ty(_) => <$module::$ty as $crate::stage::StageBuild>::KIND,)* }
            }
        }

        /// Builds one stage from its table (`kind` included).
        pub fn build_stage(mut table: toml::Table, ctx: &$crate::stage::StageContext<'_>) -> Result<AnyStage, String> {
            let kind = match table.remove("kind") {
                Some(toml::Value::String(k)) => k,
                Some(_) => return Err("`kind` must be a string".to_string()),
                None => return Err(format!("missing `kind`; expected one of: {}", KINDS.join(", "))),
            };
            $(
                $(#[$attr])*
                if kind == <$module::$ty as $crate::stage::StageBuild>::KIND {
                    let cfg = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
                        format!("kind = \"{kind}\": {}", e.message().trim())
                    })?;
                    return <$module::$ty as $crate::stage::StageBuild>::build(cfg, ctx)
                        .map(AnyStage::$ty)
                        .map_err(|e| format!("kind = \"{kind}\": {e}"));
                }
            )*
            Err(format!("unknown kind `{kind}`, expected one of: {}", KINDS.join(", ")))
        }
    };
}
