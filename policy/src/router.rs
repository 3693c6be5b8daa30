//! The routing trie, compiled once per config: (host, path, method) → route, in time that
//! grows with the path, not the route count (bench: `policy_router`).

use ahash::AHashMap;
use conf::{ConfError, ConfErrors, Config};

/// Index of a route in `Config::routes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId(pub u32);

/// Most captures (`{param}` and `{*rest}`) one route pattern may have.
pub const MAX_PARAMS: usize = 8;

/// Captured path segments, as offsets into the path given to `lookup`, in pattern order. The
/// route's `param_names` gives their names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Params {
    len: u8,
    spans: [(u32, u32); MAX_PARAMS],
}

impl Params {
    /// Number of captures.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when nothing was captured.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The i-th capture as bytes of `path`.
    pub fn get<'p>(&self, i: usize, path: &'p [u8]) -> Option<&'p [u8]> {
        if i >= self.len() {
            return None;
        }
        let (s, l) = *self.spans.get(i)?;
        path.get(s as usize..(s + l) as usize)
    }

    fn push(&mut self, start: usize, len: usize) {
        if let Some(slot) = self.spans.get_mut(usize::from(self.len)) {
            *slot = (start as u32, len as u32);
            self.len += 1;
        }
    }
}

/// Result of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'r> {
    /// A route matched.
    Found(RouteId, Params),
    /// The path matched but not the method: answer 405 with this `Allow` value.
    MethodNotAllowed(&'r str),
    /// No route for the path.
    NotFound,
}

#[derive(Debug, Default)]
struct Endpoint {
    by_method: Vec<(Box<[u8]>, RouteId)>,
    any: Option<RouteId>,
    allow: String,
}

impl Endpoint {
    fn find(&self, method: &[u8]) -> Option<RouteId> {
        self.by_method
            .iter()
            .find(|(m, _)| &**m == method)
            .map(|(_, r)| *r)
            .or(self.any)
    }
}

#[derive(Debug, Default)]
struct Node {
    statics: Vec<(Box<[u8]>, Node)>,
    index: Option<AHashMap<Box<[u8]>, usize>>,
    param: Option<Box<Node>>,
    catch_all: Option<Endpoint>,
    here: Option<Endpoint>,
}

/// Above this many static children a node looks them up by hash instead of comparing each.
const LINEAR_CHILDREN: usize = 8;

impl Node {
    fn child(&self, seg: &[u8]) -> Option<&Node> {
        match &self.index {
            Some(map) => map
                .get(seg)
                .and_then(|&i| self.statics.get(i))
                .map(|(_, n)| n),
            None => self
                .statics
                .iter()
                .find(|(s, _)| &**s == seg)
                .map(|(_, n)| n),
        }
    }

