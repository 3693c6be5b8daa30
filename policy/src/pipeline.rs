//! The `Stage` trait, its `Verdict`, and the `Pipeline` that runs a route's stages in config
//! order on the request and in reverse on the response.

use proto::{RequestHead, ResponseHead};
use serde::de::DeserializeOwned;

use crate::exchange::Exchange;
use crate::reply::LocalReply;
use crate::stages::AnyStage;

/// What a stage decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'s> {
    /// Go on to the next stage.
    Continue,
    /// Stop here and answer the client; later stages and the upstream are skipped.
    Respond(&'s LocalReply),
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
}

/// How a stage is built from its `[[route.policy]]` table.
pub trait StageBuild: Sized {
    /// The `kind = "…"` that selects this stage.
    const KIND: &'static str;
    /// The stage's own fields (`deny_unknown_fields`).
    type Config: DeserializeOwned;
    /// Builds the stage, checking everything serde cannot.
    fn build(config: Self::Config) -> Result<Self, String>;
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
        }

        /// Builds one stage from its table (`kind` included).
        pub fn build_stage(mut table: toml::Table) -> Result<AnyStage, String> {
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
                    return <$module::$ty as $crate::pipeline::StageBuild>::build(cfg)
                        .map(AnyStage::$ty)
                        .map_err(|e| format!("kind = \"{kind}\": {e}"));
                }
            )*
            Err(format!("unknown kind `{kind}`, expected one of: {}", KINDS.join(", ")))
        }
    };
}

/// A route's stages, compiled once into a flat array.
#[derive(Default)]
pub struct Pipeline {
    stages: Box<[AnyStage]>,
}

impl Pipeline {
    /// A pipeline of `stages` in config order.
    pub fn new(stages: Vec<AnyStage>) -> Pipeline {
        Pipeline {
            stages: stages.into_boxed_slice(),
        }
    }

    /// Builds the pipeline of every route of `config`, or every stage error with its location.
    pub fn build_all(config: &conf::Config) -> Result<Vec<Pipeline>, conf::ConfErrors> {
        let mut out = Vec::with_capacity(config.routes.len());
        let mut errs = Vec::new();
        for r in &config.routes {
            let mut stages = Vec::with_capacity(r.policy.len());
            for t in &r.policy {
                match crate::stages::build_stage(t.get_ref().clone()) {
                    Ok(s) => stages.push(s),
                    Err(m) => errs.push(conf::ConfError::at(
                        &config.source,
                        &config.text,
                        t.span(),
                        format!("route `{}` [[route.policy]] {m}", r.name),
                    )),
                }
            }
            out.push(Pipeline::new(stages));
        }
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(conf::ConfErrors(errs))
        }
    }

    /// True when the route has no stages.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs `on_request` in order until a stage answers.
    #[inline]
    pub fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        for s in self.stages.iter() {
            if let Verdict::Respond(r) = s.on_request(head, buf, ex) {
                return Verdict::Respond(r);
            }
        }
        Verdict::Continue
    }

    /// Runs `on_response` in reverse order.
    #[inline]
    pub fn on_response(&self, head: &ResponseHead, buf: &[u8], ex: &mut Exchange) {
        for s in self.stages.iter().rev() {
            s.on_response(head, buf, ex);
        }
    }

    /// Runs `on_finish` on every stage.
    #[inline]
    pub fn on_finish(&self, ex: &Exchange) {
        for s in self.stages.iter() {
            s.on_finish(ex);
        }
    }
}
