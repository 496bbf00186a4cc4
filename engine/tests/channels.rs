//! Private, presence, cache and user channels, client events and the query API, over real
//! sockets with two workers.

mod support;

use std::time::Duration;

use ringcast_protocol::pusher::auth::{channel_auth, signin_auth};
use serde_json::{Value, json};
use support::*;

fn data_of(ev: &Value) -> Value {
    serde_json::from_str(ev["data"].as_str().unwrap()).unwrap()
}

fn subscribe_private(ws: &mut Ws, sid: &str, channel: &str) -> Value {
    let auth = channel_auth(APP_KEY, APP_SECRET, sid, channel, None);
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":auth}}));
    ws.recv_event()
}

fn join(ws: &mut Ws, sid: &str, channel: &str, user: &str) -> Value {
    let data = json!({"user_id": user, "user_info": {"name": format!("User {user}")}}).to_string();
    let auth = channel_auth(APP_KEY, APP_SECRET, sid, channel, Some(&data));
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":auth,"channel_data":data}}));
    let ev = ws.recv_event();
    assert_eq!(
        ev["event"], "pusher_internal:subscription_succeeded",
        "{ev}"
    );
    data_of(&ev)
}

#[test]
fn private_channels_need_a_valid_signature_for_this_socket() {
    let server = Server::start(&["--workers", "2"], &[]);
    let (mut a, sid_a) = server.client();
    let (_, sid_b) = server.client();
    // A signature made for another socket id is refused, and the connection stays usable.
    let forged = channel_auth(APP_KEY, APP_SECRET, &sid_b, "private-orders", None);
    a.send_json(
        json!({"event":"pusher:subscribe","data":{"channel":"private-orders","auth":forged}}),
    );
    let ev = a.recv_event();
    assert_eq!(ev["event"], "pusher:subscription_error");
    assert_eq!(ev["channel"], "private-orders");
    assert_eq!(data_of(&ev)["status"], 401);
    let ev = subscribe_private(&mut a, &sid_a, "private-orders");
    assert_eq!(ev["event"], "pusher_internal:subscription_succeeded");
    let ev = subscribe_private(&mut a, &sid_a, "private-encrypted-vault");
    assert_eq!(ev["event"], "pusher_internal:subscription_succeeded");
    let mut http = Http::connect(server.port);
    let sealed = r#"{"nonce":"bm9uY2U=","ciphertext":"Y2lwaGVy"}"#;
    http.trigger(&["private-encrypted-vault"], "secret", sealed, None);
    assert_eq!(
        a.recv_event()["data"].as_str().unwrap(),
        sealed,
        "ciphertext passes untouched"
    );
}

#[test]
fn presence_counts_users_not_sockets_across_workers() {
    let server = Server::start(&["--workers", "2"], &[]);
    let ch = "presence-room";
    let (mut a, sid_a) = server.client();
    let first = join(&mut a, &sid_a, ch, "1");
    assert_eq!(first["presence"]["count"], 1);
    assert_eq!(first["presence"]["ids"], json!(["1"]));
    let (mut b, sid_b) = server.client();
    let members = join(&mut b, &sid_b, ch, "2");
    assert_eq!(members["presence"]["count"], 2);
    assert_eq!(members["presence"]["hash"]["1"]["name"], "User 1");
    let ev = a.recv_event();
    assert_eq!(ev["event"], "pusher_internal:member_added");
    assert_eq!(data_of(&ev)["user_id"], "2");
    // Several more tabs of user 1, on whichever worker they land: no member events.
    let mut tabs: Vec<(Ws, String)> = (0..4).map(|_| server.client()).collect();
    for (ws, sid) in &mut tabs {
        let m = join(ws, sid, ch, "1");
        assert_eq!(m["presence"]["count"], 2);
    }
    a.expect_silence(Duration::from_millis(200));
    b.expect_silence(Duration::from_millis(200));
    // Tabs leave by unsubscribing and by dropping their TCP connections: still no events.
    let (mut t0, _) = tabs.remove(0);
    t0.send_json(json!({"event":"pusher:unsubscribe","data":{"channel":ch}}));
    drop(tabs);
    b.expect_silence(Duration::from_millis(300));
    // The last socket of user 1 goes: exactly one member_removed.
    drop(a);
    let ev = b.recv_event();
    assert_eq!(ev["event"], "pusher_internal:member_removed");
    assert_eq!(data_of(&ev)["user_id"], "1");
    b.expect_silence(Duration::from_millis(300));
    let mut http = Http::connect(server.port);
    let r = http.signed(
        "GET",
        &format!("/apps/{APP_ID}/channels/{ch}/users"),
        &[],
        "",
    );
    assert_eq!(r.json(), json!({"users":[{"id":"2"}]}));
    let r = http.signed(
        "GET",
        &format!("/apps/{APP_ID}/channels/{ch}"),
        &[("info", "user_count")],
        "",
    );
    assert_eq!(r.json(), json!({"occupied": true, "user_count": 1}));
}

