//! The Prometheus text exposition format, version 0.0.4: what a scrape is answered with.
//!
//! Each metric family is a `# HELP` line, a `# TYPE` line and its samples, one per line:
//! `name{label="value",...} number`. The format's rules that matter here: label values escape
//! `\`, `"` and line feeds; a family's samples follow its `TYPE` line without another family in
//! between; a histogram's buckets are cumulative, end with `le="+Inf"` and come with `_sum`
//! and `_count`.

use std::fmt::Write;

/// The `Content-Type` of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A scrape answer being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its help text and type. Its samples must follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            Value::Int(n) => {
                let _ = write!(self.out, "{n}");
            }
            Value::Float(f) => write_float(&mut self.out, f),
        }
        self.out.push('\n');
    }

    /// A histogram's samples: `buckets` are the upper bounds with the count of observations
    /// at most that bound and above the previous one (not cumulative), then the count above
    /// every bound; `sum` is in the bounds' unit.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (i, count) in counts.iter().enumerate() {
            cumulative += count;
            let mut le = String::new();
            match bounds.get(i) {
                Some(b) => write_float(&mut le, *b),
                None => le.push_str("+Inf"),
            }
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Int(n)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

/// A float as the format writes it: Rust's shortest round-trip form, `+Inf`/`-Inf`/`NaN`.
fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{f}");
    }
}

/// "label_value can be any sequence of UTF-8 characters, but the backslash (`\`), double-quote
/// (`"`), and line feed (`\n`) characters have to be escaped as `\\`, `\"`, and `\n`."
fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// "HELP lines may contain any sequence of UTF-8 characters (after the metric name), but the
/// backslash and the line feed characters have to be escaped as `\\` and `\n`."
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_escape_their_labels_and_histograms_are_cumulative() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "a \\ b\nc");
        e.sample("x_total", &[("app", "a\"b\\c\nd")], 3u64);
        e.family("d_seconds", Kind::Histogram, "h");
        e.histogram(
            "d_seconds",
            &[("route", "r")],
            &[0.5, 1.0],
            &[1, 2, 3],
            4.25,
        );
        let text = e.finish();
        let expected = "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\n\
            x_total{app=\"a\\\"b\\\\c\\nd\"} 3\n\
            # HELP d_seconds h\n# TYPE d_seconds histogram\n\
            d_seconds_bucket{route=\"r\",le=\"0.5\"} 1\n\
            d_seconds_bucket{route=\"r\",le=\"1\"} 3\n\
            d_seconds_bucket{route=\"r\",le=\"+Inf\"} 6\n\
            d_seconds_sum{route=\"r\"} 4.25\n\
            d_seconds_count{route=\"r\"} 6\n";
        assert_eq!(text, expected);
    }
}
