//! Checks that need more than one field: addresses resolve, names cross-reference, limits fit
//! their buffers. Collects every problem (not only the first) with its file:line:col.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};

use crate::error::{ConfError, ConfErrors};
use crate::model::{Config, FileModel, Listener, Route, Upstream};
use crate::tls::ClientAuth;

/// Turns the file model into a `Config`, or every error found.
pub fn validate(name: &str, text: &str, file: FileModel) -> Result<Config, ConfErrors> {
    let mut errs = Vec::new();
    let err = |span: std::ops::Range<usize>, msg: String| ConfError::at(name, text, span, msg);
    let s = &file.server;

    let mut listen = Vec::new();
    let mut listeners = Vec::new();
    // `[server] listen`'s default stands only when no `[[listener]]` is written
    let written = |l: &toml::Spanned<String>| !l.span().is_empty();
    let plain: Vec<_> = if file.listener.is_empty() {
        s.listen.iter().collect()
    } else {
        s.listen.iter().filter(|l| written(l)).collect()
    };
    let mut add = |address: &toml::Spanned<String>, errs: &mut Vec<ConfError>| {
        match address.get_ref().parse::<SocketAddr>() {
            // port 0 picks a free port per listener: two of them do not collide
            Ok(a) if a.port() != 0 && listen.contains(&a) => {
                errs.push(err(
                    address.span(),
                    format!("duplicate listen address `{a}`"),
                ));
                None
            }
            Ok(a) => {
                listen.push(a);
                Some(a)
            }
            Err(_) => {
                errs.push(err(
                    address.span(),
                    format!(
                        "invalid listen address `{}`: expected ip:port, like \"127.0.0.1:8080\"",
                        address.get_ref()
                    ),
                ));
                None
            }
        }
    };
    for l in plain {
        if let Some(addr) = add(l, &mut errs) {
            listeners.push(Listener {
                addr,
                tls: None,
                redirect_https: None,
                h2c: false,
                span: l.span(),
            });
        }
    }
    for l in &file.listener {
        let Some(addr) = add(&l.address, &mut errs) else {
            continue;
        };
        if let Some(tls) = &l.tls {
            check_tls(tls, &mut errs, &err);
        }
        if l.redirect_https && l.tls.is_some() {
            errs.push(err(
                l.address.span(),
                "a TLS listener cannot redirect to https: set redirect_https on a plain one".into(),
            ));
        }
        if l.h2c && (l.tls.is_some() || l.redirect_https) {
            errs.push(err(
                l.address.span(),
                "h2c is for plain listeners: a TLS listener offers HTTP/2 with alpn = [\"h2\", \"http/1.1\"]".into(),
            ));
        }
        listeners.push(Listener {
            addr,
            tls: l.tls.clone(),
            redirect_https: l.redirect_https.then_some(l.https_port),
            h2c: l.h2c,
            span: l.address.span(),
        });
    }
    let at = |key: &str| key_span(text, "server", key);
    if listen.is_empty() && errs.is_empty() {
        errs.push(err(
            at("listen"),
            "no listener: give [server] listen = [\"ip:port\"] or a [[listener]]".into(),
        ));
    }
    if s.client_buffer.0 < 1024 {
        errs.push(err(
            at("client_buffer"),
            "[server] client_buffer must be at least 1KiB".into(),
        ));
    }
    if s.upstream_buffer.0 < 1024 {
        errs.push(err(
            at("upstream_buffer"),
            "[server] upstream_buffer must be at least 1KiB".into(),
        ));
    }
    if s.tunnel_idle_timeout.0.is_zero() {
        errs.push(err(
            at("tunnel_idle_timeout"),
            "[server] tunnel_idle_timeout must be more than 0".into(),
        ));
    }
    if s.max_head > s.client_buffer {
        errs.push(err(
            at("max_head"),
            format!("[server] max_head ({}) must not exceed client_buffer ({}): a head must fit in the read buffer", s.max_head, s.client_buffer),
        ));
    }
    if s.max_request_line > s.max_head {
        errs.push(err(
            at("max_request_line"),
            format!(
                "[server] max_request_line ({}) must not exceed max_head ({})",
                s.max_request_line, s.max_head
            ),
        ));
    }
    if s.max_headers == 0 {
        errs.push(err(
            at("max_headers"),
            "[server] max_headers must be at least 1".into(),
        ));
    }
    for (key, msg) in s.http2.problems() {
        errs.push(err(key_span(text, "server.http2", key), msg));
    }

    let mut upstreams: Vec<Upstream> = Vec::new();
    let mut names = HashSet::new();
    for u in &file.upstream {
        let uname = u.name.get_ref().clone();
        if uname.is_empty() {
            errs.push(err(u.name.span(), "upstream name must not be empty".into()));
        }
        if !names.insert(uname.clone()) {
            errs.push(err(
                u.name.span(),
                format!("duplicate upstream name `{uname}`"),
            ));
        }
        let discovery = u.discovery.as_ref().map(|d| d.get_ref().kind);
        if u.targets.is_empty() && discovery != Some(crate::discovery::DiscoveryKind::File) {
            errs.push(err(
                u.name.span(),
                format!("upstream `{uname}` has no targets: give at least one \"host:port\""),
            ));
        }
        let mut targets = Vec::new();
        let mut target_names = Vec::new();
        let mut weights = Vec::new();
        for t in &u.targets {
            let tc = t.get_ref();
            if discovery.is_some() {
                // resolved (or read from the file) when the gateway starts, then again as
                // discovery goes: only the form is checked here
                if !crate::discovery::host_port(&tc.address) {
                    errs.push(err(
                        t.span(),
                        format!(
                            "invalid upstream target `{}`: expected host:port",
                            tc.address
                        ),
                    ));
                }
                target_names.push(tc.address.clone());
                weights.push(tc.weight);
                continue;
            }
            match tc.address.to_socket_addrs().ok().and_then(|mut a| a.next()) {
                Some(a) => {
                    targets.push(a);
                    target_names.push(tc.address.clone());
                    weights.push(tc.weight);
                }
                None => errs.push(err(
                    t.span(),
                    format!(
                        "invalid upstream target `{}`: expected host:port, like \"127.0.0.1:9000\"",
                        tc.address
                    ),
                )),
            }
        }
        let protocol = u.protocol();
        let proto_problem = match (protocol, u.tls.is_some()) {
            (crate::model::UpstreamProtocol::H2, false) => {
                Some("protocol = \"h2\" needs [upstream.tls] (use \"h2c\" for HTTP/2 in the clear)")
            }
            (crate::model::UpstreamProtocol::H2c, true) => {
                Some("protocol = \"h2c\" is HTTP/2 in the clear: with [upstream.tls] use \"h2\"")
            }
            _ => None,
        };
        if let Some(msg) = proto_problem {
            let at = u
                .protocol
                .as_ref()
                .map_or(u.name.span(), toml::Spanned::span);
            errs.push(err(at, format!("upstream `{uname}`: {msg}")));
        }
        if u.h2_connections == 0 || u.h2_streams == 0 {
            errs.push(err(
                u.name.span(),
                format!("upstream `{uname}`: h2_connections and h2_streams must be at least 1"),
            ));
        }
        crate::traffic_check::check(u, &mut errs, &err);
        upstreams.push(Upstream {
            name: uname,
            targets,
            target_names,
            weights,
            conf: u.clone(),
        });
    }

    let mut routes = Vec::new();
    for (i, r) in file.route.iter().enumerate() {
        let rname = r.name.clone().unwrap_or_else(|| format!("route[{i}]"));
        let span = if r.path.span().is_empty() {
            r.upstream.as_ref().map(|u| u.span()).unwrap_or(0..0)
        } else {
            r.path.span()
        };
        let upstream = match &r.upstream {
            Some(u) => match upstreams.iter().position(|x| x.name == *u.get_ref()) {
                Some(idx) => Some(idx),
                None => {
                    let known: Vec<&str> = upstreams.iter().map(|x| x.name.as_str()).collect();
                    errs.push(err(
                        u.span(),
                        format!(
                            "route `{rname}`: unknown upstream `{}`; defined upstreams: {}",
                            u.get_ref(),
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                    None
                }
            },
            None if r.policy.is_empty() && r.split.is_empty() && r.aggregate.is_none() => {
                errs.push(err(
                    span.clone(),
                    format!("route `{rname}` has neither `upstream` nor `[[route.policy]]` stages"),
                ));
                None
            }
            None => None,
        };
        if let Some(up) = upstream.and_then(|i| upstreams.get(i)) {
            crate::traffic_check::check_route(&rname, r, up, &mut errs, &err);
        }
        if r.connect && r.upstream.is_none() {
            errs.push(err(
                span.clone(),
                format!(
                    "route `{rname}`: connect = true needs `upstream`: the group CONNECT tunnels to"
                ),
            ));
        }
        if !r.path.get_ref().starts_with('/') {
            errs.push(err(
                r.path.span(),
                format!(
                    "route `{rname}`: path `{}` must start with `/`",
                    r.path.get_ref()
                ),
            ));
        }
        let methods = match &r.methods {
            Some(m) => {
                let mut out = Vec::new();
                for meth in m.get_ref() {
                    if meth.is_empty()
                        || !meth
                            .bytes()
                            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
                    {
                        errs.push(err(m.span(), format!("route `{rname}`: invalid method `{meth}`: expected an upper-case token like \"GET\"")));
                    }
                    out.push(meth.clone());
                }
                if out.is_empty() {
                    errs.push(err(
                        m.span(),
                        format!("route `{rname}`: methods is empty; omit it to match any method"),
                    ));
                }
                Some(out)
            }
            None => None,
        };
        let traffic = {
            let mut bad_list = Vec::new();
            let mut find = |u: &toml::Spanned<String>| {
                let found = upstreams.iter().position(|x| x.name == *u.get_ref());
                if found.is_none() {
                    bad_list.push((
                        u.span(),
                        format!("route `{rname}`: unknown upstream `{}`", u.get_ref()),
                    ));
                }
                found
            };
            let mut bad = Vec::new();
            let written = crate::route_traffic::Written {
                timeouts: &r.timeouts,
                split: &r.split,
                split_on: &r.split_on,
                when: &r.when,
                mirror: &r.mirror,
                has_upstream: r.upstream.as_ref().map(|u| u.span()),
            };
            let t = crate::route_traffic::check(&rname, &written, &mut find, &mut |span, msg| {
                bad.push((span, msg))
            });
            for (span, msg) in bad_list.into_iter().chain(bad) {
                errs.push(err(span, msg));
            }
            t
        };
        let names: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
        let (aggregate, bad) = crate::aggregate::for_route(
            &rname,
            r.aggregate.as_ref(),
            r.upstream.is_some() || !r.split.is_empty() || r.connect,
            &names,
        );
        errs.extend(bad.into_iter().map(|(span, msg)| err(span, msg)));
        let host = r.host.as_ref().map(|h| h.get_ref().to_ascii_lowercase());
        routes.push(Route {
            aggregate,
            traffic,
            name: rname,
            host,
            path: r.path.get_ref().clone(),
            methods,
            upstream,
            policy: r.policy.clone(),
            websocket: r.websocket,
            connect: r.connect,
            span,
        });
    }

    let admin = match &file.admin {
        None => None,
        Some(a) => match a.listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) if listen.contains(&addr) && addr.port() != 0 => {
                errs.push(err(
                    a.listen.span(),
                    format!("[admin] listen {addr} is also a data listener"),
                ));
                None
            }
            Ok(addr) => Some((addr, a.token.clone())),
            Err(_) => {
                errs.push(err(
                    a.listen.span(),
                    format!("[admin] listen `{}`: expected ip:port", a.listen.get_ref()),
                ));
                None
            }
        },
    };
    observe(&file, &mut errs, &err);
    if let Some(r) = &file.redis {
        for (span, msg) in crate::redis::check(r.get_ref()) {
            errs.push(err(if span.is_empty() { r.span() } else { span }, msg));
        }
    }
    if let Some(m) = &file.management {
        // tenants' administrators are told apart from the admin by the admin's token: without
        // one, anybody would be the admin
        if file.admin.as_ref().is_none_or(|a| a.token.is_empty()) {
            errs.push(err(
                m.span(),
                "[management] needs [admin] with a token: the admin is told apart from tenants' administrators by it".to_string(),
            ));
        }
        for (span, msg) in crate::management::check(m.get_ref()) {
            errs.push(err(if span.is_empty() { m.span() } else { span }, msg));
        }
    }
    if errs.is_empty() {
        Ok(Config {
            admin,
            management: file.management.map(|m| m.into_inner()),
            request_id: file.request_id,
            tracing: file.tracing,
            access_log: file.access_log,
            redis: file.redis.map(|r| r.into_inner()),
            source: name.to_string(),
            text: text.to_string(),
            server: file.server,
            listen,
            listeners,
            upstreams,
            routes,
            policy: file.policy,
        })
    } else {
        errs.sort_by_key(|e| (e.line, e.col));
        Err(ConfErrors(errs))
    }
}

/// Where `key = …` is written inside `[table]` (for checks that involve several keys, which
/// serde cannot locate); the table header if the key is absent (a default), else the start.
fn key_span(text: &str, table: &str, key: &str) -> std::ops::Range<usize> {
    let header = format!("[{table}]");
    let mut offset = 0;
    let mut in_table = false;
    let mut header_at = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('[') {
            in_table = trimmed.trim_end().starts_with(&header);
            if in_table && header_at.is_none() {
                header_at = Some(offset + indent);
            }
        } else if in_table
            && let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            let start = offset + indent;
            return start..start + key.len();
        }
        offset += line.len();
    }
    header_at.map_or(0..0, |h| h..h + header.len())
}

