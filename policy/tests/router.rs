//! Routing trie tables: precedence, captures, methods, hosts, and build-time conflicts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

use policy::{Lookup, Router};

fn config(routes: &str) -> conf::Config {
    let text = format!("[[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\n\n{routes}");
    conf::load_str("routes.toml", &text).unwrap()
}

fn route(name: &str, host: Option<&str>, path: &str, methods: Option<&str>) -> String {
    let mut s = format!("[[route]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"u\"\n");
    if let Some(h) = host {
        s += &format!("host = \"{h}\"\n");
    }
    if let Some(m) = methods {
        s += &format!("methods = [{m}]\n");
    }
    s + "\n"
}

fn name_of(cfg: &conf::Config, r: &Router, host: Option<&str>, path: &str, method: &str) -> String {
    match r.lookup(host.map(str::as_bytes), path.as_bytes(), method.as_bytes()) {
        Lookup::Found(id, params) => {
            let names = r.param_names(id);
            let caps: Vec<String> = (0..params.len())
                .map(|i| {
                    format!(
                        "{}={}",
                        names[i],
                        String::from_utf8_lossy(params.get(i, path.as_bytes()).unwrap())
                    )
                })
                .collect();
            let n = cfg.routes[id.0 as usize].name.clone();
            if caps.is_empty() {
                n
            } else {
                format!("{n}({})", caps.join(","))
            }
        }
        Lookup::MethodNotAllowed(allow) => format!("405 [{allow}]"),
        Lookup::NotFound => "404".into(),
    }
}

#[test]
fn precedence_static_param_catch_all() {
    let cfg = config(
        &[
            route("root", None, "/", None),
            route("users", None, "/users", None),
            route("user", None, "/users/{id}", None),
            route("me", None, "/users/me", None),
            route("posts", None, "/users/{id}/posts/{post}", None),
            route("files", None, "/files/{*path}", None),
            route("all", None, "/{*rest}", None),
        ]
        .concat(),
    );
    let r = Router::build(&cfg).unwrap();
    let table = [
        ("/", "root"),
        ("/users", "users"),
        ("/users/me", "me"),
        ("/users/42", "user(id=42)"),
        ("/users/42/posts/7", "posts(id=42,post=7)"),
        ("/users/42/posts", "all(rest=users/42/posts)"),
        ("/files", "files(path=)"),
        ("/files/a/b.txt", "files(path=a/b.txt)"),
        ("/users/", "all(rest=users/)"),
        ("/other/x", "all(rest=other/x)"),
    ];
    for (path, want) in table {
        assert_eq!(name_of(&cfg, &r, None, path, "GET"), want, "{path}");
    }
}

#[test]
fn param_backtracks_to_catch_all() {
    let cfg = config(
        &[
            route("a", None, "/a/{x}/b", None),
            route("c", None, "/a/{*rest}", None),
        ]
        .concat(),
    );
    let r = Router::build(&cfg).unwrap();
    assert_eq!(name_of(&cfg, &r, None, "/a/1/b", "GET"), "a(x=1)");
    assert_eq!(name_of(&cfg, &r, None, "/a/1/c", "GET"), "c(rest=1/c)");
}

#[test]
fn methods_and_405() {
    let cfg = config(
        &[
            route("get", None, "/item", Some("\"GET\", \"HEAD\"")),
            route("post", None, "/item", Some("\"POST\"")),
        ]
        .concat(),
    );
    let r = Router::build(&cfg).unwrap();
    assert_eq!(name_of(&cfg, &r, None, "/item", "GET"), "get");
    assert_eq!(name_of(&cfg, &r, None, "/item", "POST"), "post");
    assert_eq!(
        name_of(&cfg, &r, None, "/item", "DELETE"),
        "405 [GET, HEAD, POST]"
    );
    assert_eq!(name_of(&cfg, &r, None, "/nope", "GET"), "404");
}

#[test]
fn hosts_exact_then_wildcard_then_any() {
    let cfg = config(
        &[
            route("exact", Some("api.example.com"), "/{*r}", None),
            route("wild", Some("*.example.com"), "/{*r}", None),
            route("deeper", Some("*.eu.example.com"), "/{*r}", None),
            route("only-x", Some("x.example.com"), "/x", None),
            route("any", None, "/{*r}", None),
        ]
        .concat(),
    );
    let r = Router::build(&cfg).unwrap();
    assert_eq!(
        name_of(&cfg, &r, Some("api.example.com"), "/", "GET"),
        "exact(r=)"
    );
    assert_eq!(
        name_of(&cfg, &r, Some("API.Example.COM:8080"), "/", "GET"),
        "exact(r=)"
    );
    assert_eq!(
        name_of(&cfg, &r, Some("www.example.com"), "/", "GET"),
        "wild(r=)"
    );
    assert_eq!(
        name_of(&cfg, &r, Some("a.eu.example.com"), "/", "GET"),
        "deeper(r=)"
    );
    assert_eq!(
        name_of(&cfg, &r, Some("example.com"), "/", "GET"),
        "any(r=)"
    );
    assert_eq!(
        name_of(&cfg, &r, Some("x.example.com"), "/x", "GET"),
        "only-x"
    );
    // the exact host has no route for /y: the wildcard host takes it
    assert_eq!(
        name_of(&cfg, &r, Some("x.example.com"), "/y", "GET"),
        "wild(r=y)"
    );
    assert_eq!(name_of(&cfg, &r, None, "/", "GET"), "any(r=)");
}

#[test]
fn conflicting_routes_name_both() {
    let cfg = config(
        &[
            route("first", None, "/a/{x}", None),
            route("second", None, "/a/{y}", None),
        ]
        .concat(),
    );
    let e = Router::build(&cfg).unwrap_err().to_string();
    assert_eq!(
        e,
        "routes.toml:12:8: route `second` conflicts with route `first` (at 7:8): both match any method /a/{y}; the second can never be chosen"
    );
    let cfg = config(
        &[
            route("g1", None, "/a", Some("\"GET\"")),
            route("g2", None, "/a", Some("\"PUT\", \"GET\"")),
        ]
        .concat(),
    );
    let e = Router::build(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("route `g2` conflicts with route `g1`") && e.contains("method GET"),
        "{e}"
    );
    // different methods do not conflict
    let cfg = config(
        &[
            route("g1", None, "/a", Some("\"GET\"")),
            route("p", None, "/a", Some("\"POST\"")),
        ]
        .concat(),
    );
    assert!(Router::build(&cfg).is_ok());
}

#[test]
fn malformed_patterns_are_errors() {
    for (path, msg) in [
        (
            "/a/{*r}/b",
            "`{*r}` in `/a/{*r}/b` must be the last segment",
        ),
        ("/a/{}", "invalid capture `{}` in `/a/{}`"),
        (
            "/a/x{y}",
            "invalid segment `x{y}` in `/a/x{y}`: a capture must be a whole segment",
        ),
    ] {
        let cfg = config(&route("bad", None, path, None));
        let e = Router::build(&cfg).unwrap_err().to_string();
        assert!(e.contains(msg), "{e}");
    }
}

#[test]
fn many_routes_use_hashed_children() {
    let routes: String = (0..1000)
        .map(|i| route(&format!("r{i}"), None, &format!("/svc{i}/{{id}}"), None))
        .collect();
    let cfg = config(&routes);
    let r = Router::build(&cfg).unwrap();
    assert_eq!(name_of(&cfg, &r, None, "/svc999/5", "GET"), "r999(id=5)");
    assert_eq!(name_of(&cfg, &r, None, "/svc1000/5", "GET"), "404");
}
