//! `shardgate --check`: broken TOML, unknown fields, bad addresses and dangling names print
//! file:line:column and exit non-zero; a good file prints its routes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::process::Command;

fn check(text: &str) -> (i32, String, String) {
    check_with(text, &[])
}

/// `check` with other files (name, content) beside the config.
fn check_with(text: &str, files: &[(&str, &str)]) -> (i32, String, String) {
    let dir = support::TempDir::new();
    for (name, content) in files {
        std::fs::write(dir.0.join(name), content).unwrap();
    }
    let path = dir.0.join("gw.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(support::bin())
        .arg("--check")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "gw.toml");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        err,
    )
}

#[test]
fn broken_toml() {
    let (code, _, err) = check("[server\nlisten = 1\n");
    assert_eq!(code, 2);
    assert!(err.starts_with("gw.toml:1:"), "{err}");
}

#[test]
fn unknown_field() {
    let (code, _, err) = check("[server]\nshard = 2\n");
    assert_eq!(code, 2);
    assert!(
        err.starts_with("gw.toml:2:1: unknown field `shard`, expected one of"),
        "{err}"
    );
}

#[test]
fn bad_address_and_dangling_upstream() {
    let (code, _, err) =
        check("[server]\nlisten = [\"localhost\"]\n\n[[route]]\nupstream = \"nope\"\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("gw.toml:2:11: invalid listen address `localhost`: expected ip:port"),
        "{err}"
    );
    assert!(
        err.contains(
            "gw.toml:5:12: route `route[0]`: unknown upstream `nope`; defined upstreams: none"
        ),
        "{err}"
    );
    assert!(err.contains("2 error(s)"), "{err}");
}

#[test]
fn bad_stage_and_conflicting_routes() {
    let text = "[[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\n\n[[route]]\nname = \"a\"\npath = \"/x\"\nupstream = \"u\"\n\n[[route]]\nname = \"b\"\npath = \"/x\"\nupstream = \"u\"\n\n[[route]]\nname = \"c\"\npath = \"/y\"\n[[route.policy]]\nkind = \"respnd\"\n";
    let (code, _, err) = check(text);
    assert_eq!(code, 2);
    assert!(
        err.contains("gw.toml:12:8: route `b` conflicts with route `a` (at 7:8)"),
        "{err}"
    );
    assert!(err.contains("gw.toml:18:1: route `c` [[route.policy]] unknown kind `respnd`, expected one of: ai, api_key, authorize, cache, client_cert, compress, concurrency, cors, headers, introspect, ip, json_fields, jwt, quota, rate_limit, redirect, respond, rewrite, subscription, validate"), "{err}");
}

#[test]
fn bad_cache_settings_are_located() {
    let text = "[[route]]\npath = \"/\"\n[[route.policy]]\nkind = \"cache\"\nsize = \"1MiB\"\nmax_object = \"2MiB\"\n[[route.policy]]\nkind = \"cache\"\nquery = \"random\"\n[[route.policy]]\nkind = \"cache\"\nshared = true\ncoalesce_wait = \"0s\"\n";
    let (code, _, err) = check(text);
    assert_eq!(code, 2);
    assert!(err.contains("gw.toml:10:1: route `route[0]` [[route.policy]] kind = \"cache\": `shared` needs `coalesce_wait` above 0"), "{err}");
    assert!(err.contains("gw.toml:3:1: route `route[0]` [[route.policy]] kind = \"cache\": `max_object` is larger than `size`"), "{err}");
    assert!(err.contains("gw.toml:7:1: route `route[0]` [[route.policy]] kind = \"cache\": unknown variant `random`"), "{err}");
}

#[test]
fn bad_security_stage_settings_are_located() {
    let text = "[[policy]]\nkind = \"ip\"\nallow = [\"10.0.0.0/33\"]\n\n[[policy]]\nkind = \"ip\"\ndeny_file = \"missing.txt\"\n\n[[route]]\npath = \"/\"\n[[route.policy]]\nkind = \"api_key\"\nconsumers = [{ name = \"a\", key = \"plain\" }]\n[[route.policy]]\nkind = \"rate_limit\"\nrate = 10\nkey = [\"cookie\"]\n[[route.policy]]\nkind = \"respond\"\n";
    let (code, _, err) = check(text);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("gw.toml:1:1: [[policy]] kind = \"ip\": allow: `10.0.0.0/33`: prefix length must be 0..=32"), "{err}");
    assert!(
        err.contains("gw.toml:5:1: [[policy]] kind = \"ip\": deny: cannot read "),
        "{err}"
    );
    assert!(err.contains("missing.txt"), "{err}");
    assert!(err.contains("gw.toml:11:1: route `route[0]` [[route.policy]] kind = \"api_key\": consumer `a`: a plain `key` needs insecure_plaintext = true"), "{err}");
    assert!(err.contains("gw.toml:14:1: route `route[0]` [[route.policy]] kind = \"rate_limit\": key `cookie`: expected"), "{err}");
}