/// What can be checked of a `[listener.tls]` table without reading its files.
fn check_tls(
    tls: &toml::Spanned<crate::tls::TlsConf>,
    errs: &mut Vec<ConfError>,
    err: &dyn Fn(std::ops::Range<usize>, String) -> ConfError,
) {
    let t = tls.get_ref();
    if t.certificates.is_empty() {
        errs.push(err(
            tls.span(),
            "[listener.tls] needs at least one [[listener.tls.certificates]] (cert and key)".into(),
        ));
    }
    if t.client_auth != ClientAuth::None && t.client_ca.is_none() {
        errs.push(err(
            tls.span(),
            "[listener.tls] client_auth needs client_ca: the CA bundle client certificates are verified against".into(),
        ));
    }
    if t.alpn.iter().any(|p| p.is_empty() || p.len() > 255) {
        errs.push(err(
            tls.span(),
            "[listener.tls] alpn: each protocol name is 1 to 255 bytes".into(),
        ));
    }
    if t.ticket_rotation.0 < std::time::Duration::from_secs(60) {
        errs.push(err(
            tls.span(),
            "[listener.tls] ticket_rotation must be at least 1m".into(),
        ));
    }
}

/// What can be checked of `[request_id]`, `[tracing]` and `[access_log]` here (the
/// `trust_from` blocks are parsed where they are compiled).
fn observe(
    file: &crate::model::FileModel,
    errs: &mut Vec<ConfError>,
    err: &dyn Fn(std::ops::Range<usize>, String) -> ConfError,
) {
    let h = &file.request_id.header;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let name = h.get_ref();
    if name.is_empty() || !name.bytes().all(token) {
        errs.push(err(
            h.span(),
            format!("[request_id] header `{name}` is not a field name"),
        ));
    }
    let mut checks = vec![crate::observe::check_ratio(
        &file.tracing.sample_ratio,
        "[tracing] sample_ratio",
    )];
    if let Some(a) = &file.access_log {
        checks.push(crate::observe::check_ratio(
            &a.sample,
            "[access_log] sample",
        ));
        checks.push(crate::observe::check_format(&a.format));
    }
    for (span, msg) in checks.into_iter().filter_map(Result::err) {
        errs.push(err(span, msg));
    }
}
