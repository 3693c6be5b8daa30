//! `GET /`: the live status page, rendered here from the `/stats` document and refreshing
//! itself every two seconds (no script): listeners, routes (rates, status classes, latency
//! percentiles), targets (health, ejection, circuit, load, errors) and shards. Each figure's
//! cell names its row and column (`data-row`, `data-col`), so a test can read it back.

use std::fmt::Write;

use serde_json::Value;

/// Seconds between refreshes.
const REFRESH: u32 = 2;

/// `s` as HTML text or attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A figure as shown: integers plain, rates and times with one or two decimals, `–` for none.
fn figure(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if x >= 100.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        }
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::String(s) => esc(s),
        _ => "–".into(),
    }
}

/// A cell: its column, its text, its CSS class.
type Cell<'a> = (&'a str, String, &'static str);

/// One table: a title, column heads, and rows of (row name, cells); names and texts are
/// HTML already (`figure` escapes).
struct Table<'a> {
    title: &'a str,
    heads: &'a [&'a str],
    rows: Vec<(String, Vec<Cell<'a>>)>,
}

impl Table<'_> {
    fn render(&self, out: &mut String) {
        let _ = write!(out, "<h2>{}</h2><table><thead><tr>", esc(self.title));
        for h in self.heads {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr></thead><tbody>");
        if self.rows.is_empty() {
            let _ = write!(
                out,
                "<tr><td colspan=\"{}\">none</td></tr>",
                self.heads.len()
            );
        }
        for (row, cells) in &self.rows {
            out.push_str("<tr>");
            for (col, text, class) in cells {
                let _ = write!(
                    out,
                    "<td class=\"{class}\" data-row=\"{row}\" data-col=\"{col}\">{text}</td>"
                );
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
    }
}

/// `v[key]` shown.
fn f(v: &Value, key: &str) -> String {
    figure(v.get(key).unwrap_or(&Value::Null))
}

/// `v[a][b]` shown.
fn f2(v: &Value, a: &str, b: &str) -> String {
    figure(v.get(a).and_then(|x| x.get(b)).unwrap_or(&Value::Null))
}

fn list<'v>(stats: &'v Value, key: &str) -> &'v [Value] {
    stats
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The page for the `/stats` document `stats`.
pub fn render(stats: &Value, draining: bool, trends: bool) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH}\"><title>shardgate status</title>\
         <style>{STYLE}</style></head><body><h1>shardgate <span class=\"{}\">{}</span></h1>",
        if draining { "bad" } else { "good" },
        if draining { "draining" } else { "serving" }
    );
    let _ = write!(
        out,
        "<p class=\"totals\">requests <b id=\"requests\">{}</b> · per second <b id=\"rate\">{}</b> · open connections <b id=\"open\">{}</b> · refreshed every {REFRESH} s</p>",
        f(stats, "requests"),
        f(stats, "rate"),
        f(stats, "open")
    );
    if trends {
        out.push_str("<p><a href=\"/trends\">Trends: requests, errors and p99 per API and consumer over the last hour, day, week</a></p>");
    }
    let listeners = Table {
        title: "Listeners",
        heads: &["address", "scheme", "connections", "per second"],
        rows: list(stats, "listeners")
            .iter()
            .map(|l| {
                let cells = vec![
                    ("address", f(l, "address"), ""),
                    ("scheme", f(l, "scheme"), ""),
                    ("accepted", f(l, "accepted"), "n"),
                    ("rate", f(l, "rate"), "n"),
                ];
                (f(l, "address"), cells)
            })
            .collect(),
    };
    listeners.render(&mut out);
    routes(stats).render(&mut out);
    targets(stats).render(&mut out);
    let shards = Table {
        title: "Shards",
        heads: &[
            "shard",
            "requests",
            "per second",
            "open",
            "accepted",
            "over limit",
        ],
        rows: list(stats, "shards")
            .iter()
            .map(|s| {
                let cells = vec![
                    ("shard", f(s, "shard"), ""),
                    ("requests", f(s, "requests"), "n"),
                    ("rate", f(s, "rate"), "n"),
                    ("open", f(s, "open"), "n"),
                    ("accepted", f(s, "accepted"), "n"),
                    ("over_limit", f(s, "over_limit"), "n"),
                ];
                (f(s, "shard"), cells)
            })
            .collect(),
    };
    shards.render(&mut out);
    out.push_str("</body></html>\n");
    out
}

