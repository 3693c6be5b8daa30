//! The chart a person opens: latency-percentile curves (left) and proxy CPU per request with
//! its spread over the rounds (right), one colour per system, as a standalone SVG.

use std::fmt::Write;

use super::ScenarioResult;

const COLOURS: &[&str] = &["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"];
const W: f64 = 980.0;
const H: f64 = 440.0;
const TOP: f64 = 80.0;
const BOTTOM: f64 = 380.0;

/// Renders the scenario's chart.
pub fn render(r: &ScenarioResult) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="24" font-size="15" font-weight="bold">{} — {}</text>
<text x="20" y="42" fill="#555">{} rounds × {:.0} s, {} connections{}; proxy on CPU {}, generator + origin on CPU {}; {}</text>
"##,
        esc(&r.scenario),
        esc(&r.description),
        r.rounds,
        r.duration_s,
        r.connections,
        r.rate
            .map(|x| format!(", open loop {x:.0} req/s"))
            .unwrap_or_default(),
        super::systems::cpu_list(&r.proxy_cpus),
        super::systems::cpu_list(&r.load_cpus),
        esc(&r.machine.cpu),
    );
    latency_panel(&mut s, r, 70.0, 520.0);
    cpu_panel(&mut s, r, 640.0, 940.0);
    s += "</svg>\n";
    s
}

/// x position of a percentile: -log10(1 - p/100), so 90 → 1, 99 → 2, 99.99 → 4 (100 at 5).
fn nines(p: f64) -> f64 {
    if p >= 100.0 {
        5.0
    } else {
        (-(1.0 - p / 100.0).log10()).min(5.0)
    }
}

fn latency_panel(s: &mut String, r: &ScenarioResult, x0: f64, x1: f64) {
    let values = || {
        r.systems
            .iter()
            .flat_map(|sys| sys.latency_curve.iter().map(|(_, v)| *v))
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    // log-scale y over whole decades around the values
    let lo = values().fold(f64::INFINITY, f64::min).clamp(1e-3, 1e6);
    let hi = values().fold(0.0, f64::max).max(lo * 10.0);
    let (llo, lhi) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let span = f64::from((lhi - llo).max(1));
    let y = |v: f64| {
        let v = v.clamp(10f64.powi(llo), 10f64.powi(lhi));
        BOTTOM - (v.log10() - f64::from(llo)) / span * (BOTTOM - TOP)
    };
    let x = |p: f64| x0 + (nines(p) - nines(50.0)) / (5.0 - nines(50.0)) * (x1 - x0);
    let _ = writeln!(
        s,
        r#"<text x="{x0}" y="{}" font-weight="bold">latency (ms, log) by percentile</text>"#,
        TOP - 6.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        x1 - x0,
        BOTTOM - TOP
    );
    for decade in llo..=lhi {
        let v = 10f64.powi(decade);
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" x2="{x1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 4.0,
            yy + 4.0,
            fmt_ms(v)
        );
    }
    for (p, label) in [
        (50.0, "50"),
        (90.0, "90"),
        (99.0, "99"),
        (99.9, "99.9"),
        (99.99, "99.99"),
        (100.0, "max"),
    ] {
        let xx = x(p);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{TOP}" y2="{BOTTOM}" stroke="#eee"/><text x="{xx:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            BOTTOM + 16.0
        );
    }
    for (i, sys) in r.systems.iter().enumerate() {
        let colour = COLOURS.get(i % COLOURS.len()).copied().unwrap_or("#000");
        let points: Vec<String> = sys
            .latency_curve
            .iter()
            .map(|(p, v)| format!("{:.1},{:.1}", x(*p), y(*v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            points.join(" ")
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" fill="{colour}">{}</text>"#,
            x0 + 8.0,
            TOP + 16.0 + 15.0 * i as f64,
            sys.name
        );
    }
}

fn cpu_panel(s: &mut String, r: &ScenarioResult, x0: f64, x1: f64) {
    let max = r
        .systems
        .iter()
        .map(|sys| sys.cpu_us_per_req.max)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.15;
    let y = |v: f64| BOTTOM - v / max * (BOTTOM - TOP);
    let _ = writeln!(
        s,
        r#"<text x="{x0}" y="{}" font-weight="bold">proxy CPU µs per request (median, min..max)</text>"#,
        TOP - 6.0
    );
    let _ = writeln!(
        s,
        r##"<line x1="{x0}" x2="{x1}" y1="{BOTTOM}" y2="{BOTTOM}" stroke="#999"/>"##
    );
    let n = r.systems.len().max(1) as f64;
    let slot = (x1 - x0) / n;
    for (i, sys) in r.systems.iter().enumerate() {
        let colour = COLOURS.get(i % COLOURS.len()).copied().unwrap_or("#000");
        let c = &sys.cpu_us_per_req;
        if !c.median.is_finite() {
            continue;
        }
        let bx = x0 + slot * i as f64 + slot * 0.2;
        let bw = slot * 0.6;
        let mid = bx + bw / 2.0;
        let _ = writeln!(
            s,
            r#"<rect x="{bx:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="{colour}" opacity="0.8"/>"#,
            y(c.median),
            BOTTOM - y(c.median)
        );
        let _ = writeln!(
            s,
            r#"<line x1="{mid:.1}" x2="{mid:.1}" y1="{:.1}" y2="{:.1}" stroke="black"/>"#,
            y(c.min),
            y(c.max)
        );
        let _ = writeln!(
            s,
            r#"<text x="{mid:.1}" y="{:.1}" text-anchor="middle">{:.2}</text>"#,
            y(c.max) - 5.0,
            c.median
        );
        let ratio = sys
            .cpu_vs_baseline
            .map(|x| format!(" {:.2}×", x.median))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            r#"<text x="{mid:.1}" y="{}" text-anchor="middle">{}{ratio}</text>"#,
            BOTTOM + 16.0,
            sys.name
        );
    }
}

fn fmt_ms(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
