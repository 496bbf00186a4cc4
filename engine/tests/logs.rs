//! Logs: `--debug` shows every message in and out with its connection and channel, with
//! signatures redacted; `RINGCAST_LOG_FORMAT=json` writes one JSON object per line.

mod support;

use std::time::{Duration, Instant};

use ringcast_protocol::pusher::auth::channel_auth;
use serde_json::{Value, json};
use support::*;

/// What a client and the API do in each test: a private subscription (with its signature),
/// a publish to it, a client ping, and a close. Returns the socket id and the signature.
fn traffic(server: &Server) -> (String, String) {
    let (mut ws, sid) = server.client();
    let auth = channel_auth(APP_KEY, APP_SECRET, &sid, "private-orders", None);
    ws.send_json(
        json!({"event":"pusher:subscribe","data":{"channel":"private-orders","auth":auth}}),
    );
    assert_eq!(
        ws.recv_event()["event"],
        "pusher_internal:subscription_succeeded"
    );
    let r = Http::connect(server.port).trigger(&["private-orders"], "shipped", "{\"id\":7}", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ws.recv_event()["event"], "shipped");
    ws.send_frame(true, 0x8, &1000u16.to_be_bytes());
    assert_eq!(ws.recv_close(), Some(1000));
    let signature = auth.split_once(':').unwrap().1.to_string();
    (sid, signature)
}

/// Stderr lines until one satisfies `done` (or 10 s pass), all of them.
fn lines_until(server: &Server, done: impl Fn(&str) -> bool) -> Vec<String> {
    let rx = server.stderr.as_ref().expect("stderr captured");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let stop = done(&line);
        lines.push(line);
        if stop {
            break;
        }
    }
    lines
}

#[test]
fn debug_logs_every_message_in_json_with_signatures_redacted() {
    let server = Server::start_capturing(
        &["--workers", "2", "--debug"],
        &[("RINGCAST_LOG_FORMAT", "json")],
    );
    let (sid, signature) = traffic(&server);
    let lines = lines_until(&server, |l| l.contains("\"closing\""));
    let events: Vec<Value> = lines
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object: {l}: {e}"))
        })
        .collect();
    for (line, v) in lines.iter().zip(&events) {
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        assert!(!line.contains(&signature), "a signature in the log: {line}");
        assert!(!line.contains(APP_SECRET), "the secret in the log: {line}");
    }
    let find = |direction: &str, event: &str| -> &Value {
        events
            .iter()
            .map(|v| &v["fields"])
            .find(|f| f["direction"] == direction && f["event"] == event)
            .unwrap_or_else(|| panic!("no {direction} {event} in {lines:#?}"))
    };
    let sub = find("in", "pusher:subscribe");
    assert_eq!(sub["conn"], sid.as_str());
    assert_eq!(sub["app"], APP_ID);
    assert_eq!(sub["channel"], "private-orders");
    let payload: Value = serde_json::from_str(sub["payload"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload["data"]["auth"],
        format!("{APP_KEY}:[redacted]"),
        "the key stays, the signature goes"
    );
    let ok = find("out", "pusher_internal:subscription_succeeded");
    assert_eq!(ok["conn"], sid.as_str());
    assert_eq!(ok["channel"], "private-orders");
    let published = find("out", "shipped");
    assert_eq!(published["conn"], sid.as_str());
    assert_eq!(published["channel"], "private-orders");
    assert!(
        published["payload"]
            .as_str()
            .unwrap()
            .contains("\\\"id\\\":7")
    );
    let api = events
        .iter()
        .map(|v| &v["fields"])
        .find(|f| f["direction"] == "api")
        .expect("the API request is logged");
    assert_eq!(api["path"], format!("/apps/{APP_ID}/events"));
    assert_eq!(api["status"], 200);
    let query = api["query"].as_str().unwrap();
    assert!(query.contains("auth_signature=[redacted]"), "{query}");
    let close = events
        .iter()
        .map(|v| &v["fields"])
        .find(|f| f["message"] == "closing")
        .unwrap();
    assert_eq!(close["code"], 1000);
    assert_eq!(close["conn"], sid.as_str());
    assert!(
        events
            .iter()
            .all(|v| v["target"] != "ringcast::messages" || v["level"] == "DEBUG"),
        "the message log is at debug level"
    );
}

#[test]
fn debug_text_logs_name_connection_and_channel_and_nothing_without_debug() {
    let server = Server::start_capturing(&["--workers", "1", "--debug"], &[]);
    let (sid, signature) = traffic(&server);
    let lines = lines_until(&server, |l| l.contains("closing"));
    assert!(
        lines
            .iter()
            .all(|l| !l.contains(&signature) && !l.contains(APP_SECRET))
    );
    let received = lines
        .iter()
        .find(|l| l.contains("received") && l.contains("pusher:subscribe"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(received.contains(&sid), "{received}");
    assert!(received.contains("private-orders"), "{received}");
    assert!(received.contains("[redacted]"), "{received}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" sent") && l.contains("shipped") && l.contains(&sid)),
        "{lines:#?}"
    );

    // The same traffic without --debug logs no message (the harness's filter is `warn`; even
    // `debug` shows none, since the message log is --debug's alone).
    let quiet = Server::start_capturing(&["--workers", "1"], &[("RINGCAST_LOG", "debug")]);
    traffic(&quiet);
    std::thread::sleep(Duration::from_millis(300));
    let rx = quiet.stderr.as_ref().unwrap();
    let logged: Vec<String> = rx.try_iter().collect();
    assert!(
        logged.iter().all(|l| !l.contains("ringcast::messages")),
        "{logged:#?}"
    );
}