    fn child_mut(&mut self, seg: &str) -> &mut Node {
        let pos = match self
            .statics
            .iter()
            .position(|(s, _)| &**s == seg.as_bytes())
        {
            Some(p) => p,
            None => {
                self.statics.push((seg.as_bytes().into(), Node::default()));
                self.statics.len() - 1
            }
        };
        #[expect(
            clippy::indexing_slicing,
            reason = "build time only; `pos` was just found or pushed"
        )]
        &mut self.statics[pos].1
    }

    fn finish(&mut self) {
        if self.statics.len() > LINEAR_CHILDREN {
            self.index = Some(
                self.statics
                    .iter()
                    .enumerate()
                    .map(|(i, (s, _))| (s.clone(), i))
                    .collect(),
            );
        }
        for (_, n) in &mut self.statics {
            n.finish();
        }
        if let Some(p) = &mut self.param {
            p.finish();
        }
    }

    /// Depth-first match with static > param > catch-all precedence.
    fn walk<'n>(
        &'n self,
        path: &[u8],
        off: usize,
        method: &[u8],
        params: &mut Params,
        allow: &mut Option<&'n Endpoint>,
    ) -> Option<RouteId> {
        let rest = path.get(off..).unwrap_or_default();
        let (seg_len, tail) = match memchr::memchr(b'/', rest) {
            Some(i) => (i, Some(off + i + 1)),
            None => (rest.len(), None),
        };
        let seg = rest.get(..seg_len).unwrap_or_default();
        if let Some(child) = self.child(seg)
            && let Some(r) = child.enter(path, tail, method, params, allow)
        {
            return Some(r);
        }
        if !seg.is_empty()
            && let Some(child) = &self.param
        {
            let saved = *params;
            params.push(off, seg_len);
            if let Some(r) = child.enter(path, tail, method, params, allow) {
                return Some(r);
            }
            *params = saved;
        }
        if let Some(ep) = &self.catch_all {
            match ep.find(method) {
                Some(r) => {
                    params.push(off, path.len() - off);
                    return Some(r);
                }
                None => {
                    allow.get_or_insert(ep);
                }
            }
        }
        None
    }

    fn enter<'n>(
        &'n self,
        path: &[u8],
        tail: Option<usize>,
        method: &[u8],
        params: &mut Params,
        allow: &mut Option<&'n Endpoint>,
    ) -> Option<RouteId> {
        match tail {
            Some(next) => self.walk(path, next, method, params, allow),
            None => {
                if let Some(ep) = &self.here {
                    match ep.find(method) {
                        Some(r) => return Some(r),
                        None => {
                            allow.get_or_insert(ep);
                        }
                    }
                }
                // `/api/{*rest}` also matches `/api` (zero remaining segments).
                if let Some(ep) = &self.catch_all {
                    match ep.find(method) {
                        Some(r) => {
                            params.push(path.len(), 0);
                            return Some(r);
                        }
                        None => {
                            allow.get_or_insert(ep);
                        }
                    }
                }
                None
            }
        }
    }
}

/// One pattern segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Static(String),
    Param(String),
    CatchAll(String),
}

/// The capture names of a route pattern, in `Params` order (none when it does not parse).
pub fn capture_names(path: &str) -> Vec<String> {
    parse_pattern(path)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| match s {
            Segment::Param(n) | Segment::CatchAll(n) => Some(n),
            Segment::Static(_) => None,
        })
        .collect()
}

fn parse_pattern(path: &str) -> Result<Vec<Segment>, String> {
    let body = path
        .strip_prefix('/')
        .ok_or_else(|| format!("path `{path}` must start with `/`"))?;
    let parts: Vec<&str> = body.split('/').collect();
    let mut out = Vec::with_capacity(parts.len());
    let last = parts.len().saturating_sub(1);
    for (i, p) in parts.iter().enumerate() {
        let seg = if let Some(inner) = p.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (catch, name) = match inner.strip_prefix('*') {
                Some(n) => (true, n),
                None => (false, inner),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "invalid capture `{p}` in `{path}`: expected {{name}} or {{*name}} with letters, digits or _"
                ));
            }
            if catch && i != last {
                return Err(format!("`{p}` in `{path}` must be the last segment"));
            }
            if catch {
                Segment::CatchAll(name.to_string())
            } else {
                Segment::Param(name.to_string())
            }
        } else {
            if p.contains(['{', '}']) {
                return Err(format!(
                    "invalid segment `{p}` in `{path}`: a capture must be a whole segment"
                ));
            }
            if !p.bytes().all(proto::chars::is_uri) || p.contains('?') {
                return Err(format!(
                    "invalid segment `{p}` in `{path}`: only URI path characters are allowed"
                ));
            }
            Segment::Static((*p).to_string())
        };
        out.push(seg);
    }
    let captures = out
        .iter()
        .filter(|s| !matches!(s, Segment::Static(_)))
        .count();
    if captures > MAX_PARAMS {
        return Err(format!(
            "`{path}` has {captures} captures; at most {MAX_PARAMS} are allowed"
        ));
    }
    Ok(out)
}

