//! Prometheus metrics: a known load, then a scrape parsed by PyPI's `prometheus_client` (the
//! reference parser, through `engine/tests/prometheus/`), with every value checked against
//! what the test did.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringcast_protocol::pusher::auth::channel_auth;
use serde_json::{Value, json};
use support::*;

/// One parsed sample.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// A scrape as the reference parser read it.
struct Scrape {
    /// Family name -> (type, samples).
    families: HashMap<String, (String, Vec<Sample>)>,
}

impl Scrape {
    /// The value of the sample `name` whose labels include `labels`; panics unless exactly one.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
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
    fn kind(&self, family: &str) -> &str {
        &self
            .families
            .get(family)
            .unwrap_or_else(|| panic!("no {family}"))
            .0
    }

    fn samples(&self, family: &str) -> &[Sample] {
        &self
            .families
            .get(family)
            .unwrap_or_else(|| panic!("no {family}"))
            .1
    }
}

/// GET `path` on the metrics listener: the status and the body.
fn get(port: u16, method: &str, path: &str) -> (u16, String, String) {
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
fn parse(text: &str) -> Scrape {
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

fn scrape(port: u16) -> Scrape {
    let (status, head, body) = get(port, "GET", "/metrics");
    assert_eq!(status, 200, "{head}{body}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse(&body)
}

fn join_presence(ws: &mut Ws, sid: &str, user: &str) {
    let data = json!({"user_id": user}).to_string();
    let auth = channel_auth(APP_KEY, APP_SECRET, sid, "presence-room", Some(&data));
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":"presence-room","auth":auth,"channel_data":data}}));
    let ev = ws.recv_event();
    assert_eq!(
        ev["event"], "pusher_internal:subscription_succeeded",
        "{ev}"
    );
}

#[test]
fn a_scrape_counts_what_the_clients_and_the_api_did() {
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let server = Server::start(&["--workers", "2", "--metrics-addr", &maddr], &[]);
    let rss_kib = server.rss_kib();

    // Six connections: three on a public channel (one also on a cache channel), one on a
    // private channel, and presence members alice (twice) and bob.
    let mut clients: Vec<(Ws, String)> = (0..6).map(|_| server.client()).collect();
    for c in &mut clients[0..3] {
        c.0.subscribe("news");
    }
    {
        let (ws, _) = &mut clients[0];
        ws.send_json(
            json!({"event":"pusher:subscribe","data":{"auth":"","channel":"cache-prices"}}),
        );
        assert_eq!(
            ws.recv_event()["event"],
            "pusher_internal:subscription_succeeded"
        );
        assert_eq!(ws.recv_event()["event"], "pusher:cache_miss");
    }
    {
        let (ws, sid) = &mut clients[3];
        let auth = channel_auth(APP_KEY, APP_SECRET, sid, "private-orders", None);
        ws.send_json(
            json!({"event":"pusher:subscribe","data":{"channel":"private-orders","auth":auth}}),
        );
        assert_eq!(
            ws.recv_event()["event"],
            "pusher_internal:subscription_succeeded"
        );
    }
    let (ws, sid) = &mut clients[4];
    join_presence(ws, sid, "alice");
    let (ws, sid) = &mut clients[5];
    join_presence(ws, sid, "bob");
    // alice hears that bob joined: one delivery.
    assert_eq!(
        clients[4].0.recv_event()["event"],
        "pusher_internal:member_added"
    );
    let (ws, sid) = &mut clients[3];
    join_presence(ws, sid, "alice");
    // A client ping (answered with a pong).
    clients[1]
        .0
        .send_json(json!({"event":"pusher:ping","data":{}}));
    assert_eq!(clients[1].0.recv_event()["event"], "pusher:pong");

    // The API: five events on `news`, one on two channels, one refused signature, one query.
    let mut http = Http::connect(server.port);
    for i in 0..5 {
        let r = http.trigger(&["news"], "tick", &i.to_string(), None);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = http.trigger(&["news", "private-orders"], "both", "{}", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http.request("POST", &format!("/apps/{APP_ID}/events?auth_key={APP_KEY}&auth_timestamp=1&auth_version=1.0&auth_signature=00"), b"{}");
    assert_eq!(r.status, 401, "{}", r.body);
    let r = http.signed("GET", &format!("/apps/{APP_ID}/channels"), &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    for (i, c) in clients.iter_mut().enumerate() {
        let expected = match i {
            0..=2 => 6,
            3 => 1,
            _ => 0,
        };
        for _ in 0..expected {
            let ev = c.0.recv_event();
            assert!(ev["event"] == "tick" || ev["event"] == "both", "{ev}");
        }
    }

    // Refused upgrades: an unknown key, no protocol, and a request that is no upgrade.
    let mut unknown = server.ws("/app/nobody?protocol=7");
    assert_eq!(unknown.recv_event()["event"], "pusher:error");
    assert_eq!(unknown.recv_close(), Some(4001));
    let mut noproto = server.ws(&format!("/app/{APP_KEY}"));
    assert_eq!(noproto.recv_event()["event"], "pusher:error");
    assert_eq!(noproto.recv_close(), Some(4008));
    let r = Http::connect(server.port).request("GET", &format!("/app/{APP_KEY}?protocol=7"), b"");
    assert_eq!(r.status, 400, "{}", r.body);

    // Two closes: a client's 1000, and a message over the 10,000-byte limit (1009).
    let (mut leaving, _) = clients.remove(2);
    leaving.send_frame(true, 0x8, &1000u16.to_be_bytes());
    assert_eq!(leaving.recv_close(), Some(1000));
    let (mut big, _) = clients.remove(1);
    big.send_text(&"x".repeat(20_000));
    assert_eq!(big.recv_close(), Some(1009));
    drop((leaving, big));

    // The closed connections are removed once their sockets are done.
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = scrape(mport);
        if s.value("ringcast_connections", &[("app", APP_ID)]) == 4.0 {
            break s;
        }
        assert!(Instant::now() < deadline, "connections never dropped to 4");
        std::thread::sleep(Duration::from_millis(50));
    };
    let app = [("app", APP_ID)];
    let driver = match std::env::var("MONOIO_FORCE_LEGACY_DRIVER").as_deref() {
        Ok("1") | Ok("true") => "epoll",
        _ => "io_uring",
    };
    assert_eq!(s.value("ringcast_info", &[("driver", driver)]), 1.0);
    assert_eq!(s.value("ringcast_workers", &[]), 2.0);
    assert_eq!(s.kind("ringcast_connections"), "gauge");
    assert_eq!(s.value("ringcast_connections_opened_total", &app), 6.0);
    assert_eq!(s.kind("ringcast_connections_opened"), "counter");
    // news 3 + cache 1 + private 1 + presence 3, less the two `news` subscribers that left.
    assert_eq!(s.value("ringcast_subscriptions", &app), 6.0);
    let channels = |kind: &str, cache: &str| {
        s.value(
            "ringcast_channels",
            &[("app", APP_ID), ("kind", kind), ("cache", cache)],
        )
    };
    assert_eq!(channels("public", "false"), 1.0);
    assert_eq!(channels("public", "true"), 1.0);
    assert_eq!(channels("private", "false"), 1.0);
    assert_eq!(channels("presence", "false"), 1.0);
    assert_eq!(channels("private_encrypted", "false"), 0.0);
    assert_eq!(s.value("ringcast_presence_members", &app), 2.0);
    // Eight subscribes and a ping.
    assert_eq!(s.value("ringcast_ws_messages_received_total", &app), 9.0);
    // 5 x 3 + (3 + 1) publishes and bob's member_added to alice.
    assert_eq!(s.value("ringcast_deliveries_total", &app), 20.0);
    // The deliveries, eight subscription_succeeded, one cache_miss, one pong.
    assert_eq!(s.value("ringcast_ws_messages_sent_total", &app), 30.0);
    assert_eq!(s.value("ringcast_api_events_total", &app), 7.0);
    let closes = |code: &str| s.value("ringcast_closes_total", &[("app", APP_ID), ("code", code)]);
    assert_eq!(closes("1000"), 1.0);
    assert_eq!(closes("1009"), 1.0);
    assert_eq!(
        s.samples("ringcast_closes").len(),
        2,
        "no other close codes"
    );
    let failures =
        |reason: &str| s.value("ringcast_handshake_failures_total", &[("reason", reason)]);
    assert_eq!(failures("app_not_found"), 1.0);
    assert_eq!(failures("no_protocol"), 1.0);
    assert_eq!(failures("bad_request"), 1.0);
    assert_eq!(failures("over_quota"), 0.0);
    // Frames the sockets took: at least every message counted above, and the two close
    // frames; bytes at least two per frame (the smallest header).
    let frames = s.value("ringcast_ws_frames_written_total", &[]);
    assert!(frames >= 32.0, "{frames}");
    assert!(s.value("ringcast_ws_written_bytes_total", &[]) >= 2.0 * frames);
    assert!(s.value("ringcast_ws_write_calls_total", &[]) >= frames);
    let requests = |route: &str, status: &str| {
        s.value(
            "ringcast_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("events", "200"), 6.0);
    assert_eq!(requests("events", "401"), 1.0);
    assert_eq!(requests("channels", "200"), 1.0);
    let hist = "ringcast_http_request_duration_seconds";
    assert_eq!(s.kind(hist), "histogram");
    assert_eq!(
        s.value(&format!("{hist}_count"), &[("route", "events")]),
        7.0
    );
    assert_eq!(
        s.value(
            &format!("{hist}_bucket"),
            &[("route", "events"), ("le", "+Inf")]
        ),
        7.0
    );
    assert!(s.value(&format!("{hist}_sum"), &[("route", "events")]) > 0.0);
    for w in ["0", "1"] {
        assert_eq!(s.value("ringcast_mesh_queued_bytes", &[("worker", w)]), 0.0);
        assert_eq!(s.value("ringcast_outqueue_bytes", &[("worker", w)]), 0.0);
    }
    assert_eq!(
        s.value("ringcast_outqueue_limit_bytes", &[]),
        1_048_576.0,
        "the default max_outbound_bytes"
    );
    let rss = s.value("ringcast_resident_memory_bytes", &[]);
    assert!(
        rss >= rss_kib as f64 * 1024.0 / 2.0 && rss < 1e9,
        "{rss} against {rss_kib} KiB at start"
    );
    assert!(s.value("ringcast_max_fds", &[]) >= 1024.0);

    // Every series the Grafana dashboard in tuning/ reads is one a scrape has.
    let names: std::collections::HashSet<&str> = s
        .families
        .values()
        .flat_map(|(_, samples)| samples.iter().map(|x| x.name.as_str()))
        .collect();
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tuning/grafana/ringcast.json"
    ))
    .unwrap();
    let mut read = 0;
    for (at, _) in dashboard.match_indices("ringcast_") {
        let name: String = dashboard[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        read += 1;
        assert!(
            names.contains(name.as_str()),
            "the dashboard reads {name}, which no scrape has"
        );
    }
    assert!(read > 20, "the dashboard reads {read} series");

    // Only /metrics is served; HEAD has no body; other methods are refused.
    assert_eq!(get(mport, "GET", "/other").0, 404);
    let (status, head, body) = get(mport, "HEAD", "/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(body.is_empty());
    assert_eq!(get(mport, "POST", "/metrics").0, 405);
}

#[test]
fn metrics_are_off_by_default_and_never_on_the_public_port() {
    let server = Server::start(&["--workers", "1"], &[]);
    let r = Http::connect(server.port).request("GET", "/metrics", b"");
    assert_eq!(r.status, 404);
    let out = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(["start", "--host", "127.0.0.1", "--port", "9601"])
        .args(["--metrics-addr", "127.0.0.1:9601"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("metrics_addr"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(["start", "--host", "127.0.0.1", "--port", "0"])
        .current_dir(std::env::temp_dir())
        .env("RINGCAST_METRICS_ADDR", "localhost")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RINGCAST_METRICS_ADDR"), "{err}");
}
