//! The `Stage` trait, its `Verdict`, and the `Pipeline` that runs a route's stages in config
//! order on the request and in reverse on the response, counting refusals by reason.

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use proto::{RequestHead, ResponseHead};
use serde::de::DeserializeOwned;

use crate::exchange::Exchange;
use crate::reply::LocalReply;
use crate::stages::AnyStage;
use crate::stages::jwt::JwksFeed;

/// What a stage decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'s> {
    /// Go on to the next stage.
    Continue,
    /// Stop here and answer the client; later stages and the upstream are skipped.
    Respond(&'s LocalReply),
    /// Stop here and refuse with an `application/problem+json` answer.
    Reject(Rejection),
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

/// What stages may know while they are built.
#[derive(Debug, Clone, Copy)]
pub struct StageContext<'a> {
    /// How many shards share the traffic (limits divide by it).
    pub shards: usize,
    /// The directory relative file paths (keys, JWKS) are read from.
    pub dir: &'a Path,
}

/// One policy stage. Hooks are synchronous and see shard-local state only.
pub trait Stage {
    /// Request head, in config order.
    fn on_request(&self, _head: &RequestHead, _buf: &[u8], _ex: &mut Exchange) -> Verdict<'_> {
        Verdict::Continue
    }
    /// Response head, in reverse config order.
    fn on_response(&self, _head: &ResponseHead, _buf: &[u8], _ex: &mut Exchange) {}
    /// Once per exchange, whatever the outcome.
    fn on_finish(&self, _ex: &Exchange) {}
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
    /// Key sets the shard must fetch in the background for this stage.
    fn feeds(&self) -> Vec<Rc<JwksFeed>> {
        Vec::new()
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
    ($($module:ident :: $ty:ident),* $(,)?) => {
        /// Every stage kind, statically dispatched.
        pub enum AnyStage {
            $(
                #[doc = concat!("`", stringify!($module), "`")]
                $ty($module::$ty),
            )*
        }

        /// The `kind` names, for messages.
        pub const KINDS: &[&str] = &[$(<$module::$ty as $crate::pipeline::StageBuild>::KIND),*];

        /// The field names of a stage kind's `Config` (read from serde), for the test that
        /// every field is documented in `conf/examples/shardgate.toml`.
        pub fn config_fields(kind: &str) -> &'static [&'static str] {
            $(
                if kind == <$module::$ty as $crate::pipeline::StageBuild>::KIND {
                    return conf::introspect::field_names::<<$module::$ty as $crate::pipeline::StageBuild>::Config>();
                }
            )*
            &[]
        }

        impl $crate::pipeline::Stage for AnyStage {
            #[inline]
            fn on_request(&self, head: &proto::RequestHead, buf: &[u8], ex: &mut $crate::Exchange) -> $crate::Verdict<'_> {
                match self { $(AnyStage::$ty(s) => s.on_request(head, buf, ex),)* }
            }
            #[inline]
            fn on_response(&self, head: &proto::ResponseHead, buf: &[u8], ex: &mut $crate::Exchange) {
                match self { $(AnyStage::$ty(s) => s.on_response(head, buf, ex),)* }
            }
            #[inline]
            fn on_finish(&self, ex: &$crate::Exchange) {
                match self { $(AnyStage::$ty(s) => s.on_finish(ex),)* }
            }
            fn feeds(&self) -> Vec<std::rc::Rc<$crate::stages::jwt::JwksFeed>> {
                match self { $(AnyStage::$ty(s) => s.feeds(),)* }
            }
            #[inline]
            fn wants_body(&self, head: &proto::RequestHead, buf: &[u8]) -> Option<u64> {
                match self { $(AnyStage::$ty(s) => s.wants_body(head, buf),)* }
            }
            fn on_body(&self, head: &proto::RequestHead, buf: &[u8], body: &[u8], ex: &mut $crate::Exchange) -> $crate::Verdict<'_> {
                match self { $(AnyStage::$ty(s) => s.on_body(head, buf, body, ex),)* }
            }
        }

        /// Builds one stage from its table (`kind` included).
        pub fn build_stage(mut table: toml::Table, ctx: &$crate::pipeline::StageContext<'_>) -> Result<AnyStage, String> {
            let kind = match table.remove("kind") {
                Some(toml::Value::String(k)) => k,
                Some(_) => return Err("`kind` must be a string".to_string()),
                None => return Err(format!("missing `kind`; expected one of: {}", KINDS.join(", "))),
            };
            $(
                if kind == <$module::$ty as $crate::pipeline::StageBuild>::KIND {
                    let cfg = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
                        format!("kind = \"{kind}\": {}", e.message().trim())
                    })?;
                    return <$module::$ty as $crate::pipeline::StageBuild>::build(cfg, ctx)
                        .map(AnyStage::$ty)
                        .map_err(|e| format!("kind = \"{kind}\": {e}"));
                }
            )*
            Err(format!("unknown kind `{kind}`, expected one of: {}", KINDS.join(", ")))
        }
    };
}

