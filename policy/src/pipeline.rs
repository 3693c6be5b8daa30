//! The `Pipeline` that runs a route's stages in config order on the request and in reverse
//! on the response (heads and body taps), counting refusals by reason; built per shard.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use proto::{RequestHead, ResponseHead};

use crate::exchange::{Exchange, Tap};
use crate::letter::{Address, Letter};
use crate::stage::{BodyTap, Figure, Piece, Stage, StageContext, Verdict};
use crate::stages::AnyStage;
use crate::task::Task;

/// Stages built from one list of tables, and those tables (a rebuilt config takes over the
/// stages, and so their state, of a list that did not change).
struct Built {
    stages: Rc<[AnyStage]>,
    source: Vec<toml::Table>,
}

/// A route's stages, compiled once per shard into flat arrays — the global `[[policy]]`
/// stages (shared by every route of the shard, so a global limit is one limit) then the
/// route's own — and its refusal counters. A clone shares all of them.
#[derive(Default, Clone)]
pub struct Pipeline {
    global: Rc<[AnyStage]>,
    stages: Rc<[AnyStage]>,
    refusals: Rc<RefCell<Vec<(&'static str, u64)>>>,
    /// A stage may reroute a failed request (asked once, when built).
    reroutes: bool,
}

/// Every pipeline of a config: the global stages alone (for requests never routed: parse
/// errors, 404, 405) and one per route, in route order.
#[derive(Default)]
pub struct Pipelines {
    /// The global stages alone.
    pub global: Pipeline,
    /// One per route, indexed by `RouteId`.
    pub routes: Vec<Pipeline>,
    global_source: Vec<toml::Table>,
    route_sources: Vec<(String, Vec<toml::Table>)>,
    /// Each route's capture names (a stage list is taken over only when they match, since
    /// templates hold captures by index).
    route_params: Vec<Vec<String>>,
    shards: usize,
}

impl Pipeline {
    /// A pipeline of `stages` in config order, after no global stages.
    pub fn new(stages: Vec<AnyStage>) -> Pipeline {
        Pipeline::with_global(Rc::from(Vec::new()), Rc::from(stages))
    }

    fn with_global(global: Rc<[AnyStage]>, stages: Rc<[AnyStage]>) -> Pipeline {
        let reroutes = global.iter().chain(stages.iter()).any(|s| s.reroutes());
        Pipeline {
            global,
            stages,
            refusals: Rc::default(),
            reroutes,
        }
    }

    /// Builds the pipeline of every route of `config` for a gateway of `shards` shards, or
    /// every stage error with its location.
    pub fn build_all(config: &conf::Config, shards: usize) -> Result<Pipelines, conf::ConfErrors> {
        Pipelines::build(config, shards, 0, None)
    }

    /// True when the route has no stages.
    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.stages.is_empty()
    }

    fn all(&self) -> impl DoubleEndedIterator<Item = &AnyStage> {
        self.global.iter().chain(self.stages.iter())
    }

    fn stage_at(&self, i: u16) -> Option<&AnyStage> {
        let i = usize::from(i);
        match i.checked_sub(self.global.len()) {
            None => self.global.get(i),
            Some(j) => self.stages.get(j),
        }
    }

