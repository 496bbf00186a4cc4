//! Prometheus scrapes for the tests: a GET on a metrics listener, and the text parsed by
//! PyPI's `prometheus_client` (the reference parser, through `engine/tests/prometheus/`), so
//! the exposition is checked by a parser that is not ours.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// One parsed sample.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
}

/// A scrape as the reference parser read it.
pub struct Scrape {
    /// Family name -> (type, samples).
    pub families: HashMap<String, (String, Vec<Sample>)>,
}

impl Scrape {
    /// The value of the sample `name` whose labels include `labels`; panics unless exactly one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .families
            .values()
            .flat_map(|(_, s)| s.iter())
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }

    /// The type the parser gave family `family`.
    pub fn kind(&self, family: &str) -> &str {
        &self
            .families
            .get(family)
            .unwrap_or_else(|| panic!("no {family}"))
            .0
    }

    /// The names of every sample.
    pub fn names(&self) -> std::collections::HashSet<&str> {
        self.families
            .values()
            .flat_map(|(_, samples)| samples.iter().map(|x| x.name.as_str()))
            .collect()
    }

    pub fn samples(&self, family: &str) -> &[Sample] {
        &self
            .families
            .get(family)
            .unwrap_or_else(|| panic!("no {family}"))
            .1
    }
}

/// GET `path` on the metrics listener: the status and the body.
pub fn get(port: u16, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (
        head[9..12].parse().unwrap(),
        head.to_string(),
        body.to_string(),
    )
}

/// Parses `text` with prometheus_client's `text_string_to_metric_families`.
pub fn parse(text: &str) -> Scrape {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/prometheus");
    let mut child = Command::new(format!("{dir}/python.sh"))
        .arg(format!("{dir}/parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run engine/tests/prometheus/python.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the reference parser refused the scrape:\n{text}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut families = HashMap::new();
    for f in v["families"].as_array().unwrap() {
        let samples = f["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Sample {
                name: s["name"].as_str().unwrap().to_string(),
                labels: s["labels"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect(),
                value: match &s["value"] {
                    Value::String(x) if x == "+Inf" => f64::INFINITY,
                    x => x.as_f64().unwrap(),
                },
            })
            .collect();
        families.insert(
            f["name"].as_str().unwrap().to_string(),
            (f["type"].as_str().unwrap().to_string(), samples),
        );
    }
    Scrape { families }
}

pub fn scrape(port: u16) -> Scrape {
    let (status, head, body) = get(port, "GET", "/metrics");
    assert_eq!(status, 200, "{head}{body}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse(&body)
}
