//! The dashboard over real sockets: off unless turned on, a page that carries no secret, and
//! the stats channel, which only a subscriber signed with the app's secret receives.

mod support;

use std::time::Duration;

use ringcast::dashboard::channel_name;
use ringcast_protocol::pusher::auth::channel_auth;
use serde_json::{Value, json};
use support::*;

fn get(server: &Server, path: &str) -> Response {
    Http::connect(server.port).request("GET", path, b"")
}

/// Subscribes `ws` to the app's stats channel with a signature made with `secret`.
fn watch(ws: &mut Ws, sid: &str, secret: &str) -> Value {
    let channel = channel_name(APP_SECRET);
    let auth = channel_auth(APP_KEY, secret, sid, &channel, None);
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":auth}}));
    ws.recv_event()
}

/// Reads stats documents until one satisfies `ok` (at most 15, one a second), and returns it.
fn stats_until(ws: &mut Ws, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..15 {
        let ev = ws.recv_event();
        if ev["event"] != "stats" {
            continue;
        }
        assert_eq!(ev["channel"], channel_name(APP_SECRET));
        last = serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
        if ok(&last) {
            return last;
        }
    }
    panic!("no stats document with {what}; the last was {last:#}");
}

fn channels(doc: &Value) -> Vec<(String, u64)> {
    doc["channels"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["subscriptions"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_dashboard_is_off_by_default() {
    let server = Server::start(&["--workers", "1"], &[]);
    for path in ["/dashboard", "/dashboard/", "/dashboard/dashboard.mjs"] {
        assert_eq!(get(&server, path).status, 404, "{path}");
    }
}

#[test]
fn the_page_and_its_assets_carry_no_secret_and_follow_the_prefix() {
    let server = Server::start(&["--workers", "1", "--dashboard", "--path", "ws"], &[]);
    let redirect = get(&server, "/ws/dashboard");
    assert_eq!(redirect.status, 308);
    assert!(
        redirect.head.contains("Location: dashboard/\r\n"),
        "{}",
        redirect.head
    );
    let page = get(&server, "/ws/dashboard/");
    assert_eq!(page.status, 200);
    assert!(
        page.head.contains("Content-Type: text/html"),
        "{}",
        page.head
    );
    assert!(
        page.head.contains("Content-Security-Policy:"),
        "{}",
        page.head
    );
    assert!(
        page.body
            .contains(r#"<script type="module" src="dashboard.mjs">"#)
    );
    for (name, _) in ringcast::dashboard::http::assets() {
        let r = get(&server, &format!("/ws/dashboard/{name}"));
        assert_eq!(r.status, 200, "{name}");
        assert!(!r.body.is_empty(), "{name}");
        for secret in [APP_SECRET, &channel_name(APP_SECRET)] {
            assert!(!r.body.contains(secret), "{name} carries {secret}");
        }
    }
    assert_eq!(
        get(&server, "/dashboard/").status,
        404,
        "only under the prefix"
    );
}

#[test]
fn a_signed_watcher_gets_the_apps_figures_once_a_second() {
    let server = Server::start(&["--workers", "2", "--dashboard"], &[]);
    let (mut a, _) = server.client();
    a.subscribe("news");
    let (mut b, sid_b) = server.client();
    b.subscribe("news");
    let member = json!({"user_id": "7", "user_info": {"name": "Seven"}}).to_string();
    let auth = channel_auth(APP_KEY, APP_SECRET, &sid_b, "presence-room", Some(&member));
    b.send_json(json!({"event":"pusher:subscribe","data":{"channel":"presence-room","auth":auth,"channel_data":member}}));
    assert_eq!(
        b.recv_event()["event"],
        "pusher_internal:subscription_succeeded"
    );
    let (mut watcher, sid) = server.client();
    let ok = watch(&mut watcher, &sid, APP_SECRET);
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );

    let doc = stats_until(&mut watcher, "three connections", |d| d["connections"] == 3);
    assert_eq!(doc["app"], APP_ID);
    assert_eq!(doc["watchers"], 1);
    assert_eq!(doc["subscriptions"], 3, "news twice, presence-room once");
    assert_eq!(
        channels(&doc),
        [("news".to_string(), 2), ("presence-room".to_string(), 1)]
    );
    assert_eq!(
        doc["presence"][0],
        json!({"channel": "presence-room", "users": 1, "members": [{"id": "7", "connections": 1}]})
    );
    let node = &doc["nodes"][0];
    assert_eq!(node["this"], true);
    assert_eq!(node["connections"], 3);
    assert_eq!(node["workers"].as_array().unwrap().len(), 2);
    let per_worker: u64 = node["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["connections"].as_u64().unwrap())
        .sum();
    assert_eq!(per_worker, 3);

    // A broadcast counts once as an API event and once per subscriber delivered to.
    let before = doc["counters"].clone();
    let r = Http::connect(server.port).trigger(&["news"], "update", "{}", None);
    assert_eq!(r.status, 200, "{}", r.body);
    a.recv_event();
    b.recv_event();
    let doc = stats_until(&mut watcher, "the broadcast counted", |d| {
        d["counters"]["api_events"] == before["api_events"].as_u64().unwrap() + 1
    });
    let delivered =
        doc["counters"]["deliveries"].as_u64().unwrap() - before["deliveries"].as_u64().unwrap();
    assert_eq!(delivered, 2);

    // A close is counted by its code; a socket that vanishes counts as 1006.
    a.send_frame(true, 8, &1000u16.to_be_bytes());
    assert_eq!(a.recv_close(), Some(1000));
    drop(b);
    let doc = stats_until(&mut watcher, "two closes", |d| d["connections"] == 1);
    assert_eq!(
        doc["closes"],
        json!([
            {"code": 1000, "count": 1, "reason": "Normal closure"},
            {"code": 1006, "count": 1, "reason": "Closed without a close frame"},
        ])
    );
    let recent: Vec<u64> = doc["recent_closes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_u64().unwrap())
        .collect();
    assert_eq!(recent.len(), 2);
    assert!(
        recent.contains(&1000) && recent.contains(&1006),
        "{recent:?}"
    );
    assert!(channels(&doc).is_empty(), "{doc:#}");
    assert_eq!(doc["presence"], json!([]));
}

#[test]
fn a_watcher_signed_with_another_secret_is_refused_and_gets_nothing() {
    let server = Server::start(&["--workers", "2", "--dashboard"], &[]);
    let (mut ws, sid) = server.client();
    let refused = watch(&mut ws, &sid, "not-the-secret");
    assert_eq!(refused["event"], "pusher:subscription_error", "{refused}");
    ws.expect_silence(Duration::from_millis(2500));
}

#[test]
fn the_page_may_connect_back_when_allowed_origins_lists_only_the_app() {
    let dir = std::env::temp_dir().join(format!("ringcast-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ringcast.toml");
    std::fs::write(
        &file,
        format!(
            "[[apps]]\nid = \"{APP_ID}\"\nkey = \"{APP_KEY}\"\nsecret = \"{APP_SECRET}\"\nallowed_origins = [\"laravel.test\"]\n"
        ),
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let path = format!("/app/{APP_KEY}?protocol=7");
    let upgrade = |server: &Server, origin: &str| {
        let (mut ws, status, _) = Ws::try_connect(server.port, &path, &[("Origin", origin)]);
        assert_eq!(status, 101);
        ws.recv_event()["event"].as_str().unwrap().to_string()
    };
    let on = Server::start_with(
        &["--workers", "1", "--dashboard", "--config", config],
        &[],
        false,
    );
    let own = format!("http://127.0.0.1:{}", on.port);
    assert_eq!(upgrade(&on, &own), "pusher:connection_established");
    assert_eq!(
        upgrade(&on, "http://laravel.test"),
        "pusher:connection_established"
    );
    assert_eq!(upgrade(&on, "http://evil.test"), "pusher:error");
    let off = Server::start_with(&["--workers", "1", "--config", config], &[], false);
    let own = format!("http://127.0.0.1:{}", off.port);
    assert_eq!(
        upgrade(&off, &own),
        "pusher:error",
        "only for the dashboard"
    );
}