    /// Runs `on_request` in order until a stage answers; counts refusals by reason. After a
    /// `Wait` it runs again from the stage that said it (`ex.resume`).
    #[inline]
    pub fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        let mut verdict = Verdict::Continue;
        for (i, s) in self.all().enumerate().skip(usize::from(ex.resume)) {
            verdict = s.on_request(head, buf, ex);
            if verdict != Verdict::Continue {
                if matches!(verdict, Verdict::Wait(_)) {
                    ex.resume = u16::try_from(i).unwrap_or(u16::MAX);
                    ex.waits = ex.waits.saturating_add(1);
                }
                break;
            }
        }
        self.note(verdict, ex)
    }

    /// The smallest body limit any stage asks for this request (`None`: stream it).
    #[inline]
    pub fn wants_body(&self, head: &RequestHead, buf: &[u8]) -> Option<u64> {
        self.all().filter_map(|s| s.wants_body(head, buf)).min()
    }

    /// Shows the whole body to every stage in order until one answers; counts refusals.
    pub fn on_body(
        &self,
        head: &RequestHead,
        buf: &[u8],
        body: &[u8],
        ex: &mut Exchange,
    ) -> Verdict<'_> {
        let mut verdict = Verdict::Continue;
        for s in self.all() {
            verdict = s.on_body(head, buf, body, ex);
            if verdict != Verdict::Continue {
                break;
            }
        }
        self.note(verdict, ex)
    }

    /// Records a refusal in the exchange and the counters.
    #[inline]
    fn note<'s>(&self, verdict: Verdict<'s>, ex: &mut Exchange) -> Verdict<'s> {
        if let Verdict::Reject(r) = &verdict {
            self.count(r.reason);
            ex.refusal = Some(r.reason);
        }
        verdict
    }

    #[cold]
    fn count(&self, reason: &'static str) {
        let mut counts = self.refusals.borrow_mut();
        match counts.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => counts.push((reason, 1)),
        }
    }

    /// Refusals so far on this shard, by reason.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.refusals.borrow().clone()
    }

    /// Hands the answer to a background fetch (`ex.refresh`) to every stage; the one that
    /// asked knows its token.
    pub fn on_refresh(&self, token: u64, answer: Option<crate::stage::Fetched<'_>>, wall: u64) {
        for s in self.all() {
            s.on_refresh(token, answer, wall);
        }
    }

    /// The figures of this route's own stages (global ones are the global pipeline's), with
    /// each stage's kind.
    pub fn figures(&self) -> Vec<(&'static str, Figure)> {
        let mut out = Vec::new();
        for s in self.stages.iter() {
            out.extend(s.figures().into_iter().map(|f| (s.kind(), f)));
        }
        out
    }

    /// Whether a stage may send a failed request elsewhere (`Stage::reroutes`).
    #[inline]
    pub fn reroutes(&self) -> bool {
        self.reroutes
    }

    /// Asks the stages, in config order, to send a failed request elsewhere; true when one
    /// set a new request (`Stage::reroute`).
    pub fn reroute(&self, status: Option<u16>, ex: &mut Exchange) -> bool {
        self.all().any(|s| s.reroute(status, ex))
    }

    /// Runs `on_response` in reverse order.
    #[inline]
    pub fn on_response(&self, head: &ResponseHead, buf: &[u8], ex: &mut Exchange) {
        for s in self.all().rev() {
            s.on_response(head, buf, ex);
        }
    }

    /// After `on_response`: records in `ex.taps` the stages that see this response's body
    /// (in response order). True when one of them rewrites it.
    pub fn open_taps(&self, head: &ResponseHead, buf: &[u8], ex: &mut Exchange) -> bool {
        ex.taps.clear();
        let mut rewrite = false;
        let n = self.global.len() + self.stages.len();
        for (i, s) in (0..n).rev().zip(self.all().rev()) {
            let Ok(stage) = u16::try_from(i) else {
                continue;
            };
            let tap = match s.response_body(head, buf, ex) {
                None => continue,
                Some(BodyTap::Rewrite) => Tap {
                    stage,
                    rewrite: true,
                    left: u64::MAX,
                },
                Some(BodyTap::Observe { limit }) => Tap {
                    stage,
                    rewrite: false,
                    left: limit,
                },
            };
            rewrite |= tap.rewrite;
            ex.taps.push(tap);
        }
        rewrite
    }

    /// Passes a piece of the response body (`None`: its end) through the taps in `ex.taps`.
    /// Returns true when a stage rewrote it: what to send is then in `out` (else it is the
    /// piece itself). `scratch` is a second buffer for chained rewrites.
    pub fn tap(
        &self,
        piece: Option<&[u8]>,
        ex: &mut Exchange,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> bool {
        let end = piece.is_none();
        let mut at = At::Piece;
        let mut i = 0;
        while let Some(&tap) = ex.taps.get(i) {
            let Some(stage) = self.stage_at(tap.stage) else {
                i += 1;
                continue;
            };
            if tap.rewrite {
                at = match at {
                    At::Piece => {
                        out.clear();
                        feed(stage, piece.unwrap_or_default(), end, ex, out);
                        At::Out
                    }
                    At::Out => {
                        scratch.clear();
                        feed(stage, out, end, ex, scratch);
                        At::Scratch
                    }
                    At::Scratch => {
                        out.clear();
                        feed(stage, scratch, end, ex, out);
                        At::Out
                    }
                };
                i += 1;
                continue;
            }
            let input: &[u8] = match at {
                At::Piece => piece.unwrap_or_default(),
                At::Out => out,
                At::Scratch => scratch,
            };
            let len = input.len() as u64;
            if len > tap.left {
                stage.on_response_body(Piece::TooLarge, ex, &mut Vec::new());
                ex.taps.remove(i);
                continue;
            }
            if let Some(t) = ex.taps.get_mut(i) {
                t.left -= len;
            }
            feed(stage, input, end, ex, &mut Vec::new());
            i += 1;
        }
        if at == At::Scratch {
            std::mem::swap(out, scratch);
        }
        at != At::Piece
    }

    /// Runs `on_finish` on every stage.
    #[inline]
    pub fn on_finish(&self, ex: &Exchange) {
        for s in self.all() {
            s.on_finish(ex);
        }
    }

    /// Background tasks of this pipeline's stages (global ones included).
    pub fn tasks(&self) -> Vec<Rc<dyn Task>> {
        self.all().flat_map(|s| s.tasks()).collect()
    }
}

