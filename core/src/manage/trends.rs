//! The trend page: requests, errors and p99 latency per API or per consumer over the last
//! hour, day or week, each a small inline SVG line with its numbers beside it, rendered from
//! the store on the management thread (no script: readable at a glance, and in any browser).

use std::fmt::Write;

use ahash::AHashMap;

use super::analytics::{Period, Stored};
use crate::admin::page::esc;
use crate::calls::Sums;

/// A window of the page: its name, length and step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `hour`, `day` or `week`.
    pub name: &'static str,
    /// Its length (ms).
    pub ms: u64,
    /// One point per this.
    pub step: Period,
}

/// The windows offered.
pub const WINDOWS: [Window; 3] = [
    Window {
        name: "hour",
        ms: 3_600_000,
        step: Period::Minute,
    },
    Window {
        name: "day",
        ms: 86_400_000,
        step: Period::Hour,
    },
    Window {
        name: "week",
        ms: 604_800_000,
        step: Period::Hour,
    },
];

/// The window named `s` (default the hour).
pub fn window(s: Option<&str>) -> Option<Window> {
    match s {
        None => WINDOWS.first().copied(),
        Some(s) => WINDOWS.iter().find(|w| w.name == s).copied(),
    }
}

/// An SVG line of `points` (scaled to its largest), `w`×`h` pixels.
fn spark(points: &[u64]) -> String {
    let (w, h) = (240.0, 40.0);
    let top = points.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = points.len().max(2) as f64 - 1.0;
    let mut line = String::new();
    for (i, p) in points.iter().enumerate() {
        let x = i as f64 * w / n;
        let y = h - 2.0 - (*p as f64 / top) * (h - 4.0);
        let _ = write!(line, "{x:.1},{y:.1} ");
    }
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\"><rect width=\"{w}\" height=\"{h}\" fill=\"#f6f8fa\"/><polyline fill=\"none\" stroke=\"#0969da\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        line.trim_end()
    )
}

/// The page for `scope` (`all tenants` or a tenant), series by `by` (`api` or `consumer`),
/// from `rows` of the window ending at `now_ms`; `base` is the page's own path.
pub fn render(
    scope: &str,
    base: &str,
    w: Window,
    by: &str,
    rows: &[Stored],
    now_ms: u64,
) -> String {
    let start = w.step.floor(now_ms.saturating_sub(w.ms)) + w.step.ms();
    let steps = usize::try_from(w.ms / w.step.ms()).unwrap_or(60);
    let mut series: AHashMap<String, (Sums, Vec<Sums>)> = AHashMap::new();
    for r in rows
        .iter()
        .filter(|r| r.start_ms >= start && r.start_ms <= now_ms)
    {
        let name = match by {
            "consumer" if r.consumer.is_empty() => "(anonymous)".to_string(),
            "consumer" => r.consumer.clone(),
            _ if r.api.is_empty() => "(no API)".to_string(),
            _ => format!("{}/{}", r.tenant, r.api),
        };
        let (total, points) = series
            .entry(name)
            .or_insert_with(|| (Sums::default(), vec![Sums::default(); steps]));
        total.add(&r.sums);
        let i = usize::try_from((w.step.floor(r.start_ms) - start) / w.step.ms()).unwrap_or(0);
        if let Some(p) = points.get_mut(i) {
            p.add(&r.sums);
        }
    }
    let mut names: Vec<&String> = series.keys().collect();
    names.sort();
    let mut h = String::with_capacity(4096);
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>shardgate trends</title><style>body{{font:14px system-ui,sans-serif;margin:24px;color:#1f2328}}table{{border-collapse:collapse}}td,th{{padding:6px 12px;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:middle}}.n{{font-size:20px;font-weight:600}}a{{margin-right:12px}}</style></head><body><h1>Trends: {}</h1><p>",
        esc(scope)
    );
    for o in WINDOWS {
        let _ = write!(
            h,
            "<a href=\"{base}?window={}&amp;by={by}\">last {}</a>",
            o.name, o.name
        );
    }
    for b in ["api", "consumer"] {
        let _ = write!(
            h,
            "<a href=\"{base}?window={}&amp;by={b}\">by {b}</a>",
            w.name
        );
    }
    let _ = write!(
        h,
        "</p><p>Last {}, one point per {}, by {by}.</p><table><tr><th>{by}</th><th>requests</th><th></th><th>errors</th><th></th><th>p99 (ms)</th><th></th></tr>",
        w.name,
        w.step.name()
    );
    if names.is_empty() {
        h.push_str("<tr><td colspan=\"7\">no calls in this window</td></tr>");
    }
    for name in names {
        let Some((total, points)) = series.get(name) else {
            continue;
        };
        let n = esc(name);
        let count: Vec<u64> = points.iter().map(|p| p.count).collect();
        let errors: Vec<u64> = points.iter().map(|p| p.errors).collect();
        let p99: Vec<u64> = points.iter().map(|p| p.quantile_ms(0.99)).collect();
        let _ = write!(
            h,
            "<tr data-series=\"{n}\"><td>{n}</td><td class=\"n\" data-col=\"requests\">{}</td><td>{}</td><td class=\"n\" data-col=\"errors\">{}</td><td>{}</td><td class=\"n\" data-col=\"p99\">{}</td><td>{}</td></tr>",
            total.count,
            spark(&count),
            total.errors,
            spark(&errors),
            total.quantile_ms(0.99),
            spark(&p99)
        );
    }
    h.push_str("</table><p>p99 is the upper bound of the latency bucket holding it (1, 2, 5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5, 10 s).</p></body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_add_up_and_names_are_escaped() {
        let row = |start_ms, consumer: &str, count| {
            let mut latency = [0; crate::calls::BUCKETS];
            latency[1] = count;
            let sums = Sums {
                count,
                errors: 1,
                latency,
                ..Sums::default()
            };
            super::super::analytics::tests::sample(start_ms, consumer, 2, sums)
        };
        let now = 10 * 3_600_000;
        let rows = [
            row(now - 120_000, "<a>", 3),
            row(now - 60_000, "<a>", 4),
            row(now - 7_200_000, "<a>", 100),
        ];
        let w = window(Some("hour")).unwrap_or(WINDOWS[0]);
        let page = render("acme", "/tenants/acme/trends", w, "consumer", &rows, now);
        assert!(page.contains("<tr data-series=\"&lt;a&gt;\"><td>&lt;a&gt;</td><td class=\"n\" data-col=\"requests\">7</td>"), "{page}");
        assert!(page.contains("data-col=\"errors\">2<") && page.contains("data-col=\"p99\">2<"));
        let by_api = render("acme", "/x", w, "api", &rows, now);
        assert!(by_api.contains("data-series=\"acme/orders\""));
        assert!(window(Some("month")).is_none());
    }
}
