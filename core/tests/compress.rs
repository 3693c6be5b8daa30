//! The `compress` stage through a real gateway and a scripted origin: every coding
//! round-trips byte-exactly for Content-Length and chunked responses (re-framed chunked to
//! the client, ETag weakened, Vary set), and a table of what must pass uncompressed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::io::Read;

use support::script::{Script, send};
use support::{Gateway, Response, request};

/// A gateway of one shard compressing everything it routes to `origin`.
fn gateway(origin: &Script, extra: &str) -> Option<Gateway> {
    with_policy(
        origin,
        &format!("[[route.policy]]\nkind = \"compress\"\n{extra}\n"),
    )
}

/// A gateway of one shard routing everything to `origin` through `policy`.
fn with_policy(origin: &Script, policy: &str) -> Option<Gateway> {
    Gateway::start(
        "auto",
        "shards = 1",
        &support::route_all_policy(origin.addr, policy),
    )
}

/// A JSON body of about `n` bytes.
fn json(n: usize) -> String {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < n {
        s += &format!("{{\"id\":{i},\"name\":\"item {}\",\"ok\":true}},", i % 13);
        i += 1;
    }
    s + "0]"
}

fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(data).read_to_end(&mut out),
        "br" => brotli::Decompressor::new(data, 4096).read_to_end(&mut out),
        "zstd" => zstd::stream::read::Decoder::new(data).and_then(|mut d| d.read_to_end(&mut out)),
        other => panic!("{other}"),
    }
    .unwrap();
    out
}

#[test]
fn every_coding_round_trips_content_length_and_chunked_bodies() {
    let origin = Script::start();
    let Some(g) = gateway(&origin, "") else {
        return;
    };
    let body = json(40_000);
    let chunked = String::from_utf8(support::chunked(body.as_bytes(), 3000)).unwrap();
    for coding in ["gzip", "br", "zstd"] {
        for (framing, head, sent) in [
            (
                "length",
                "HTTP/1.1 200 OK\nContent-Type: application/json; charset=utf-8\nETag: \"v1\"\nAccept-Ranges: bytes",
                body.as_str(),
            ),
            (
                "chunked",
                "HTTP/1.1 200 OK\nContent-Type: application/json\nETag: \"v1\"\nTransfer-Encoding: chunked",
                chunked.as_str(),
            ),
        ] {
            let at = format!("{coding}, {framing}");
            origin.on("/j", vec![send(head, sent)]);
            let r = request(
                g.addr,
                "GET",
                "/j",
                &format!("Accept-Encoding: {coding}\r\n"),
                b"",
            );
            assert_eq!(r.status, 200, "{at}");
            assert_eq!(r.header("content-encoding"), Some(coding), "{at}: {r:?}");
            assert_eq!(
                r.header("content-length"),
                None,
                "{at}: the gateway frames it"
            );
            assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{at}");
            assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{at}");
            assert_eq!(r.header("etag"), Some("W/\"v1\""), "{at}");
            assert_eq!(r.header("accept-ranges"), None, "{at}");
            assert!(
                r.body.len() < body.len() / 4,
                "{at}: {} bytes",
                r.body.len()
            );
            assert_eq!(decode(coding, &r.body), body.as_bytes(), "{at}");
        }
    }
    // the client's ratings choose: br rated below gzip gets gzip; an upstream's
    // `Content-Encoding: identity` is replaced, not listed beside it
    let head = "HTTP/1.1 200 OK\nContent-Type: text/html\nContent-Encoding: identity";
    origin.on("/j", vec![send(head, &body)]);
    let ae = "Accept-Encoding: br;q=0.5, gzip\r\n";
    let r = request(g.addr, "GET", "/j", ae, b"");
    let codings: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(codings, ["gzip"], "{r:?}");
    assert_eq!(decode("gzip", &r.body), body.as_bytes());
}

/// One response that must reach the client as the origin sent it.
struct Row {
    name: &'static str,
    method: &'static str,
    request: &'static str,
    head: &'static str,
    /// `Vary: Accept-Encoding` added (the type is one compressed, the body not encoded).
    vary: bool,
}