impl Pipelines {
    /// The figures of the global stages, with each stage's kind.
    pub fn global_figures(&self) -> Vec<(&'static str, Figure)> {
        let mut out = Vec::new();
        for s in self.global.global.iter() {
            out.extend(s.figures().into_iter().map(|f| (s.kind(), f)));
        }
        out
    }

    /// Drops the stored responses `what` names from every stage (the global ones once);
    /// how many.
    pub fn purge(&self, what: &crate::cache::Purge) -> u64 {
        let global = self.global.global.iter().chain(self.global.stages.iter());
        let own = self.routes.iter().flat_map(|p| p.stages.iter());
        global.chain(own).map(|s| s.purge(what)).sum()
    }

    /// Compiles every pipeline of `config` for a gateway of `shards` shards, or every stage
    /// error with its location. With `previous` (the pipelines of the config this one
    /// replaces, on the same shard), a stage list whose tables did not change is taken over
    /// with its state (buckets, caches, key sets, refusal counts) instead of built again.
    pub fn build(
        config: &conf::Config,
        shards: usize,
        shard: usize,
        previous: Option<&Pipelines>,
    ) -> Result<Pipelines, conf::ConfErrors> {
        let dir = Path::new(&config.source)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let shards = shards.max(1);
        let previous = previous.filter(|p| p.shards == shards);
        let mut errs = Vec::new();
        let mut build = |tables: &[toml::Spanned<toml::Table>],
                         route: Option<(usize, &str)>,
                         params: &[String],
                         what: &str|
         -> Built {
            let mut stages = Vec::with_capacity(tables.len());
            let route = route.map(|(i, name)| {
                let i = u32::try_from(i).unwrap_or(u32::MAX);
                (i, std::sync::Arc::<str>::from(name))
            });
            for (i, t) in tables.iter().enumerate() {
                let address = Address {
                    route: route.clone(),
                    position: u16::try_from(i).unwrap_or(u16::MAX),
                };
                let ctx = StageContext {
                    shards,
                    dir,
                    shard,
                    address: &address,
                    params,
                    redis: config.redis.as_ref(),
                    upstreams: &config.upstreams,
                    management: config.management.is_some(),
                };
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
            Built {
                stages: Rc::from(stages),
                source: tables.iter().map(|t| t.get_ref().clone()).collect(),
            }
        };
        let global_source: Vec<toml::Table> =
            config.policy.iter().map(|t| t.get_ref().clone()).collect();
        let global = match previous {
            Some(p) if p.global_source == global_source => Built {
                stages: p.global.global.clone(),
                source: global_source,
            },
            _ => build(&config.policy, None, &[], "[[policy]]"),
        };
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut route_sources = Vec::with_capacity(config.routes.len());
        let mut route_params = Vec::with_capacity(config.routes.len());
        for (index, r) in config.routes.iter().enumerate() {
            let source: Vec<toml::Table> = r.policy.iter().map(|t| t.get_ref().clone()).collect();
            let params = crate::router::capture_names(&r.path);
            let old = previous.and_then(|p| {
                let i = p
                    .route_sources
                    .iter()
                    .position(|(name, s)| *name == r.name && *s == source)?;
                (p.route_params.get(i) == Some(&params)).then_some(())?;
                p.routes.get(i)
            });
            let pipeline = match old {
                Some(o) => Pipeline {
                    refusals: o.refusals.clone(),
                    ..Pipeline::with_global(global.stages.clone(), o.stages.clone())
                },
                None => {
                    let what = format!("route `{}` [[route.policy]]", r.name);
                    let built = build(&r.policy, Some((index, &r.name)), &params, &what);
                    Pipeline::with_global(global.stages.clone(), built.stages)
                }
            };
            routes.push(pipeline);
            route_sources.push((r.name.clone(), source));
            route_params.push(params);
        }
        if !errs.is_empty() {
            return Err(conf::ConfErrors(errs));
        }
        Ok(Pipelines {
            global: Pipeline::with_global(global.stages, Rc::from(Vec::new())),
            routes,
            global_source: global.source,
            route_sources,
            route_params,
            shards,
        })
    }

    /// Hands a letter from shard `from` to the stage it is addressed to (a letter for a
    /// stage this config does not have, a reload having removed it, is dropped).
    pub fn deliver(&self, from: usize, letter: Letter, wall: u64) {
        let Address { route, position } = &letter.address;
        let list = match route {
            None => &self.global.global,
            Some((index, name)) => {
                let named = |i: usize| {
                    self.route_sources
                        .get(i)
                        .is_some_and(|(n, _)| **n == **name)
                };
                let i = usize::try_from(*index).unwrap_or(usize::MAX);
                let i = if named(i) {
                    i
                } else {
                    // a reload moved the route: find it by name
                    let Some(i) = (0..self.route_sources.len()).find(|&i| named(i)) else {
                        return;
                    };
                    i
                };
                let Some(p) = self.routes.get(i) else {
                    return;
                };
                &p.stages
            }
        };
        if let Some(s) = list.get(usize::from(*position)) {
            s.on_letter(from, letter.body, wall);
        }
    }

    /// True when `self` and `other` share the state of route `i`'s own stages (taken over).
    pub fn shares_route_state(&self, other: &Pipelines, i: usize) -> bool {
        match (self.routes.get(i), other.routes.get(i)) {
            (Some(a), Some(b)) => Rc::ptr_eq(&a.stages, &b.stages),
            _ => false,
        }
    }

    /// Background tasks of every stage, each once (global stages are shared by all routes).
    pub fn tasks(&self) -> Vec<Rc<dyn Task>> {
        let mut all: Vec<Rc<dyn Task>> = Vec::new();
        for p in std::iter::once(&self.global).chain(&self.routes) {
            for t in p.tasks() {
                if !all.iter().any(|u| Rc::ptr_eq(u, &t)) {
                    all.push(t);
                }
            }
        }
        all
    }
}

/// Where the input of the next tap is while a piece passes the taps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    Piece,
    Out,
    Scratch,
}

