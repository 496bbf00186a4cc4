//! The result of one scenario: a table on stdout, a JSON document, and the data for the chart.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::procfs::{Machine, machine};
use crate::stats::Percentiles;

/// One named figure.
#[derive(Clone, Debug, Serialize)]
pub struct Metric {
    /// Name (snake_case, stable: scripts and tests read it).
    pub name: String,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: String,
}

/// A pass/fail property of the run (no loss, every stalled client closed, ...).
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Name.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// Numbers behind it.
    pub detail: String,
}

/// One second of the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Seconds since the start (end of the interval).
    pub t: f64,
    /// Phase label.
    pub phase: String,
    /// Operations in the interval, per second.
    pub ops_per_sec: f64,
    /// Connections open (subscribed minus closed).
    pub connections: u64,
    /// Latency percentiles of the interval (ms); absent when nothing was timed.
    pub p50_ms: Option<f64>,
    /// 99th percentile (ms).
    pub p99_ms: Option<f64>,
    /// 99.9th percentile (ms).
    pub p999_ms: Option<f64>,
    /// The slowest operation timed in the interval (ms).
    pub max_ms: Option<f64>,
    /// Server resident memory (bytes) when a pid was given.
    pub server_rss: Option<u64>,
    /// Buffer memory of every TCP socket on the host (bytes, `/proc/net/sockstat`): where
    /// data a client has not read yet waits once the server has handed it to the kernel.
    pub kernel_tcp: Option<u64>,
    /// Send-side kernel memory of the server's own sockets (bytes, `ss -tm`'s `wmem_queued`
    /// summed over the sockets on the server's ports), where the scenario tracks it.
    pub server_send_buffers: Option<u64>,
}

/// Everything a run reports.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// The command line.
    pub command: String,
    /// Unix time of the start.
    pub started_unix: u64,
    /// The machine.
    pub machine: Machine,
    /// What the throughput unit is ("deliveries", "handshakes", ...).
    pub ops_unit: String,
    /// Parameters, as given or defaulted.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Figures.
    pub metrics: Vec<Metric>,
    /// Latency summaries.
    pub latency: Vec<Percentiles>,
    /// Pass/fail properties.
    pub checks: Vec<Check>,
    /// Per-second timeline.
    pub timeline: Vec<Sample>,
    /// The first distinct error messages seen.
    pub errors: Vec<String>,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &str, ops_unit: &str) -> Self {
        Self {
            scenario: scenario.to_string(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            machine: machine(),
            ops_unit: ops_unit.to_string(),
            params: serde_json::Map::new(),
            metrics: Vec::new(),
            latency: Vec::new(),
            checks: Vec::new(),
            timeline: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Records a parameter.
    pub fn param(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        self.params.insert(name.to_string(), value.into());
    }

    /// Adds a figure.
    pub fn metric(&mut self, name: &str, value: f64, unit: &str) {
        self.metrics.push(Metric {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
        });
    }

    /// Adds a check.
    pub fn check(&mut self, name: &str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.to_string(),
            ok,
            detail: detail.into(),
        });
    }

    /// The value of a figure.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    /// The index in the timeline of the second whose slowest operation was the slowest of the
    /// run: where a stall shows.
    pub fn worst_second(&self) -> Option<usize> {
        self.timeline
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.max_ms.map(|m| (i, m)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n== {} == ({} CPUs, {})",
            self.scenario, self.machine.nproc, self.machine.cpu
        );
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "params: {}", params.join(" "));
        let width = self.metrics.iter().map(|m| m.name.len()).max().unwrap_or(0);
        for m in &self.metrics {
            let _ = writeln!(
                out,
                "  {:<width$}  {:>16}  {}",
                m.name,
                human(m.value),
                m.unit
            );
        }
        if !self.latency.is_empty() {
            let _ = writeln!(
                out,
                "  {:<32} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
            );
            for l in &self.latency {
                let _ = writeln!(
                    out,
                    "  {:<32} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                    l.what, l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
                );
            }
        }
        if let Some(w) = self.worst_second() {
            let _ = writeln!(
                out,
                "  worst second, with its neighbours (t: ops/s, p50 / p99 / p99.9 / max ms, server RSS, kernel TCP)"
            );
            let from = w.saturating_sub(1);
            let to = (w + 2).min(self.timeline.len());
            for (i, s) in self.timeline[from..to].iter().enumerate() {
                let mark = if from + i == w { '>' } else { ' ' };
                let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
                let mib = |v: Option<u64>| {
                    v.map_or("-".to_string(), |v| {
                        format!("{:.1} MiB", v as f64 / 1048576.0)
                    })
                };
                let _ = writeln!(
                    out,
                    "  {mark} {:>6.1} s {:<8} {:>12} {} / {} / {} / {}  {}  {}",
                    s.t,
                    s.phase,
                    human(s.ops_per_sec),
                    ms(s.p50_ms),
                    ms(s.p99_ms),
                    ms(s.p999_ms),
                    ms(s.max_ms),
                    mib(s.server_rss),
                    mib(s.kernel_tcp)
                );
            }
        }
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "  [{mark}] {}: {}", c.name, c.detail);
        }
        for e in &self.errors {
            let _ = writeln!(out, "  error: {e}");
        }
        out
    }

    /// Writes the JSON document.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text)
    }
}

/// A number with thousands separators, or three decimals below 1000.
pub fn human(v: f64) -> String {
    if v.abs() >= 1000.0 || v.fract() == 0.0 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 { format!("-{out}") } else { out }
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(human(1234567.0), "1,234,567");
        assert_eq!(human(0.5), "0.500");
        assert_eq!(human(12.0), "12");
        assert_eq!(human(-1000.0), "-1,000");
    }

    #[test]
    fn report_serialises_and_prints() {
        let mut r = Report::new("fanout", "deliveries");
        r.param("connections", 10);
        r.metric("deliveries_per_sec", 123456.0, "1/s");
        r.check("no_loss", true, "lost 0");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["metrics"][0]["name"], "deliveries_per_sec");
        assert!(r.table().contains("123,456"));
        assert!(r.passed());
        assert_eq!(r.get("deliveries_per_sec"), Some(123456.0));
    }

    #[test]
    fn the_worst_second_is_the_one_with_the_slowest_operation() {
        let mut r = Report::new("fanout", "deliveries");
        assert_eq!(r.worst_second(), None);
        for (t, max) in [(1.0, 3.0), (2.0, 250.0), (3.0, 4.0), (4.0, 2.0)] {
            r.timeline.push(Sample {
                t,
                phase: "run".into(),
                p99_ms: Some(max / 2.0),
                max_ms: Some(max),
                ..Sample::default()
            });
        }
        assert_eq!(r.worst_second(), Some(1));
        let table = r.table();
        let lines: Vec<&str> = table
            .lines()
            .skip_while(|l| !l.contains("worst second"))
            .skip(1)
            .collect();
        assert!(lines[0].contains("1.0 s"), "{table}");
        assert!(
            lines[1].starts_with("  >") && lines[1].contains("250.000"),
            "{table}"
        );
        assert!(lines[2].contains("3.0 s"), "{table}");
    }
}