#[test]
fn what_is_not_compressed_table() {
    let origin = Script::start();
    let Some(g) = gateway(&origin, "codings = [\"gzip\"]\nmin_size = \"2KiB\"") else {
        return;
    };
    let ae = "Accept-Encoding: gzip, br\r\n";
    let big = json(8000);
    let small = json(1000);
    let rows = [
        Row {
            name: "below min_size",
            method: "GET",
            request: ae,
            head: "HTTP/1.1 200 OK\nContent-Type: application/json",
            vary: true,
        },
        Row {
            name: "a type not listed",
            method: "GET",
            request: ae,
            head: "HTTP/1.1 200 OK\nContent-Type: image/png",
            vary: false,
        },
        Row {
            name: "no Content-Type",
            method: "GET",
            request: ae,
            head: "HTTP/1.1 200 OK",
            vary: false,
        },
        Row {
            name: "already encoded",
            method: "GET",
            request: ae,
            head: "HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Encoding: gzip",
            vary: false,
        },
        Row {
            name: "no-transform",
            method: "GET",
            request: ae,
            head: "HTTP/1.1 200 OK\nContent-Type: text/plain\nCache-Control: public, no-transform",
            vary: false,
        },
        Row {
            name: "a range",
            method: "GET",
            request: ae,
            head: "HTTP/1.1 206 Partial Content\nContent-Type: text/plain\nContent-Range: bytes 0-7999/9000",
            vary: false,
        },
        Row {
            name: "gzip;q=0",
            method: "GET",
            request: "Accept-Encoding: gzip;q=0, br\r\n",
            head: "HTTP/1.1 200 OK\nContent-Type: text/plain",
            vary: true,
        },
        Row {
            name: "no Accept-Encoding",
            method: "GET",
            request: "",
            head: "HTTP/1.1 200 OK\nContent-Type: text/plain",
            vary: true,
        },
        Row {
            name: "identity only",
            method: "GET",
            request: "Accept-Encoding: identity\r\n",
            head: "HTTP/1.1 200 OK\nContent-Type: text/plain",
            vary: true,
        },
        Row {
            name: "HEAD",
            method: "HEAD",
            request: ae,
            head: "HTTP/1.1 200 OK\nContent-Type: text/plain",
            vary: true,
        },
        Row {
            name: "204",
            method: "GET",
            request: ae,
            head: "HTTP/1.1 204 No Content\nContent-Type: text/plain",
            vary: false,
        },
        Row {
            name: "304",
            method: "GET",
            request: ae,
            head: "HTTP/1.1 304 Not Modified\nContent-Type: text/plain\nETag: \"v\"",
            vary: false,
        },
    ];
    for row in rows {
        let body = match row.name {
            "below min_size" => small.as_str(),
            "204" | "304" => "",
            _ => big.as_str(),
        };
        origin.on("/n", vec![send(row.head, body)]);
        let r: Response = request(g.addr, row.method, "/n", row.request, b"");
        let at = row.name;
        assert_eq!(
            r.header("content-encoding")
                .filter(|_| at != "already encoded"),
            None,
            "{at}: {r:?}"
        );
        if row.method == "GET" {
            assert_eq!(r.body, body.as_bytes(), "{at}: passed as sent");
        }
        assert_eq!(
            r.header("vary") == Some("Accept-Encoding"),
            row.vary,
            "{at}: {r:?}"
        );
        if row.name == "304" {
            assert_eq!(
                r.header("etag"),
                Some("\"v\""),
                "a 304's validator is left alone"
            );
        }
    }
}

#[test]
fn with_a_cache_nothing_compressed_is_stored_under_the_identity_head() {
    let body = json(8000);
    let head = "HTTP/1.1 200 OK\nContent-Type: application/json\nCache-Control: max-age=100";
    let ae = "Accept-Encoding: gzip\r\n";
    // compress listed after the cache: it rewrites before the cache would see the body, so
    // the cache stores nothing and every answer is a correct gzip stream
    let origin = Script::start();
    let both = "[[route.policy]]\nkind = \"cache\"\n[[route.policy]]\nkind = \"compress\"\n";
    let Some(g) = with_policy(&origin, both) else {
        return;
    };
    origin.on("/c", vec![send(head, &body); 2]);
    for _ in 0..2 {
        let r = request(g.addr, "GET", "/c", ae, b"");
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{r:?}");
        assert_eq!(decode("gzip", &r.body), body.as_bytes());
    }
    assert_eq!(origin.seen("/c").len(), 2, "not stored");
    // listed before the cache: the cache keeps the identity response, a hit sends it as is
    let origin = Script::start();
    let both = "[[route.policy]]\nkind = \"compress\"\n[[route.policy]]\nkind = \"cache\"\n";
    let Some(g) = with_policy(&origin, both) else {
        return;
    };
    origin.on("/c", vec![send(head, &body)]);
    let first = request(g.addr, "GET", "/c", ae, b"");
    assert_eq!(decode("gzip", &first.body), body.as_bytes());
    let hit = request(g.addr, "GET", "/c", ae, b"");
    assert!(
        hit.header("cache-status").unwrap().contains("hit"),
        "{hit:?}"
    );
    assert_eq!(hit.header("content-encoding"), None);
    assert_eq!(hit.body, body.as_bytes());
    assert_eq!(origin.seen("/c").len(), 1);
}
