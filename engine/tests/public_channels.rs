//! Public channels and the events API over real sockets.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[test]
fn connection_established_carries_a_socket_id_and_the_activity_timeout() {
    let server = Server::start(
        &["--workers", "1"],
        &[("REVERB_APP_ACTIVITY_TIMEOUT", "42")],
    );
    let mut ws = server.ws(&format!(
        "/app/{APP_KEY}?protocol=7&client=js&version=8.6.0"
    ));
    let ev = ws.recv_event();
    assert_eq!(ev["event"], "pusher:connection_established");
    let data: serde_json::Value = serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
    let sid = data["socket_id"].as_str().unwrap();
    let (a, b) = sid.split_once('.').unwrap();
    assert!(
        !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()),
        "{sid}"
    );
    assert!(
        !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()),
        "{sid}"
    );
    assert_eq!(data["activity_timeout"], 42);
    let (_, other) = server.client();
    assert_ne!(sid, other, "socket ids are unique");
}

#[test]
fn events_reach_subscribers_byte_exact_and_respect_socket_exclusion() {
    let server = Server::start(&["--workers", "2"], &[]);
    let (mut a, sid_a) = server.client();
    let (mut b, _) = server.client();
    a.subscribe("orders");
    b.subscribe("orders");
    a.subscribe("orders"); // idempotent
    let data = r#"{"id":1,"name":"caf\u00e9 \"quoted\" ☃ \\ </script>"}"#;
    let mut http = Http::connect(server.port);
    let r = http.trigger(&["orders"], "App\\Events\\OrderShipped", data, None);
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    for ws in [&mut a, &mut b] {
        let ev = ws.recv_event();
        assert_eq!(ev["event"], "App\\Events\\OrderShipped");
        assert_eq!(ev["channel"], "orders");
        assert_eq!(
            ev["data"].as_str().unwrap(),
            data,
            "data is delivered as the same string"
        );
    }
    // Laravel's toOthers(): the sender's socket id is excluded.
    let r = http.trigger(&["orders"], "ev2", "{}", Some(&sid_a));
    assert_eq!(r.status, 200);
    assert_eq!(b.recv_event()["event"], "ev2");
    a.expect_silence(Duration::from_millis(300));
    // Unsubscribed clients receive nothing more.
    a.send_json(json!({"event":"pusher:unsubscribe","data":{"channel":"orders"}}));
    std::thread::sleep(Duration::from_millis(100));
    http.trigger(&["orders"], "ev3", "{}", None);
    assert_eq!(b.recv_event()["event"], "ev3");
    a.expect_silence(Duration::from_millis(300));
}

#[test]
fn trigger_to_many_channels_and_batches() {
    let server = Server::start(&["--workers", "2"], &[]);
    let (mut a, _) = server.client();
    let (mut b, _) = server.client();
    a.subscribe("c1");
    b.subscribe("c2");
    let mut http = Http::connect(server.port);
    assert_eq!(
        http.trigger(&["c1", "c2", "c3"], "multi", "x", None).status,
        200
    );
    assert_eq!(a.recv_event()["channel"], "c1");
    assert_eq!(b.recv_event()["channel"], "c2");
    let body = json!({"batch":[
        {"name":"b1","channel":"c1","data":"1"},
        {"name":"b2","channel":"c2","data":"2"},
        {"name":"b3","channel":"c1","data":"3"}
    ]})
    .to_string();
    let r = http.signed("POST", &format!("/apps/{APP_ID}/batch_events"), &[], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = a.recv_event();
    assert_eq!(
        (ev["event"].as_str(), ev["data"].as_str()),
        (Some("b1"), Some("1"))
    );
    let ev = a.recv_event();
    assert_eq!(
        (ev["event"].as_str(), ev["data"].as_str()),
        (Some("b3"), Some("3"))
    );
    assert_eq!(b.recv_event()["event"], "b2");
}

#[test]
fn every_client_on_every_worker_gets_each_broadcast_once_in_order() {
    let server = Server::start(&["--workers", "2"], &[]);
    let mut clients: Vec<Ws> = (0..20).map(|_| server.client().0).collect();
    for c in &mut clients {
        c.subscribe("feed");
    }
    let mut http = Http::connect(server.port);
    for i in 0..50 {
        let r = http.trigger(&["feed"], "tick", &i.to_string(), None);
        assert_eq!(r.status, 200);
    }
    for c in &mut clients {
        for i in 0..50 {
            let ev = c.recv_event();
            assert_eq!(ev["data"].as_str().unwrap(), i.to_string());
        }
        c.expect_silence(Duration::from_millis(50));
    }
}

#[test]
fn pings_are_answered_and_bad_messages_get_an_error_without_a_disconnect() {
    let server = Server::start(&["--workers", "1"], &[]);
    let (mut ws, _) = server.client();
    ws.send_json(json!({"event":"pusher:ping","data":{}}));
    assert_eq!(ws.recv_event()["event"], "pusher:pong");
    ws.send_frame(true, 0x9, b"are you there");
    match ws.recv() {
        Frame::Pong(p) => assert_eq!(p, b"are you there"),
        other => panic!("expected pong, got {other:?}"),
    }
    ws.send_text("{not json");
    let ev = ws.recv_event();
    assert_eq!(ev["event"], "pusher:error");
    ws.send_json(json!({"event":"pusher:launch_rockets","data":{}}));
    assert_eq!(ws.recv_event()["event"], "pusher:error");
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":"bad channel!"}}));
    let ev = ws.recv_event();
    assert_eq!(ev["event"], "pusher:subscription_error");
    ws.subscribe("still-works");
}

#[test]
fn refused_connections_get_the_pusher_close_code() {
    let server = Server::start(&["--workers", "1"], &[]);
    for (path, code) in [
        ("/app/unknown-key?protocol=7", 4001),
        (&format!("/app/{APP_KEY}") as &str, 4008),
        (&format!("/app/{APP_KEY}?protocol=3"), 4007),
        ("/nowhere", 4005),
    ] {
        let mut ws = server.ws(path);
        let ev = ws.recv_event();
        assert_eq!(ev["event"], "pusher:error", "{path}");
        let data: serde_json::Value = serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["code"], code, "{path}");
        assert_eq!(ws.recv_close(), Some(code), "{path}");
    }
}

