//! Config errors point at file:line:col and say what was expected; each message has its test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

fn errors(text: &str) -> Vec<String> {
    errors_in("test.toml", text)
}

fn errors_in(name: &str, text: &str) -> Vec<String> {
    match conf::load_str(name, text) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn broken_toml_points_at_the_spot() {
    let e = errors("[server]\nlisten = [\"127.0.0.1:8080\"\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("test.toml:2:"), "{}", e[0]);
}

#[test]
fn unknown_field_is_named() {
    let e = errors("[server]\nbacklog = 10\nbaklog = 5\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("test.toml:3:1: unknown field `baklog`, expected one of"),
        "{}",
        e[0]
    );
}

#[test]
fn bad_address_and_dangling_upstream_are_all_reported() {
    let text = "[server]\nlisten = [\"127.0.0.1:80:80\"]\n\n[[upstream]]\nname = \"a\"\ntargets = [\"127.0.0.1:1\"]\n\n[[route]]\npath = \"/\"\nupstream = \"b\"\n";
    let e = errors(text);
    assert_eq!(
        e,
        vec![
            "test.toml:2:11: invalid listen address `127.0.0.1:80:80`: expected ip:port, like \"127.0.0.1:8080\"".to_string(),
            "test.toml:10:12: route `route[0]`: unknown upstream `b`; defined upstreams: a".to_string(),
        ]
    );
}

#[test]
fn bad_values_say_what_is_expected() {
    let e = errors("[server]\nshards = 0\n");
    assert_eq!(e, vec!["test.toml:2:10: invalid value: integer `0`, expected \"auto\" or a shard count from 1 to 1024".to_string()]);
    let e = errors("[server]\nclient_head_timeout = \"10\"\n");
    assert_eq!(
        e,
        vec![
            "test.toml:2:23: unknown duration unit `` in `10`: expected ms, s, m, h or d"
                .to_string()
        ]
    );
    let e = errors("[server]\nmax_head = \"64KiB\"\nclient_buffer = \"16KiB\"\n");
    assert_eq!(e, vec!["test.toml:2:1: [server] max_head (64KiB) must not exceed client_buffer (16KiB): a head must fit in the read buffer".to_string()]);
    // a default that no longer fits points at the key that was set… or at the table
    let e = errors("[server]\nbacklog = 5\n  max_request_line = \"64KiB\"\n");
    assert_eq!(
        e,
        vec![
            "test.toml:3:3: [server] max_request_line (64KiB) must not exceed max_head (32KiB)"
                .to_string()
        ]
    );
    let e = errors(
        "[server]\nclient_buffer = \"512\"\nmax_head = \"512\"\nmax_request_line = \"512\"\nmax_headers = 0\n",
    );
    assert_eq!(
        e,
        vec![
            "test.toml:2:1: [server] client_buffer must be at least 1KiB".to_string(),
            "test.toml:5:1: [server] max_headers must be at least 1".to_string(),
        ]
    );
}

#[test]
fn bad_target_is_reported() {
    let e = errors("[[upstream]]\nname = \"a\"\ntargets = [\"nonsense\"]\n");
    assert_eq!(e, vec!["test.toml:3:12: invalid upstream target `nonsense`: expected host:port, like \"127.0.0.1:9000\"".to_string()]);
}

// Traffic settings that cannot work are refused at file:line:col, each with its reason.

const UP: &str = "[[upstream]]\nname = \"a\"\n";

/// The one error of `text`, asserted to start with `at` and contain `says`.
fn one(text: &str, at: &str, says: &str) {
    let e = errors_in("t.toml", text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with(at) && e[0].contains(says), "{}", e[0]);
}

#[test]
fn bad_upstream_traffic_settings_are_located() {
    let route = "[[route]]\npath = \"/\"\nupstream = \"a\"\n";
    one(
        &format!("{UP}targets = [{{ address = \"127.0.0.1:1\", weight = 0 }}]\n{route}"),
        "t.toml:3:12",
        "weight 0 must be 1 to 10000",
    );
    one(
        &format!("{UP}targets = [\"127.0.0.1:1\"]\nhash_on = \"header:X\"\n{route}"),
        "t.toml:4:11",
        "hash_on is used by balance = \"ring_hash\" or \"maglev\" only",
    );
    one(
        &format!("{UP}targets = [\"127.0.0.1:1\"]\nbalance = \"fastest\"\n{route}"),
        "t.toml:4:11",
        "unknown variant `fastest`",
    );
    one(
        &format!(
            "{UP}targets = [\"127.0.0.1:1\"]\n[upstream.health]\ntimeout = \"10s\"\ninterval = \"1s\"\n{route}"
        ),
        "t.toml:4:1",
        "timeout must be more than 0 and at most interval",
    );
    one(
        &format!("{UP}targets = [\"127.0.0.1:1\"]\n[upstream.retry]\non_status = [200]\n{route}"),
        "t.toml:5:14",
        "on_status 200 is not an error status",
    );
    one(
        &format!(
            "{UP}targets = [\"127.0.0.1:1\"]\n[upstream.breaker]\nfailure_rate = 1.5\n{route}"
        ),
        "t.toml:4:1",
        "failure_rate must be more than 0.0 and at most 1.0",
    );
    one(
        &format!(
            "{UP}targets = [\"127.0.0.1:1\"]\nbalance = \"maglev\"\nhash_on = \"param:id\"\n[[route]]\npath = \"/users/{{name}}\"\nupstream = \"a\"\n"
        ),
        "t.toml:7:8",
        "hashes on param `id`, which path `/users/{name}` does not capture",
    );
}

#[test]
fn bad_discovery_settings_are_located() {
    let route = "[[route]]\npath = \"/\"\nupstream = \"a\"\n";
    one(
        &format!("{UP}[upstream.discovery]\nkind = \"file\"\n{route}"),
        "t.toml:3:1",
        "kind = \"file\" needs file",
    );
    one(
        &format!(
            "{UP}targets = [\"svc:80\"]\n[upstream.discovery]\nkind = \"dns\"\nrefresh = \"1ms\"\n{route}"
        ),
        "t.toml:4:1",
        "refresh must be at least 10ms",
    );
    one(
        &format!("{UP}targets = [\"svc\"]\n[upstream.discovery]\nkind = \"dns\"\n{route}"),
        "t.toml:3:12",
        "invalid upstream target `svc`: expected host:port",
    );
    // a name that does not resolve here is fine: discovery resolves it when the gateway runs
    assert!(errors_in("t.toml", &format!("{UP}targets = [\"nowhere.invalid:80\"]\n[upstream.discovery]\nkind = \"dns\"\n{route}")).is_empty());
}

#[test]
fn bad_route_traffic_settings_are_located() {
    let ups = "[[upstream]]\nname = \"a\"\ntargets = [\"127.0.0.1:1\"]\n[[upstream]]\nname = \"b\"\ntargets = [\"127.0.0.1:2\"]\n";
    one(
        &format!(
            "{ups}[[route]]\npath = \"/\"\nupstream = \"a\"\n[[route.split]]\nupstream = \"b\"\nweight = 1\n"
        ),
        "t.toml:9:12",
        "give either `upstream` or [[route.split]], not both",
    );
    one(
        &format!("{ups}[[route]]\npath = \"/\"\n[[route.split]]\nupstream = \"c\"\nweight = 1\n"),
        "t.toml:10:12",
        "unknown upstream `c`",
    );
    one(
        &format!(
            "{ups}[[route]]\npath = \"/\"\nupstream = \"a\"\n[[route.when]]\nvalue = \"1\"\nupstream = \"b\"\n"
        ),
        "t.toml:10:1",
        "needs one of header or cookie",
    );
    one(
        &format!(
            "{ups}[[route]]\npath = \"/\"\nupstream = \"a\"\n[route.timeouts]\ntotal = \"0s\"\n"
        ),
        "t.toml:10:1",
        "[route.timeouts] must be more than 0",
    );
    one(
        &format!(
            "{ups}[[route]]\npath = \"/\"\nupstream = \"a\"\n[route.mirror]\nupstream = \"b\"\npercent = 101\n"
        ),
        "t.toml:10:1",
        "mirror percent must be 0 to 100",
    );
}

#[test]
fn bad_observability_settings_are_located() {
    one(
        "[tracing]\nsample_ratio = 1.5\n",
        "t.toml:2:16",
        "must be from 0 to 1",
    );
    one(
        "[access_log]\nsample = -1.0\n",
        "t.toml:2:10",
        "must be from 0 to 1",
    );
    one(
        "[access_log]\nformat = \"${method} ${nope}\"\n",
        "t.toml:2:10",
        "unknown field `nope`",
    );
    one(
        "[request_id]\nheader = \"X Id\"\n",
        "t.toml:2:10",
        "not a field name",
    );
    one(
        "[access_log]\nwhat = 1\n",
        "t.toml:2:1",
        "unknown field `what`",
    );
}

#[test]
fn bad_management_settings_are_located() {
    let admin = "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0ken-t0ken\"\n";
    assert_eq!(
        errors(&format!("{admin}[management]\n")),
        Vec::<String>::new()
    );
    let e = errors("[admin]\nlisten = \"127.0.0.1:0\"\n[management]\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("test.toml:3:1: [management] needs [admin] with a token"),
        "{e:?}"
    );
    let cases = [
        (
            "store = \"mysql\"",
            "test.toml:5:9: [management] store = \"mysql\": use \"sqlite\" or \"postgres\"",
        ),
        (
            "store = \"postgres\"",
            "test.toml:5:9: [management] store = \"postgres\" needs postgres",
        ),
        (
            "postgres = \"host=x\"",
            "test.toml:5:12: [management] postgres needs store = \"postgres\"",
        ),
        ("flush = \"10ms\"", "[management] flush: at least 100ms"),
        ("keep_minutes = \"1m\"", "keep_minutes at least 1h"),
    ];
    for (line, want) in cases {
        let e = errors(&format!("{admin}[management]\n{line}\n"));
        assert_eq!(e.len(), 1, "{line}: {e:?}");
        assert!(e[0].contains(want), "{line}: {e:?}");
    }
}