#[test]
fn presence_channel_data_must_be_the_signed_string() {
    let server = Server::start(&["--workers", "1"], &[]);
    let (mut ws, sid) = server.client();
    let signed = json!({"user_id": "1"}).to_string();
    let auth = channel_auth(APP_KEY, APP_SECRET, &sid, "presence-x", Some(&signed));
    let changed = json!({"user_id": "2"}).to_string();
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":"presence-x","auth":auth,"channel_data":changed}}));
    let ev = ws.recv_event();
    assert_eq!(ev["event"], "pusher:subscription_error");
    assert_eq!(data_of(&ev)["status"], 401);
}

#[test]
fn client_events_reach_other_members_only() {
    let server = Server::start(&["--workers", "2"], &[]);
    let (mut a, sid_a) = server.client();
    let (mut b, sid_b) = server.client();
    let (mut outsider, _) = server.client();
    subscribe_private(&mut a, &sid_a, "private-chat");
    subscribe_private(&mut b, &sid_b, "private-chat");
    a.send_json(json!({"event":"client-typing","channel":"private-chat","data":{"who":"a"}}));
    let ev = b.recv_event();
    assert_eq!(ev["event"], "client-typing");
    assert_eq!(ev["data"], json!({"who":"a"}));
    a.expect_silence(Duration::from_millis(200));
    // Not subscribed: refused.
    outsider.send_json(json!({"event":"client-typing","channel":"private-chat","data":{}}));
    assert_eq!(outsider.recv_event()["event"], "pusher:error");
    // Public channels do not carry client events.
    a.subscribe("lobby");
    a.send_json(json!({"event":"client-x","channel":"lobby","data":{}}));
    assert_eq!(a.recv_event()["event"], "pusher:error");
    // Presence: the relayed event names the sender's user.
    join(&mut a, &sid_a, "presence-p", "7");
    join(&mut b, &sid_b, "presence-p", "8");
    assert_eq!(a.recv_event()["event"], "pusher_internal:member_added");
    a.send_json(json!({"event":"client-wave","channel":"presence-p","data":"hi"}));
    let ev = b.recv_event();
    assert_eq!(
        (ev["event"].as_str(), ev["user_id"].as_str()),
        (Some("client-wave"), Some("7"))
    );
    // More than ten a second: 4301.
    for _ in 0..12 {
        a.send_json(json!({"event":"client-spam","channel":"private-chat","data":{}}));
    }
    let mut codes = Vec::new();
    a.stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    // Until two quiet seconds: only text frames may come, and the connection stays open.
    while let Some(frame) = a.try_recv_timeout() {
        let Frame::Text(t) = frame else {
            panic!("expected text frames, got {frame:?}");
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["event"] == "pusher:error" {
            codes.push(data_of(&v)["code"].clone());
        }
    }
    assert!(codes.contains(&json!(4301)), "{codes:?}");
}

#[test]
fn cache_channels_replay_the_last_event() {
    let server = Server::start(&["--workers", "2"], &[]);
    let (mut a, _) = server.client();
    a.send_json(json!({"event":"pusher:subscribe","data":{"channel":"cache-prices"}}));
    assert_eq!(
        a.recv_event()["event"],
        "pusher_internal:subscription_succeeded"
    );
    let miss = a.recv_event();
    assert_eq!(
        (miss["event"].as_str(), miss["channel"].as_str()),
        (Some("pusher:cache_miss"), Some("cache-prices"))
    );
    let mut http = Http::connect(server.port);
    http.trigger(&["cache-prices"], "price", "41", None);
    http.trigger(&["cache-prices"], "price", "42", None);
    assert_eq!(a.recv_event()["data"], "41");
    assert_eq!(a.recv_event()["data"], "42");
    let (mut b, _) = server.client();
    b.send_json(json!({"event":"pusher:subscribe","data":{"channel":"cache-prices"}}));
    assert_eq!(
        b.recv_event()["event"],
        "pusher_internal:subscription_succeeded"
    );
    let ev = b.recv_event();
    assert_eq!(
        (ev["event"].as_str(), ev["data"].as_str()),
        (Some("price"), Some("42"))
    );
    let r = http.signed(
        "GET",
        &format!("/apps/{APP_ID}/channels/cache-prices"),
        &[("info", "cache")],
        "",
    );
    assert_eq!(r.json()["cache"]["data"], "42");
}

#[test]
fn signed_in_users_get_their_channel_and_can_be_terminated() {
    let server = Server::start(&["--workers", "2"], &[]);
    let (mut ws, sid) = server.client();
    let user_data = json!({"id":"42","user_info":{"name":"Ada"}}).to_string();
    let auth = signin_auth(APP_KEY, APP_SECRET, &sid, &user_data);
    ws.send_json(json!({"event":"pusher:signin","data":{"auth":auth,"user_data":user_data}}));
    let ev = ws.recv_event();
    assert_eq!(ev["event"], "pusher:signin_success");
    assert_eq!(data_of(&ev)["user_data"], user_data);
    ws.subscribe("#server-to-user-42");
    // Someone else may not listen to user 42.
    let (mut other, _) = server.client();
    other.send_json(json!({"event":"pusher:subscribe","data":{"channel":"#server-to-user-42"}}));
    assert_eq!(other.recv_event()["event"], "pusher:subscription_error");
    let mut http = Http::connect(server.port);
    http.trigger(&["#server-to-user-42"], "notice", "for you", None);
    assert_eq!(ws.recv_event()["data"], "for you");
    let r = http.signed(
        "POST",
        &format!("/apps/{APP_ID}/users/42/terminate_connections"),
        &[],
        "{}",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ws.recv_close(), Some(4009));
    other.send_json(json!({"event":"pusher:ping","data":{}}));
    assert_eq!(
        other.recv_event()["event"],
        "pusher:pong",
        "other connections stay"
    );
}

#[test]
fn watchlists_report_online_and_offline() {
    let server = Server::start(&["--workers", "2"], &[]);
    let signin = |ws: &mut Ws, sid: &str, data: Value| {
        let d = data.to_string();
        let auth = signin_auth(APP_KEY, APP_SECRET, sid, &d);
        ws.send_json(json!({"event":"pusher:signin","data":{"auth":auth,"user_data":d}}));
        assert_eq!(ws.recv_event()["event"], "pusher:signin_success");
    };
    let (mut watcher, sid) = server.client();
    signin(&mut watcher, &sid, json!({"id":"1","watchlist":["2","3"]}));
    let ev = watcher.recv_event();
    assert_eq!(ev["event"], "pusher_internal:watchlist_events");
    assert_eq!(
        data_of(&ev),
        json!({"events":[{"name":"offline","user_ids":["2","3"]}]})
    );
    let (mut two, sid2) = server.client();
    signin(&mut two, &sid2, json!({"id":"2"}));
    let ev = watcher.recv_event();
    assert_eq!(
        data_of(&ev),
        json!({"events":[{"name":"online","user_ids":["2"]}]})
    );
    drop(two);
    let ev = watcher.recv_event();
    assert_eq!(
        data_of(&ev),
        json!({"events":[{"name":"offline","user_ids":["2"]}]})
    );
}

#[test]
fn the_query_api_answers_for_the_whole_server() {
    let server = Server::start(&["--workers", "2"], &[]);
    let mut clients: Vec<(Ws, String)> = (0..6).map(|_| server.client()).collect();
    for (i, (ws, sid)) in clients.iter_mut().enumerate() {
        ws.subscribe("news");
        join(ws, sid, "presence-team", &(i % 3).to_string());
    }
    let mut http = Http::connect(server.port);
    let r = http.signed("GET", &format!("/apps/{APP_ID}/channels"), &[], "");
    assert_eq!(r.json(), json!({"channels":{"news":{},"presence-team":{}}}));
    let r = http.signed(
        "GET",
        &format!("/apps/{APP_ID}/channels"),
        &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        "",
    );
    assert_eq!(
        r.json(),
        json!({"channels":{"presence-team":{"user_count":3}}})
    );
    let r = http.signed(
        "GET",
        &format!("/apps/{APP_ID}/channels"),
        &[("info", "user_count")],
        "",
    );
    assert_eq!(r.status, 400, "user_count needs the presence- prefix");
    let r = http.signed(
        "GET",
        &format!("/apps/{APP_ID}/channels/news"),
        &[("info", "subscription_count")],
        "",
    );
    assert_eq!(r.json(), json!({"occupied":true,"subscription_count":6}));
    let r = http.signed("GET", &format!("/apps/{APP_ID}/channels/empty"), &[], "");
    assert_eq!(r.json(), json!({"occupied":false}));
    let r = http.signed(
        "GET",
        &format!("/apps/{APP_ID}/channels/news"),
        &[("info", "user_count")],
        "",
    );
    assert_eq!(r.status, 400, "user_count is for presence channels");
    let body = json!({"name":"e","channels":["news","presence-team"],"data":"x","info":"subscription_count,user_count"}).to_string();
    let r = http.signed("POST", &format!("/apps/{APP_ID}/events"), &[], &body);
    assert_eq!(
        r.json(),
        json!({"channels":{"news":{"subscription_count":6},"presence-team":{"user_count":3,"subscription_count":6}}})
    );
    let r = http.signed("GET", &format!("/apps/{APP_ID}/connections"), &[], "");
    assert_eq!(r.json(), json!({"connections":6}));
}

#[test]
fn apps_from_a_config_file_are_isolated_and_enforce_their_settings() {
    let dir = std::env::temp_dir().join(format!("ringcast-apps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("apps.toml");
    std::fs::write(
        &file,
        r#"
[[apps]]
id = "1001"
key = "test-key"
secret = "test-secret"

[[apps]]
id = "2002"
key = "other-key"
secret = "other-secret"

[[apps]]
id = "3003"
key = "off-key"
secret = "off-secret"
enabled = false

[[apps]]
id = "4004"
key = "small-key"
secret = "small-secret"
max_connections = 1
allowed_origins = ["allowed.test"]
"#,
    )
    .unwrap();
    let server = Server::start_with(
        &["--workers", "2", "--config", file.to_str().unwrap()],
        &[],
        false,
    );
    let (mut a, _) = server.client();
    a.subscribe("shared-name");
    let mut b = server.ws("/app/other-key?protocol=7");
    assert_eq!(b.recv_event()["event"], "pusher:connection_established");
    b.subscribe("shared-name");
    let mut http = Http::connect(server.port);
    http.trigger(&["shared-name"], "for-a", "1", None);
    assert_eq!(a.recv_event()["event"], "for-a");
    b.expect_silence(Duration::from_millis(300));
    // App 2002's credentials cannot publish as app 1001.
    let body = json!({"name":"x","channel":"shared-name","data":"1"}).to_string();
    let path = "/apps/1001/events";
    let q = signed_query("POST", path, &[], &body, "other-key", "other-secret", now());
    assert_eq!(
        http.request("POST", &format!("{path}?{q}"), body.as_bytes())
            .status,
        401
    );
    let expect_close = |path: &str, headers: &[(&str, &str)], code: u16| {
        let (mut ws, status, _) = Ws::try_connect(server.port, path, headers);
        assert_eq!(status, 101);
        assert_eq!(ws.recv_close(), Some(code), "{path}");
    };
    expect_close("/app/off-key?protocol=7", &[], 4003);
    expect_close(
        "/app/small-key?protocol=7",
        &[("Origin", "http://evil.test")],
        4009,
    );
    let mut first = server.ws("/app/small-key?protocol=7");
    assert_eq!(first.recv_event()["event"], "pusher:connection_established");
    expect_close(
        "/app/small-key?protocol=7",
        &[("Origin", "https://allowed.test")],
        4004,
    );
}