#[test]
fn oversized_messages_close_with_1009() {
    let server = Server::start(
        &["--workers", "1"],
        &[("REVERB_APP_MAX_MESSAGE_SIZE", "100")],
    );
    let (mut other, _) = server.client();
    other.subscribe("calm");
    let (mut ws, _) = server.client();
    ws.send_text(&format!(
        "{{\"event\":\"pusher:ping\",\"data\":\"{}\"}}",
        "x".repeat(200)
    ));
    assert_eq!(ws.recv_close(), Some(1009));
    let mut http = Http::connect(server.port);
    http.trigger(&["calm"], "still", "here", None);
    assert_eq!(other.recv_event()["event"], "still");
}

#[test]
fn silent_connections_are_pinged_then_closed_with_4201() {
    let server = Server::start(
        &["--workers", "1"],
        &[
            ("REVERB_APP_PING_INTERVAL", "1"),
            ("REVERB_APP_PONG_TIMEOUT", "1"),
        ],
    );
    let (mut silent, _) = server.client();
    let (mut alive, _) = server.client();
    let ev = silent.recv_event();
    assert_eq!(ev["event"], "pusher:ping");
    // The live client answers and stays; the silent one does not and is closed.
    let ev = alive.recv_event();
    assert_eq!(ev["event"], "pusher:ping");
    alive.send_json(json!({"event":"pusher:pong","data":{}}));
    assert_eq!(silent.recv_close(), Some(4201));
    alive.send_json(json!({"event":"pusher:ping","data":{}}));
    loop {
        let ev = alive.recv_event();
        if ev["event"] == "pusher:pong" {
            break;
        }
        alive.send_json(json!({"event":"pusher:pong","data":{}}));
    }
}

#[test]
fn health_and_http_api_errors_are_json() {
    let server = Server::start(&["--workers", "1"], &[]);
    let mut http = Http::connect(server.port);
    let r = http.request("GET", "/up", b"");
    assert_eq!((r.status, r.json()), (200, json!({"health":"OK"})));
    // Keep-alive: the same connection serves the next requests.
    let body = json!({"name":"e","channel":"c","data":"d"}).to_string();
    let path = format!("/apps/{APP_ID}/events");
    let q = signed_query("POST", &path, &[], &body, APP_KEY, "wrong-secret", now());
    let r = http.request("POST", &format!("{path}?{q}"), body.as_bytes());
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].is_string());
    assert!(!r.body.contains(APP_SECRET));
    let r = http.signed("POST", "/apps/999/events", &[], &body);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http.signed("POST", &path, &[], "{\"name\":");
    assert_eq!(r.status, 400, "{}", r.body);
    let big = json!({"name":"e","channel":"c","data":"x".repeat(20_000)}).to_string();
    let r = http.signed("POST", &path, &[], &big);
    assert_eq!(r.status, 413, "{}", r.body);
    let stale = signed_query("POST", &path, &[], &body, APP_KEY, APP_SECRET, now() - 3600);
    let r = http.request("POST", &format!("{path}?{stale}"), body.as_bytes());
    assert_eq!(r.status, 401);
    let r = http.signed("GET", &format!("/apps/{APP_ID}/connections"), &[], "");
    assert_eq!((r.status, r.json()), (200, json!({"connections": 0})));
}