/// A route's stages, compiled once per shard into flat arrays — the global `[[policy]]`
/// stages (shared by every route of the shard, so a global limit is one limit) then the
/// route's own — and its refusal counters.
#[derive(Default)]
pub struct Pipeline {
    global: Rc<[AnyStage]>,
    stages: Box<[AnyStage]>,
    refusals: RefCell<Vec<(&'static str, u64)>>,
}

impl Pipeline {
    /// A pipeline of `stages` in config order, after no global stages.
    pub fn new(stages: Vec<AnyStage>) -> Pipeline {
        Pipeline::with_global(Rc::from(Vec::new()), stages)
    }

    fn with_global(global: Rc<[AnyStage]>, stages: Vec<AnyStage>) -> Pipeline {
        Pipeline {
            global,
            stages: stages.into_boxed_slice(),
            refusals: RefCell::new(Vec::new()),
        }
    }

    /// Builds the pipeline of every route of `config` for a gateway of `shards` shards, or
    /// every stage error with its location.
    pub fn build_all(
        config: &conf::Config,
        shards: usize,
    ) -> Result<Vec<Pipeline>, conf::ConfErrors> {
        let dir = Path::new(&config.source)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let ctx = StageContext {
            shards: shards.max(1),
            dir,
        };
        let mut errs = Vec::new();
        let mut build = |tables: &[toml::Spanned<toml::Table>], what: &str| {
            let mut stages = Vec::with_capacity(tables.len());
            for t in tables {
                match crate::stages::build_stage(t.get_ref().clone(), &ctx) {
                    Ok(s) => stages.push(s),
                    Err(m) => errs.push(conf::ConfError::at(
                        &config.source,
                        &config.text,
                        t.span(),
                        format!("{what} {m}"),
                    )),
                }
            }
            stages
        };
        let global: Rc<[AnyStage]> = Rc::from(build(&config.policy, "[[policy]]"));
        let out = config
            .routes
            .iter()
            .map(|r| {
                let what = format!("route `{}` [[route.policy]]", r.name);
                Pipeline::with_global(global.clone(), build(&r.policy, &what))
            })
            .collect();
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(conf::ConfErrors(errs))
        }
    }

    /// True when the route has no stages.
    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.stages.is_empty()
    }

    /// Runs `on_request` in order until a stage answers; counts refusals by reason.
    #[inline]
    pub fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        self.until_answer(|s| s.on_request(head, buf, ex))
    }

    /// Calls `hook` on every stage in order until one answers; counts a refusal by reason.
    #[inline]
    fn until_answer<'s>(
        &'s self,
        mut hook: impl FnMut(&'s AnyStage) -> Verdict<'s>,
    ) -> Verdict<'s> {
        for s in self.global.iter().chain(self.stages.iter()) {
            match hook(s) {
                Verdict::Continue => {}
                Verdict::Reject(r) => {
                    self.count(r.reason);
                    return Verdict::Reject(r);
                }
                answer => return answer,
            }
        }
        Verdict::Continue
    }

    #[cold]
    fn count(&self, reason: &'static str) {
        let mut counts = self.refusals.borrow_mut();
        match counts.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => counts.push((reason, 1)),
        }
    }

    /// The smallest body limit any stage asks for this request (`None`: stream it).
    #[inline]
    pub fn wants_body(&self, head: &RequestHead, buf: &[u8]) -> Option<u64> {
        self.global
            .iter()
            .chain(self.stages.iter())
            .filter_map(|s| s.wants_body(head, buf))
            .min()
    }

    /// Shows the whole body to every stage in order until one refuses; counts refusals.
    pub fn on_body(
        &self,
        head: &RequestHead,
        buf: &[u8],
        body: &[u8],
        ex: &mut Exchange,
    ) -> Verdict<'_> {
        self.until_answer(|s| s.on_body(head, buf, body, ex))
    }

    /// Background key feeds of this pipeline's stages (global ones included).
    pub fn feeds(&self) -> Vec<Rc<JwksFeed>> {
        self.global
            .iter()
            .chain(self.stages.iter())
            .flat_map(|s| s.feeds())
            .collect()
    }

    /// Refusals so far on this shard, by reason.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.refusals.borrow().clone()
    }

    /// Runs `on_response` in reverse order.
    #[inline]
    pub fn on_response(&self, head: &ResponseHead, buf: &[u8], ex: &mut Exchange) {
        for s in self.stages.iter().rev().chain(self.global.iter().rev()) {
            s.on_response(head, buf, ex);
        }
    }

    /// Runs `on_finish` on every stage.
    #[inline]
    pub fn on_finish(&self, ex: &Exchange) {
        for s in self.global.iter().chain(self.stages.iter()) {
            s.on_finish(ex);
        }
    }
}