#[test]
fn bad_jwt_settings_are_located() {
    let text = "[[route]]\npath = \"/a\"\n[[route.policy]]\nkind = \"jwt\"\nalgorithms = [\"none\"]\nsecret = \"k\"\n[[route.policy]]\nkind = \"respond\"\n\n[[route]]\npath = \"/b\"\n[[route.policy]]\nkind = \"jwt\"\nalgorithms = [\"RS256\"]\npublic_key_file = \"nope.pem\"\n[[route.policy]]\nkind = \"respond\"\n\n[[route]]\npath = \"/c\"\n[[route.policy]]\nkind = \"jwt\"\nalgorithms = [\"ES256\"]\npublic_key_file = \"junk.pem\"\n[[route.policy]]\nkind = \"respond\"\n";
    let (code, _, err) = check_with(
        text,
        &[(
            "junk.pem",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("gw.toml:3:1: route `route[0]` [[route.policy]] kind = \"jwt\": unknown algorithm `none`"), "{err}");
    assert!(
        err.contains(
            "gw.toml:12:1: route `route[1]` [[route.policy]] kind = \"jwt\": cannot read "
        ),
        "{err}"
    );
    assert!(err.contains("nope.pem"), "{err}");
    assert!(
        err.contains("gw.toml:21:1: route `route[2]` [[route.policy]] kind = \"jwt\": "),
        "{err}"
    );
    assert!(err.contains("junk.pem: not a usable"), "{err}");
}

#[test]
fn good_file_prints_routes() {
    let (code, out, err) = check_with(
        include_str!("../../conf/examples/shardgate.toml"),
        &[
            (
                "blocked-networks.txt",
                include_str!("../../conf/examples/blocked-networks.txt"),
            ),
            (
                "order.schema.json",
                include_str!("../../conf/examples/order.schema.json"),
            ),
            (
                "example.pem",
                include_str!("../../conf/examples/example.pem"),
            ),
            (
                "example.key",
                include_str!("../../conf/examples/example.key"),
            ),
            (
                "provider.key",
                include_str!("../../conf/examples/provider.key"),
            ),
            (
                "introspect.secret",
                include_str!("../../conf/examples/introspect.secret"),
            ),
        ],
    );
    assert!(out.contains("every route first: ip"), "{out}");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok"));
    assert!(
        out.contains("users")
            && out.contains("GET|PUT|DELETE")
            && out.contains("api.example.com/v1/users/{id}"),
        "{out}"
    );
}

#[test]
fn version_flag() {
    let out = Command::new(support::bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("shardgate {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Issue 9: `shardgate --check FILE | head` (and `--help`, `--version`) with a reader that
/// closed the pipe: the output ends quietly, with the exit code the command has anyway.
#[test]
fn issue_9_a_closed_stdout_ends_the_output_quietly() {
    let dir = support::TempDir::new();
    let good = dir.0.join("good.toml");
    std::fs::write(
        &good,
        "[[route]]\npath = \"/\"\n[[route.policy]]\nkind = \"respond\"\n",
    )
    .unwrap();
    let good = good.display().to_string();
    for (args, code) in [
        (vec!["--check", good.as_str()], 0),
        (vec!["--help"], 0),
        (vec!["--version"], 0),
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // the reader is gone before anything is written
        let out = Command::new(support::bin())
            .args(&args)
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    }
}

/// TLS tables are checked with their files: unreadable, a key of another certificate, an
/// expired certificate, an unknown cipher suite, client_auth without a CA — each located.
#[test]
fn bad_tls_settings_are_located() {
    let ca = support::tls::Ca::new("ca");
    let a = ca.issue("a", &["a.test"], false);
    let b = ca.issue("b", &["b.test"], false);
    let old = ca.issue("old", &["old.test"], true);
    let text = "[[listener]]\naddress = \"127.0.0.1:0\"\n[listener.tls]\ncertificates = [\n  { cert = \"missing.pem\", key = \"a.key\" },\n  { cert = \"a.pem\", key = \"b.key\" },\n  { cert = \"old.pem\", key = \"old.key\" },\n]\ncipher_suites = [\"TLS13_NOPE\"]\n\n[[route]]\npath = \"/\"\n[[route.policy]]\nkind = \"respond\"\n";
    let (code, _, err) = check_with(
        text,
        &[
            ("a.pem", &a.cert_pem),
            ("a.key", &a.key_pem),
            ("b.key", &b.key_pem),
            ("old.pem", &old.cert_pem),
            ("old.key", &old.key_pem),
        ],
    );
    assert_eq!(code, 2, "{err}");
    for want in [
        "gw.toml:5:12: cannot read ",
        "gw.toml:6:12: ",
        "b.key does not belong to the certificate in ",
        "gw.toml:7:12: ",
        "old.pem: the certificate expired on ",
        "gw.toml:9:18: unknown cipher suite `TLS13_NOPE`; rustls offers: TLS13_AES_256_GCM_SHA384",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let (code, _, err) = check(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[listener.tls]\ncertificates = [{ cert = \"a.pem\", key = \"a.key\" }]\nclient_auth = \"required\"\n[[route]]\npath = \"/\"\n[[route.policy]]\nkind = \"respond\"\n",
    );
    assert_eq!(code, 2);
    assert!(
        err.starts_with("gw.toml:3:1: [listener.tls] client_auth needs client_ca"),
        "{err}"
    );
    // certificates SNI could never pick: no DNS name (after the default), or only names an
    // earlier certificate already serves
    let again = ca.issue("a again", &["a.test"], false);
    let nameless = ca.issue("nameless", &[], false);
    let (code, _, err) = check_with(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[listener.tls]\ncertificates = [\n  { cert = \"a.pem\", key = \"a.key\" },\n  { cert = \"again.pem\", key = \"again.key\" },\n  { cert = \"nameless.pem\", key = \"nameless.key\" },\n]\n[[route]]\npath = \"/\"\n[[route.policy]]\nkind = \"respond\"\n",
        &[
            ("a.pem", &a.cert_pem),
            ("a.key", &a.key_pem),
            ("again.pem", &again.cert_pem),
            ("again.key", &again.key_pem),
            ("nameless.pem", &nameless.cert_pem),
            ("nameless.key", &nameless.key_pem),
        ],
    );
    assert_eq!(code, 2, "{err}");
    for want in [
        "gw.toml:6:12: ",
        "again.pem: every name the certificate serves is served by an earlier one",
        "gw.toml:7:12: ",
        "nameless.pem: the certificate names no DNS host",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn observability_settings_are_checked_and_shown() {
    let (code, _, err) = check(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[access_log]\npath = \"no/such/dir/a.log\"\n\
         [request_id]\ntrust_from = [\"10.0.0.0/40\"]\n",
    );
    assert_eq!(code, 2);
    assert!(err.contains("gw.toml:4:8: [access_log] path"), "{err}");
    assert!(err.contains("its directory does not exist"), "{err}");
    assert!(
        err.contains("gw.toml:6:14: [request_id] trust_from"),
        "{err}"
    );
    let (code, out, err) = check(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[access_log]\npath = \"a.log\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\n[tracing]\nenabled = false\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("admin: http://127.0.0.1:0 (token)"), "{out}");
    assert!(
        out.contains("a.log (json)") && out.contains("request ids: on, tracing: off"),
        "{out}"
    );
}

#[test]
fn a_quota_needs_redis_and_a_known_period() {
    let route = "[[route]]\nname = \"q\"\npath = \"/q\"\n[[route.policy]]\nkind = \"respond\"\n[[route.policy]]\nkind = \"quota\"\nlimit = 10\n";
    let (code, _, err) = check(route);
    assert_eq!(code, 2);
    assert!(
        err.contains("gw.toml:6:1: route `q` [[route.policy]] kind = \"quota\": a quota needs a [redis] section"),
        "{err}"
    );
    let (code, _, err) = check(&format!("[redis]\n{route}period = \"week\"\n"));
    assert_eq!(code, 2);
    assert!(
        err.contains("gw.toml:7:1: route `q` [[route.policy]] kind = \"quota\": period `week`: expected \"hour\", \"day\" or \"month\""),
        "{err}"
    );
    let (code, out, err) = check(&format!("[redis]\n{route}period = \"month\"\n"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("quota"), "{out}");
    // TLS files without TLS, a certificate without its key
    let (code, _, err) = check("[redis]\nca_file = \"ca.pem\"\ncert_file = \"c.pem\"\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("gw.toml:2:11: [redis] ca_file needs tls = true"),
        "{err}"
    );
    assert!(
        err.contains("gw.toml:3:13: [redis] cert_file needs key_file"),
        "{err}"
    );
}