/// The compiled routes of one config.
///
/// # Precedence
/// An exact host beats the longest matching `*.suffix` wildcard, which beats routes without a
/// host; a less specific host is tried only when the more specific one has no route for the
/// path. Within a host, per path segment: static > `{param}` > trailing `{*rest}`, backtracking
/// when a branch dead-ends.
#[derive(Debug, Default)]
pub struct Router {
    exact: AHashMap<Box<[u8]>, Node>,
    /// Keyed by the suffix including its leading dot (`.example.com`).
    wildcard: AHashMap<Box<[u8]>, Node>,
    any_host: Option<Node>,
    has_hosts: bool,
    param_names: Vec<Vec<String>>,
}

/// Longest Host we lower-case for matching; longer ones only match host-less routes.
const MAX_HOST: usize = 255;

impl Router {
    /// Compiles the routes of `config`; conflicting or malformed routes are errors naming both.
    pub fn build(config: &Config) -> Result<Router, ConfErrors> {
        let mut router = Router::default();
        let mut errs = Vec::new();
        // (host key, normalized pattern, method or "*") → first route that claimed it
        let mut claimed: AHashMap<(String, String, String), usize> = AHashMap::new();
        for (i, r) in config.routes.iter().enumerate() {
            let at = |msg: String| ConfError::at(&config.source, &config.text, r.span.clone(), msg);
            let segs = match parse_pattern(&r.path) {
                Ok(s) => s,
                Err(m) => {
                    errs.push(at(format!("route `{}`: {m}", r.name)));
                    continue;
                }
            };
            let host_key = r.host.clone().unwrap_or_default();
            if let Some(h) = &r.host {
                let bare = h.strip_prefix("*.").unwrap_or(h);
                if bare.is_empty()
                    || bare.contains('*')
                    || !proto::chars::is_valid_host(bare.as_bytes())
                {
                    errs.push(at(format!("route `{}`: invalid host `{h}`: expected a name like api.example.com or *.example.com", r.name)));
                    continue;
                }
            }
            let normalized: String = segs
                .iter()
                .map(|s| match s {
                    Segment::Static(x) => format!("/{x}"),
                    Segment::Param(_) => "/{}".to_string(),
                    Segment::CatchAll(_) => "/{*}".to_string(),
                })
                .collect();
            let methods: Vec<String> = r.methods.clone().unwrap_or_else(|| vec!["*".to_string()]);
            let mut conflict = false;
            for m in &methods {
                let key = (host_key.clone(), normalized.clone(), m.clone());
                if let Some(first) = claimed.get(&key).and_then(|&j| config.routes.get(j)) {
                    let (line, col) = conf::error::line_col(&config.text, first.span.start);
                    errs.push(at(format!(
                        "route `{}` conflicts with route `{}` (at {line}:{col}): both match {}{} {}; the second can never be chosen",
                        r.name,
                        first.name,
                        if host_key.is_empty() { String::new() } else { format!("host {host_key}, ") },
                        if m == "*" { "any method".to_string() } else { format!("method {m}") },
                        r.path
                    )));
                    conflict = true;
                    break;
                }
            }
            if conflict {
                continue;
            }
            for m in &methods {
                claimed.insert((host_key.clone(), normalized.clone(), m.clone()), i);
            }
            router.param_names.push(
                segs.iter()
                    .filter_map(|s| match s {
                        Segment::Param(n) | Segment::CatchAll(n) => Some(n.clone()),
                        Segment::Static(_) => None,
                    })
                    .collect(),
            );
            let root = match &r.host {
                None => router.any_host.get_or_insert_with(Node::default),
                Some(h) => {
                    router.has_hosts = true;
                    match h.strip_prefix('*') {
                        Some(suffix) => {
                            router.wildcard.entry(suffix.as_bytes().into()).or_default()
                        }
                        None => router.exact.entry(h.as_bytes().into()).or_default(),
                    }
                }
            };
            insert(root, &segs, r.methods.as_deref(), RouteId(i as u32));
        }
        // param_names must be indexed by RouteId: rebuild in route order.
        router.param_names = config
            .routes
            .iter()
            .map(|r| {
                parse_pattern(&r.path)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|s| match s {
                        Segment::Param(n) | Segment::CatchAll(n) => Some(n),
                        Segment::Static(_) => None,
                    })
                    .collect()
            })
            .collect();
        for n in router
            .exact
            .values_mut()
            .chain(router.wildcard.values_mut())
            .chain(router.any_host.iter_mut())
        {
            n.finish();
        }
        if errs.is_empty() {
            Ok(router)
        } else {
            Err(ConfErrors(errs))
        }
    }

    /// Names of the captures of a route, in `Params` order.
    pub fn param_names(&self, route: RouteId) -> &[String] {
        self.param_names
            .get(route.0 as usize)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Finds the route for a request. `host` is the Host (or absolute-form authority) as
    /// received, `path` starts with `/` and has no query.
    pub fn lookup(&self, host: Option<&[u8]>, path: &[u8], method: &[u8]) -> Lookup<'_> {
        let mut allow: Option<&Endpoint> = None;
        let mut params = Params::default();
        if path.first() != Some(&b'/') {
            return Lookup::NotFound;
        }
        if self.has_hosts
            && let Some(h) = host
        {
            let mut lower = [0u8; MAX_HOST];
            let name = strip_port(h);
            if let Some(dst) = lower.get_mut(..name.len()) {
                dst.copy_from_slice(name);
                dst.make_ascii_lowercase();
                let name = &*dst;
                if let Some(node) = self.exact.get(name)
                    && let Some(r) = node.walk(path, 1, method, &mut params, &mut allow)
                {
                    return Lookup::Found(r, params);
                }
                params = Params::default();
                let mut i = 0;
                while let Some(dot) = name.get(i..).and_then(|s| memchr::memchr(b'.', s)) {
                    let suffix = name.get(i + dot..).unwrap_or_default();
                    if let Some(node) = self.wildcard.get(suffix)
                        && let Some(r) = node.walk(path, 1, method, &mut params, &mut allow)
                    {
                        return Lookup::Found(r, params);
                    }
                    params = Params::default();
                    i += dot + 1;
                }
            }
        }
        if let Some(node) = &self.any_host
            && let Some(r) = node.walk(path, 1, method, &mut params, &mut allow)
        {
            return Lookup::Found(r, params);
        }
        match allow {
            Some(ep) => Lookup::MethodNotAllowed(&ep.allow),
            None => Lookup::NotFound,
        }
    }
}