/// Shows `data` (then the end, at the end) to one tapping stage.
fn feed(stage: &AnyStage, data: &[u8], end: bool, ex: &mut Exchange, out: &mut Vec<u8>) {
    if !data.is_empty() {
        stage.on_response_body(Piece::Data(data), ex, out);
    }
    if end {
        stage.on_response_body(Piece::End, ex, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_pipeline(stages: &[&str]) -> Result<Pipeline, conf::ConfErrors> {
        let mut text = String::from("[[route]]\npath = \"/\"\n");
        for s in stages {
            text += &format!("[[route.policy]]\nkind = \"tap_test\"\n{s}\n");
        }
        let config = conf::load_str("t.toml", &text)?;
        let mut all = Pipelines::build(&config, 1, 0, None)?;
        Ok(all.routes.remove(0))
    }

    fn response_head() -> (ResponseHead, &'static [u8]) {
        let buf: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
        let mut head = ResponseHead::with_capacity(4);
        let parsed = proto::parse_response(buf, &mut head, &proto::Limits::default());
        assert!(parsed.is_ok());
        (head, buf)
    }

    /// Sends `pieces` through the pipeline's taps; what the client gets, and the observer's
    /// record when the last stage observes.
    fn run(p: &Pipeline, pieces: &[&[u8]]) -> (bool, Vec<u8>) {
        let (head, buf) = response_head();
        let mut ex = Exchange::default();
        let rewrite = p.open_taps(&head, buf, &mut ex);
        let (mut out, mut scratch, mut sent) = (Vec::new(), Vec::new(), Vec::new());
        for piece in pieces.iter().map(|p| Some(*p)).chain([None]) {
            if p.tap(piece, &mut ex, &mut out, &mut scratch) {
                sent.extend_from_slice(&out);
            } else if let Some(d) = piece {
                sent.extend_from_slice(d);
            }
        }
        (rewrite, sent)
    }

    fn seen(p: &Pipeline, i: usize) -> Vec<String> {
        match p.stages.get(i) {
            Some(AnyStage::TapTest(t)) => t.seen.borrow().clone(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn taps_run_in_response_order_and_chain_their_rewrites() -> Result<(), conf::ConfErrors> {
        // response order is the reverse of config order: wrap sees the upstream's bytes,
        // upper sees what wrap wrote, the observer sees what goes to the client
        let p = route_pipeline(&[
            "mode = \"observe\"\nlimit = 100",
            "mode = \"upper\"",
            "mode = \"wrap\"",
        ])?;
        let (rewrite, sent) = run(&p, &[b"ab", b"cd"]);
        assert!(rewrite, "a rewriting stage re-frames the response");
        assert_eq!(sent, b"[ABCD]!");
        assert_eq!(seen(&p, 0), ["[ABCD]!", "<end>"]);
        Ok(())
    }

    #[test]
    fn an_observer_sees_the_body_unchanged_until_its_limit() -> Result<(), conf::ConfErrors> {
        let p = route_pipeline(&["mode = \"observe\"\nlimit = 3"])?;
        let (rewrite, sent) = run(&p, &[b"ab", b"cd", b"ef"]);
        assert!(!rewrite, "observing keeps the framing");
        assert_eq!(sent, b"abcdef", "the body passes unchanged");
        assert_eq!(seen(&p, 0), ["ab", "<too large>"]);
        let p = route_pipeline(&["mode = \"observe\"\nlimit = 4"])?;
        run(&p, &[b"ab", b"cd"]);
        assert_eq!(seen(&p, 0), ["ab", "cd", "<end>"]);
        Ok(())
    }

    #[test]
    fn a_stage_answers_with_a_reply_it_holds() -> Result<(), conf::ConfErrors> {
        let p = route_pipeline(&["mode = \"serve\""])?;
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut head = RequestHead::with_capacity(4);
        assert!(proto::parse_request(buf, &mut head, &proto::Limits::default()).is_ok());
        let mut ex = Exchange::default();
        match p.on_request(&head, buf, &mut ex) {
            Verdict::Serve(r) => assert_eq!(&r.body[..], b"held"),
            other => panic!("expected the held reply, got {other:?}"),
        }
        Ok(())
    }
}