#[test]
fn a_path_prefix_is_served_and_signed_without_it() {
    let server = Server::start(&["--workers", "1"], &[("REVERB_SERVER_PATH", "/ws")]);
    let mut ws = server.ws(&format!("/ws/app/{APP_KEY}?protocol=7"));
    assert_eq!(ws.recv_event()["event"], "pusher:connection_established");
    ws.subscribe("prefixed");
    let mut http = Http::connect(server.port);
    let body = json!({"name":"p","channel":"prefixed","data":"d"}).to_string();
    // The SDKs sign `/apps/...` and send it under the prefix.
    let q = signed_query(
        "POST",
        &format!("/apps/{APP_ID}/events"),
        &[],
        &body,
        APP_KEY,
        APP_SECRET,
        now(),
    );
    let r = http.request(
        "POST",
        &format!("/ws/apps/{APP_ID}/events?{q}"),
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ws.recv_event()["event"], "p");
    // A publisher that signs the path it requests, prefix included, is accepted too.
    let full = format!("/ws/apps/{APP_ID}/events");
    let q = signed_query("POST", &full, &[], &body, APP_KEY, APP_SECRET, now());
    let r = http.request("POST", &format!("{full}?{q}"), body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ws.recv_event()["event"], "p");
    // Anything else is not.
    let q = signed_query(
        "POST",
        "/elsewhere/apps/1001/events",
        &[],
        &body,
        APP_KEY,
        APP_SECRET,
        now(),
    );
    let r = http.request("POST", &format!("{full}?{q}"), body.as_bytes());
    assert_eq!(r.status, 401, "{}", r.body);
}

#[test]
fn a_slow_consumer_is_closed_with_4100_while_a_fast_one_gets_everything() {
    let server = Server::start(&["--workers", "1"], &[]);
    let (mut slow, _) = server.client();
    let (mut fast, _) = server.client();
    slow.subscribe("flood");
    fast.subscribe("flood");
    let payload = "y".repeat(8000);
    let fast_reader = std::thread::spawn(move || {
        for i in 0..1500 {
            let ev = fast.recv_event();
            assert_eq!(ev["event"], format!("e{i}"));
        }
    });
    // The slow client takes 4 KiB every 100 ms, far less than the flood, but enough that it is
    // never taken for a vanished peer (reset after 5 s without taking anything) however long
    // the flood lasts on a loaded machine.
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let slow_reader = {
        let flooding = flooding.clone();
        std::thread::spawn(move || {
            while flooding.load(std::sync::atomic::Ordering::SeqCst) {
                slow.read_at_most(4096).expect("slow read");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            slow
        })
    };
    let mut http = Http::connect(server.port);
    for i in 0..1500 {
        let r = http.trigger(&["flood"], &format!("e{i}"), &payload, None);
        assert_eq!(r.status, 200);
    }
    fast_reader.join().unwrap();
    flooding.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut slow = slow_reader.join().unwrap();
    // The slow client now reads the rest of what it was sent, then its close frame.
    assert_eq!(slow.recv_close(), Some(4100));
}

#[test]
fn sigterm_closes_clients_with_4200_and_exits() {
    let mut server = Server::start(&["--workers", "2"], &[]);
    let mut clients: Vec<Ws> = (0..4).map(|_| server.client().0).collect();
    let status = {
        let s = &mut server;
        s.terminate()
    };
    for c in &mut clients {
        assert_eq!(c.recv_close(), Some(4200));
    }
    assert!(status.success(), "{status:?}");
}

#[test]
fn handshake_errors_are_http_statuses() {
    let server = Server::start(&["--workers", "1"], &[]);
    let (_, status, head) = Ws::try_connect(
        server.port,
        &format!("/app/{APP_KEY}?protocol=7"),
        &[("Sec-WebSocket-Version", "8")],
    );
    // A second version header conflicts; servers answer 400 or 426 with the supported one.
    assert!(status == 426 || status == 400, "{head}");
    let mut http = Http::connect(server.port);
    let r = http.raw(
        format!("GET /app/{APP_KEY}?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 400, "missing key");
    let mut http = Http::connect(server.port);
    let r = http.raw(
        format!("GET /app/{APP_KEY}?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 426);
    assert!(r.head.contains("Sec-WebSocket-Version: 13"), "{}", r.head);
}
