//! A hand-written SVG chart of a run: throughput, latency percentiles and server memory over
//! time, one panel each, as polylines. Plain SVG needs no plotting crate and opens in any
//! browser.

use std::fmt::Write as _;

use crate::report::{Report, Sample};

const WIDTH: f64 = 900.0;
const PANEL: f64 = 200.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 50.0;

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

/// Renders the chart for `report`.
pub fn render(report: &Report) -> String {
    let t = &report.timeline;
    let mut panels: Vec<(String, Vec<Series<'_>>)> = Vec::new();
    panels.push((
        format!("{} per second", report.ops_unit),
        vec![series("ops/s", "#1f77b4", t, |s| Some(s.ops_per_sec))],
    ));
    if t.iter().any(|s| s.p50_ms.is_some()) {
        panels.push((
            "latency (ms)".into(),
            vec![
                series("p50", "#2ca02c", t, |s| s.p50_ms),
                series("p99", "#ff7f0e", t, |s| s.p99_ms),
                series("p99.9", "#d62728", t, |s| s.p999_ms),
            ],
        ));
    }
    if t.iter().any(|s| s.server_rss.is_some()) {
        panels.push((
            "server RSS (MiB)".into(),
            vec![series("rss", "#9467bd", t, |s| {
                s.server_rss.map(|b| b as f64 / (1024.0 * 1024.0))
            })],
        ));
    }
    if t.iter().any(|s| s.kernel_tcp.is_some()) {
        panels.push((
            "kernel TCP buffers, whole host (MiB)".into(),
            vec![series("tcp", "#17becf", t, |s| {
                s.kernel_tcp.map(|b| b as f64 / (1024.0 * 1024.0))
            })],
        ));
    }
    panels.push((
        "connections".into(),
        vec![series("connections", "#8c564b", t, |s| {
            Some(s.connections as f64)
        })],
    ));
    let height = TOP + panels.len() as f64 * (PANEL + GAP) + 10.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="20" font-size="15">ringcast-bench {} — {}</text>"#,
        escape(&report.scenario),
        escape(&report.machine.cpu)
    );
    let t_max = t.iter().map(|s| s.t).fold(1.0, f64::max);
    for (i, (title, series)) in panels.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL + GAP);
        panel(&mut out, top, title, series, t_max);
    }
    out.push_str("</svg>\n");
    out
}

fn series<'a>(
    name: &'a str,
    color: &'a str,
    t: &[Sample],
    f: impl Fn(&Sample) -> Option<f64>,
) -> Series<'a> {
    Series {
        name,
        color,
        points: t.iter().filter_map(|s| f(s).map(|v| (s.t, v))).collect(),
    }
}

fn panel(out: &mut String, top: f64, title: &str, series: &[Series<'_>], t_max: f64) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let y_max = if y_max > 0.0 {
        nice_ceiling(y_max)
    } else {
        1.0
    };
    let x = |t: f64| LEFT + t / t_max * plot_w;
    let y = |v: f64| top + PANEL - v / y_max * PANEL;
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#999"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}">{}</text>"#,
        top - 6.0,
        escape(title)
    );
    for k in 0..=4 {
        let v = y_max * k as f64 / 4.0;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{yy}" y2="{yy}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y(v) + 4.0,
            short(v),
            yy = y(v),
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end">{:.0} s</text>"#,
        LEFT + plot_w,
        top + PANEL + 15.0,
        t_max
    );
    for (i, s) in series.iter().enumerate() {
        if s.points.is_empty() {
            continue;
        }
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            s.color,
            pts.join(" ")
        );
        let lx = LEFT + 10.0 + i as f64 * 90.0;
        let _ = writeln!(
            out,
            r#"<text x="{lx}" y="{}" fill="{}">{}</text>"#,
            top + 16.0,
            s.color,
            escape(s.name)
        );
    }
}

/// 1, 2 or 5 times a power of ten at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_a_panel_per_measure() {
        let mut r = Report::new("fanout", "deliveries");
        for i in 1..=5 {
            r.timeline.push(Sample {
                t: i as f64,
                ops_per_sec: 1000.0 * i as f64,
                p50_ms: Some(0.5),
                p99_ms: Some(1.5),
                p999_ms: Some(3.0),
                server_rss: Some(50 << 20),
                kernel_tcp: Some(8 << 20),
                connections: 10,
                ..Sample::default()
            });
        }
        let svg = render(&r);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 7);
        assert!(svg.contains("kernel TCP buffers"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
    }
}
