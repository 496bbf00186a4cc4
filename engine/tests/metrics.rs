//! Prometheus metrics: a known load, then a scrape parsed by PyPI's `prometheus_client` (the
//! reference parser, through `engine/tests/prometheus/`), with every value checked against
//! what the test did.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ringcast_protocol::pusher::auth::channel_auth;
use serde_json::json;
use support::prometheus::{get, scrape};
use support::redis_server::RedisServer;
use support::*;

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
    let names = s.names();
    let mut read = 0;
    for name in grafana_series() {
        // The cluster's series are checked on a cluster node, the webhooks' on a server with
        // webhooks (below).
        if name.starts_with("ringcast_redis_")
            || name.starts_with("ringcast_cluster_")
            || name.starts_with("ringcast_webhook_")
        {
            continue;
        }
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
fn a_client_that_never_answers_a_ping_is_counted_as_closed_with_4201() {
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let server = Server::start(
        &["--workers", "2", "--metrics-addr", &maddr],
        &[
            ("REVERB_APP_PING_INTERVAL", "1"),
            ("REVERB_APP_PONG_TIMEOUT", "3"),
        ],
    );
    let (mut silent, _) = server.client();
    let (mut answering, _) = server.client();
    // One client answers every ping until the end of the test; the other never does.
    let stop = Arc::new(AtomicBool::new(false));
    let answerer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            answering
                .stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut pings = 0;
            while !stop.load(Ordering::SeqCst) {
                match answering.try_recv_timeout() {
                    Some(Frame::Text(t)) if t.contains("pusher:ping") => {
                        pings += 1;
                        answering.send_json(json!({"event":"pusher:pong","data":{}}));
                    }
                    Some(Frame::Ping(p)) => answering.send_frame(true, 0xA, &p),
                    Some(other) => panic!("the answering client got {other:?}"),
                    None => {}
                }
            }
            (answering, pings)
        })
    };
    assert_eq!(silent.recv_event()["event"], "pusher:ping");
    assert_eq!(silent.recv_close(), Some(4201));
    drop(silent);

    let app = [("app", APP_ID)];
    scrape_until(mport, "the silent connection removed", |s| {
        s.value("ringcast_connections", &app) == 1.0
    });
    let s = scrape(mport);
    assert_eq!(s.value("ringcast_connections_opened_total", &app), 2.0);
    assert_eq!(
        s.value(
            "ringcast_closes_total",
            &[("app", APP_ID), ("code", "4201")]
        ),
        1.0
    );
    assert_eq!(
        s.samples("ringcast_closes").len(),
        1,
        "no other close code: {:?}",
        s.samples("ringcast_closes")
    );
    // The answering client was pinged too, answered, and was never closed.
    stop.store(true, Ordering::SeqCst);
    let (_answering, pings) = answerer.join().unwrap();
    assert!(pings >= 1, "the answering client was pinged too");
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

#[test]
fn webhook_senders_show_their_queue_and_failures() {
    // A receiver that is not there: the one event is queued, fails, and waits to be retried.
    let dead = free_port();
    let url = format!("http://127.0.0.1:{dead}/hook");
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let server = Server::start(
        &["--workers", "2", "--metrics-addr", &maddr],
        &[
            ("RINGCAST_WEBHOOK_URL", &url),
            ("RINGCAST_WEBHOOK_EVENTS", "channel_occupied"),
        ],
    );
    let (mut ws, _) = server.client();
    ws.subscribe("news");
    let app = [("app", APP_ID)];
    scrape_until(mport, "a failed webhook attempt", |s| {
        s.value("ringcast_webhook_failures_total", &app) >= 1.0
    });
    let s = scrape(mport);
    assert_eq!(s.kind("ringcast_webhook_events_queued"), "counter");
    assert_eq!(s.kind("ringcast_webhook_queue_depth"), "gauge");
    assert_eq!(s.value("ringcast_webhook_events_queued_total", &app), 1.0);
    assert_eq!(
        s.value("ringcast_webhook_events_delivered_total", &app),
        0.0
    );
    assert_eq!(s.value("ringcast_webhook_requests_total", &app), 0.0);
    assert_eq!(s.value("ringcast_webhook_events_dropped_total", &app), 0.0);
    assert_eq!(
        s.value("ringcast_webhook_events_overflowed_total", &app),
        0.0
    );
    assert!(s.value("ringcast_webhook_queue_depth", &app) <= 1.0);
    // Every family has one sample, labelled with the app whose webhook it is.
    let families: Vec<&String> = s
        .families
        .keys()
        .filter(|n| n.starts_with("ringcast_webhook"))
        .collect();
    assert_eq!(families.len(), 7, "{families:?}");
    for name in families {
        let samples = s.samples(name);
        assert_eq!(samples.len(), 1, "{name}: {samples:?}");
        assert_eq!(
            samples[0].labels.get("app").map(String::as_str),
            Some(APP_ID),
            "{name}: {samples:?}"
        );
    }
    // Every webhook series the Grafana dashboard reads is one this scrape has.
    let names = s.names();
    let mut read = 0;
    for name in grafana_series() {
        if name.starts_with("ringcast_webhook_") {
            read += 1;
            assert!(names.contains(name.as_str()), "the dashboard reads {name}");
        }
    }
    assert!(read >= 3, "the dashboard reads {read} webhook series");
    // Without webhooks there are no webhook families.
    let plain_port = free_port();
    let plain_addr = format!("127.0.0.1:{plain_port}");
    let _plain = Server::start(&["--workers", "1", "--metrics-addr", &plain_addr], &[]);
    let names = scrape(plain_port)
        .names()
        .into_iter()
        .filter(|n| n.starts_with("ringcast_webhook"))
        .count();
    assert_eq!(names, 0);
}