fn routes(stats: &Value) -> Table<'static> {
    Table {
        title: "Routes",
        heads: &[
            "route",
            "requests",
            "per second",
            "2xx",
            "3xx",
            "4xx",
            "5xx",
            "p50 ms",
            "p99 ms",
            "upstream p99 ms",
        ],
        rows: list(stats, "routes")
            .iter()
            .map(|r| {
                let errors = r
                    .get("responses")
                    .and_then(|c| c.get("5xx"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let cells = vec![
                    ("route", f(r, "name"), ""),
                    ("requests", f(r, "requests"), "n"),
                    ("rate", f(r, "rate"), "n"),
                    ("2xx", f2(r, "responses", "2xx"), "n"),
                    ("3xx", f2(r, "responses", "3xx"), "n"),
                    ("4xx", f2(r, "responses", "4xx"), "n"),
                    (
                        "5xx",
                        f2(r, "responses", "5xx"),
                        if errors > 0 { "n bad" } else { "n" },
                    ),
                    ("p50", f2(r, "latency_ms", "p50"), "n"),
                    ("p99", f2(r, "latency_ms", "p99"), "n"),
                    ("upstream_p99", f2(r, "upstream_ms", "p99"), "n"),
                ];
                (f(r, "name"), cells)
            })
            .collect(),
    }
}

fn targets(stats: &Value) -> Table<'static> {
    Table {
        title: "Targets",
        heads: &[
            "upstream",
            "target",
            "health",
            "circuit",
            "in flight",
            "attempts",
            "no answer",
            "5xx",
            "reused",
            "connect ms",
        ],
        rows: list(stats, "targets")
            .iter()
            .map(|t| {
                let up = t.get("up").and_then(Value::as_bool).unwrap_or(false);
                let ejected = t.get("ejected").and_then(Value::as_bool).unwrap_or(false);
                let (health, class) = match (up, ejected) {
                    (false, _) => ("down", "bad"),
                    (true, true) => ("ejected", "warn"),
                    (true, false) => ("up", "good"),
                };
                let circuit = f(t, "circuit");
                let circuit_class = if circuit == "closed" { "good" } else { "bad" };
                let row = format!("{} {}", f(t, "upstream"), f(t, "target"));
                let cells = vec![
                    ("upstream", f(t, "upstream"), ""),
                    ("target", f(t, "target"), ""),
                    ("health", health.to_string(), class),
                    ("circuit", circuit, circuit_class),
                    ("in_flight", f(t, "in_flight"), "n"),
                    ("attempts", f(t, "attempts"), "n"),
                    ("errors", f(t, "errors"), "n"),
                    ("server_errors", f(t, "server_errors"), "n"),
                    ("reused", f(t, "reused"), "n"),
                    ("connect_ms", f(t, "connect_ms_avg"), "n"),
                ];
                (row, cells)
            })
            .collect(),
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h1 span{font-size:.7em;padding:.1em .5em;border-radius:.3em}\
h2{font-size:1.1em;margin-top:1.5em}table{border-collapse:collapse;min-width:40em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f0f0f0}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
.good{background:#e3f6e3}.warn{background:#fff1cc}.bad{background:#fbd5d5}\
.totals b{font-variant-numeric:tabular-nums}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_figures_tagged() {
        let stats = serde_json::json!({
            "requests": 7, "rate": 1.5, "open": 1,
            "routes": [{ "name": "<script>", "requests": 7, "rate": null,
                         "responses": { "2xx": 7, "5xx": 0 },
                         "latency_ms": { "p50": 0.25, "p99": 1.0 }, "upstream_ms": null }],
            "targets": [{ "upstream": "a", "target": "127.0.0.1:1", "up": false,
                          "ejected": false, "circuit": "open" }],
        });
        let page = render(&stats, true, true);
        assert!(!page.contains("<script>"));
        assert!(page.contains("data-row=\"&lt;script&gt;\" data-col=\"requests\">7</td>"));
        assert!(page.contains("data-col=\"p50\">0.25</td>"));
        assert!(page.contains("data-col=\"rate\">–</td>"));
        assert!(page.contains("class=\"bad\" data-row=\"a 127.0.0.1:1\" data-col=\"health\">down"));
        assert!(page.contains(">draining<"));
        assert!(page.contains("href=\"/trends\""));
        assert!(!render(&stats, true, false).contains("href=\"/trends\""));
    }
}