fn strip_port(h: &[u8]) -> &[u8] {
    if h.first() == Some(&b'[') {
        return match memchr::memchr(b']', h) {
            Some(i) => h.get(..=i).unwrap_or(h),
            None => h,
        };
    }
    match memchr::memrchr(b':', h) {
        Some(i) => h.get(..i).unwrap_or(h),
        None => h,
    }
}

fn insert(root: &mut Node, segs: &[Segment], methods: Option<&[String]>, id: RouteId) {
    let mut node = root;
    let mut terminal_is_catch_all = false;
    for (i, s) in segs.iter().enumerate() {
        match s {
            Segment::Static(x) => node = node.child_mut(x),
            Segment::Param(_) => node = node.param.get_or_insert_with(Box::default),
            Segment::CatchAll(_) => {
                debug_assert_eq!(i + 1, segs.len());
                terminal_is_catch_all = true;
            }
        }
    }
    let ep = if terminal_is_catch_all {
        node.catch_all.get_or_insert_with(Endpoint::default)
    } else {
        node.here.get_or_insert_with(Endpoint::default)
    };
    match methods {
        None => ep.any = Some(id),
        Some(ms) => {
            for m in ms {
                ep.by_method.push((m.as_bytes().into(), id));
            }
        }
    }
    let mut allow: Vec<&str> = ep
        .by_method
        .iter()
        .filter_map(|(m, _)| std::str::from_utf8(m).ok())
        .collect();
    allow.sort_unstable();
    allow.dedup();
    ep.allow = allow.join(", ");
}