/// The scrape of `port` once `done` holds for it, within 20 s.
fn scrape_until(port: u16, what: &str, done: impl Fn(&support::prometheus::Scrape) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(port);
        if done(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "no scrape showed {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_cluster_node_shows_its_redis_link() {
    let mut redis = RedisServer::start();
    let rport = redis.port.to_string();
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let server = Server::start(
        &["--workers", "2", "--metrics-addr", &maddr],
        &[
            ("REVERB_SCALING_ENABLED", "true"),
            ("REDIS_HOST", "127.0.0.1"),
            ("REDIS_PORT", &rport),
        ],
    );
    // A subscription is one script call through the link.
    let (mut ws, _) = server.client();
    ws.subscribe("news");

    let s = scrape(mport);
    for conn in ["commands", "inbox"] {
        assert_eq!(s.value("ringcast_redis_up", &[("connection", conn)]), 1.0);
        assert_eq!(
            s.value(
                "ringcast_redis_connections_lost_total",
                &[("connection", conn)]
            ),
            0.0
        );
    }
    let node = &s.samples("ringcast_cluster_node_info")[0].labels["node"];
    let mut con = redis.connection().unwrap();
    let nodes: Vec<String> = ::redis::cmd("SMEMBERS")
        .arg("reverb:nodes")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        nodes,
        std::slice::from_ref(node),
        "the node label is the id in Redis"
    );
    let rtt = s.value("ringcast_redis_heartbeat_round_trip_seconds", &[]);
    assert!(rtt > 0.0 && rtt < 1.0, "{rtt}");
    assert_eq!(s.kind("ringcast_redis_round_trip_seconds"), "histogram");
    let trips = s.value("ringcast_redis_round_trip_seconds_count", &[]);
    assert!(trips >= 2.0, "the first heartbeat and the join: {trips}");
    assert!(s.value("ringcast_redis_round_trip_seconds_sum", &[]) > 0.0);
    assert_eq!(
        s.value(
            "ringcast_redis_round_trip_seconds_bucket",
            &[("le", "+Inf")]
        ),
        trips
    );
    assert_eq!(s.value("ringcast_redis_calls_failed_total", &[]), 0.0);
    assert_eq!(
        s.value("ringcast_redis_queue_limit_bytes", &[]),
        67_108_864.0,
        "the default RINGCAST_CLUSTER_BUFFER_BYTES"
    );
    assert!(s.value("ringcast_redis_queued_bytes", &[]) >= 0.0);

    // Every Redis series the Grafana dashboard reads is one a cluster node's scrape has.
    let names = s.names();
    for name in grafana_series() {
        if name.starts_with("ringcast_redis_") || name.starts_with("ringcast_cluster_") {
            assert!(names.contains(name.as_str()), "the dashboard reads {name}");
        }
    }

    // Redis goes away: both connections show it, and a subscription that needs it waits.
    redis.kill();
    scrape_until(mport, "both Redis connections down", |s| {
        s.value("ringcast_redis_up", &[("connection", "commands")]) == 0.0
            && s.value("ringcast_redis_up", &[("connection", "inbox")]) == 0.0
    });
    ws.send_json(json!({"event":"pusher:subscribe","data":{"auth":"","channel":"later"}}));
    let s = scrape(mport);
    for conn in ["commands", "inbox"] {
        assert_eq!(
            s.value(
                "ringcast_redis_connections_lost_total",
                &[("connection", conn)]
            ),
            1.0,
            "{conn}: one loss, however often it is retried"
        );
    }
    assert_eq!(
        s.value("ringcast_redis_calls_failed_total", &[]),
        0.0,
        "what waits for Redis is held, not failed"
    );
    assert!(
        s.value("ringcast_redis_queued_bytes", &[]) > 0.0,
        "the join is held"
    );

    // It comes back on its port: so do both connections, and the join is answered.
    let _redis = RedisServer::start_on(redis.port);
    scrape_until(mport, "both Redis connections up again", |s| {
        s.value("ringcast_redis_up", &[("connection", "commands")]) == 1.0
            && s.value("ringcast_redis_up", &[("connection", "inbox")]) == 1.0
    });
    let ev = ws.recv_event();
    assert_eq!(
        ev["event"], "pusher_internal:subscription_succeeded",
        "{ev}"
    );
    assert_eq!(ev["channel"], "later");
}

/// The series the Grafana dashboard in tuning/ reads.
fn grafana_series() -> Vec<String> {
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tuning/grafana/ringcast.json"
    ))
    .unwrap();
    dashboard
        .match_indices("ringcast_")
        .map(|(at, _)| {
            dashboard[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect()
        })
        .collect()
}
