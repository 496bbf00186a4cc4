//! Reload without restart: SIGHUP reads the config file again. Apps added, removed (4001),
//! disabled (4003) and changed (secret, origins, limits: `max_connections`,
//! `max_message_size`) take effect without touching the other apps' connections; an invalid
//! file is refused with one line and the running configuration stays.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn app(id: &str, extra: &str) -> String {
    format!("[[apps]]\nid = \"{id}\"\nkey = \"key-{id}\"\nsecret = \"secret-{id}\"\n{extra}\n")
}

/// A config file of its own for the test `name`, holding `text`.
fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ringcast-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ringcast.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// A server of two workers on `file` (and no app of the environment), logging at info, with
/// `env` on top.
fn start_on(file: &std::path::Path, env: &[(&str, &str)]) -> Server {
    let file_arg = file.to_string_lossy().to_string();
    let env = [&[("RINGCAST_LOG", "info")], env].concat();
    Server::start_full(
        &["--workers", "2", "--config", &file_arg],
        &env,
        false,
        true,
    )
}

fn connect(server: &Server, id: &str, origin: Option<&str>) -> (Ws, serde_json::Value) {
    let path = format!("/app/key-{id}?protocol=7&client=js&version=8.6.0");
    let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
    let (mut ws, status, head) = Ws::try_connect(server.port, &path, &headers);
    assert_eq!(status, 101, "{head}");
    let ev = ws.recv_event();
    (ws, ev)
}

fn subscribed(server: &Server, id: &str) -> Ws {
    let (mut ws, ev) = connect(server, id, None);
    assert_eq!(ev["event"], "pusher:connection_established", "{ev}");
    ws.subscribe("news");
    ws
}

fn trigger(server: &Server, id: &str, secret: &str) -> u16 {
    let path = format!("/apps/{id}/events");
    let body = r#"{"name":"ev","channel":"news","data":"{}"}"#;
    let query = signed_query(
        "POST",
        &path,
        &[],
        body,
        &format!("key-{id}"),
        secret,
        now(),
    );
    Http::connect(server.port)
        .request("POST", &format!("{path}?{query}"), body.as_bytes())
        .status
}

fn sighup(server: &Server) {
    // SAFETY: `kill` takes no pointers; the pid is our own child's.
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGHUP);
    }
}

/// Waits for a stderr line containing `what`.
fn logged(server: &Server, what: &str) -> String {
    let rx = server.stderr.as_ref().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line with {what:?}"));
        if line.contains(what) {
            return line;
        }
    }
}

#[test]
fn sighup_applies_app_changes_and_refuses_an_invalid_file() {
    let file = config_file(
        "reload",
        &[app("a", ""), app("b", ""), app("c", "")].concat(),
    );
    let write = |text: &str| std::fs::write(&file, text).unwrap();
    let server = start_on(&file, &[]);
    let mut a = subscribed(&server, "a");
    let mut b = subscribed(&server, "b");
    let mut c = subscribed(&server, "c");
    assert_eq!(trigger(&server, "a", "secret-a"), 200);
    assert_eq!(a.recv_event()["event"], "ev");

    // a: new secret and allowed origins; b: removed; c: disabled; d: new.
    write(
        &[
            app("a", "allowed_origins = [\"good.test\"]").replace("secret-a", "secret-a2"),
            app("c", "enabled = false"),
            app("d", ""),
        ]
        .concat(),
    );
    sighup(&server);
    let line = logged(&server, "configuration reloaded");
    assert!(
        line.contains("removed=\"b\"") || line.contains("removed=b"),
        "{line}"
    );
    let ev = b.recv_event();
    assert_eq!(ev["event"], "pusher:error", "{ev}");
    assert_eq!(b.recv_close(), Some(4001));
    assert_eq!(c.recv_event()["event"], "pusher:error");
    assert_eq!(c.recv_close(), Some(4003));

    // a's connection stayed, and hears publishes signed with the new secret only.
    assert_eq!(trigger(&server, "a", "secret-a"), 401);
    assert_eq!(trigger(&server, "a", "secret-a2"), 200);
    assert_eq!(a.recv_event()["event"], "ev");
    // New connections follow the new table.
    let (_, ev) = connect(&server, "a", Some("https://evil.test"));
    assert!(ev.to_string().contains("4009"), "{ev}");
    let (_, ev) = connect(&server, "a", Some("https://good.test"));
    assert_eq!(ev["event"], "pusher:connection_established", "{ev}");
    let (_, ev) = connect(&server, "b", None);
    assert!(ev.to_string().contains("4001"), "{ev}");
    let (_, ev) = connect(&server, "c", None);
    assert!(ev.to_string().contains("4003"), "{ev}");
    let mut d = subscribed(&server, "d");
    assert_eq!(trigger(&server, "d", "secret-d"), 200);
    assert_eq!(d.recv_event()["event"], "ev");
    assert_eq!(trigger(&server, "b", "secret-b"), 404);

    // An invalid file is refused with one line; everything keeps working as it was.
    write(&[app("a", "ping_interval = 0"), app("d", "")].concat());
    sighup(&server);
    let line = logged(&server, "reload refused");
    assert!(line.contains("ping_interval of app \"a\""), "{line}");
    write("this is = = not toml");
    sighup(&server);
    let line = logged(&server, "reload refused");
    assert!(line.contains("invalid config file"), "{line}");
    assert_eq!(trigger(&server, "d", "secret-d"), 200);
    assert_eq!(d.recv_event()["event"], "ev");
    assert_eq!(trigger(&server, "a", "secret-a2"), 200);
    assert_eq!(a.recv_event()["event"], "ev");
    let (_, ev) = connect(&server, "c", None);
    assert!(ev.to_string().contains("4003"), "c is still disabled: {ev}");

    // Enabled again, c accepts connections.
    write(
        &[
            app("a", "").replace("secret-a", "secret-a2"),
            app("c", ""),
            app("d", ""),
        ]
        .concat(),
    );
    sighup(&server);
    logged(&server, "configuration reloaded");
    subscribed(&server, "c");
    // d's connection lived through all of it.
    assert_eq!(trigger(&server, "d", "secret-d"), 200);
    assert_eq!(d.recv_event()["event"], "ev");
}

/// A `pusher:ping` whose text is `len` bytes long (padded in its data), answered with a pong.
fn ping_of(len: usize) -> String {
    let head = r#"{"event":"pusher:ping","data":{"pad":""#;
    let tail = r#""}}"#;
    format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
}

/// Sends a `len`-byte ping and says whether it was answered with a pong.
fn pong_for(ws: &mut Ws, len: usize) -> bool {
    ws.send_text(&ping_of(len));
    ws.recv_event()["event"] == "pusher:pong"
}

/// A connection of app `id` refused for its app's `max_connections`.
fn refused_over_quota(server: &Server, id: &str) {
    let (mut ws, ev) = connect(server, id, None);
    assert_eq!(ev["event"], "pusher:error", "{ev}");
    assert!(ev.to_string().contains("4004"), "{ev}");
    assert_eq!(ws.recv_close(), Some(4004));
}

#[test]
fn sighup_changes_an_app_limit_without_touching_the_other_apps_connections() {
    let file = config_file(
        "reload-limit",
        &[app("a", "max_connections = 1"), app("b", "")].concat(),
    );
    let write = |text: &str| std::fs::write(&file, text).unwrap();
    let server = start_on(&file, &[]);
    let mut a1 = subscribed(&server, "a");
    let mut b1 = subscribed(&server, "b");
    refused_over_quota(&server, "a");
    assert!(pong_for(&mut a1, 200), "200 bytes are within a's 10,000");

    // a: three connections, messages of at most 100 bytes; b unchanged.
    write(
        &[
            app("a", "max_connections = 3\nmax_message_size = 100"),
            app("b", ""),
        ]
        .concat(),
    );
    sighup(&server);
    let line = logged(&server, "configuration reloaded");
    assert!(line.contains("changed=\"a\""), "only a changed: {line}");
    // The new quota: two more connections of a, then 4004.
    let mut a2 = subscribed(&server, "a");
    let _a3 = subscribed(&server, "a");
    refused_over_quota(&server, "a");
    // A connection's largest message is fixed when it opens: a2 has the new 100 bytes, a1
    // keeps the 10,000 it opened with.
    a2.send_text(&ping_of(200));
    assert_eq!(a2.recv_close(), Some(1009));
    assert!(pong_for(&mut a1, 200), "a1 keeps the limit it opened with");
    assert!(pong_for(&mut a1, 100));
    // b's connection saw nothing of it, and b's limits are its own.
    assert_eq!(trigger(&server, "b", "secret-b"), 200);
    let ev = b1.recv_event();
    assert_eq!(
        (ev["event"].as_str(), ev["channel"].as_str()),
        (Some("ev"), Some("news")),
        "{ev}"
    );
    assert!(pong_for(&mut b1, 200));
    let (mut b2, ev) = connect(&server, "b", None);
    assert_eq!(ev["event"], "pusher:connection_established", "{ev}");
    assert!(pong_for(&mut b2, 5_000), "b's 10,000 bytes are untouched");

    // Lowered again to one: the open connections of a stay and still get what is published;
    // new ones are refused.
    write(&[app("a", "max_connections = 1"), app("b", "")].concat());
    sighup(&server);
    logged(&server, "configuration reloaded");
    refused_over_quota(&server, "a");
    assert_eq!(trigger(&server, "a", "secret-a"), 200);
    assert_eq!(a1.recv_event()["event"], "ev");
    assert_eq!(trigger(&server, "b", "secret-b"), 200);
    assert_eq!(b1.recv_event()["event"], "ev");
}

#[test]
fn sighup_in_a_cluster_gives_the_redis_link_the_new_apps() {
    let mut redis = support::redis_server::RedisServer::start();
    let rport = redis.port.to_string();
    let file = config_file("reload-cluster", &app("a", ""));
    let env = [
        ("REVERB_SCALING_ENABLED", "true"),
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", rport.as_str()),
    ];
    let one = start_on(&file, &env);
    let two = start_on(&file, &env);
    let mut a = subscribed(&two, "a");

    // b is added on both nodes; a stays as it was.
    std::fs::write(&file, [app("a", ""), app("b", "")].concat()).unwrap();
    for node in [&one, &two] {
        sighup(node);
        logged(node, "configuration reloaded");
    }
    // A subscription to b on one node and a publish to b on the other: both go through the
    // cluster link, which must know b.
    let mut b = subscribed(&two, "b");
    assert_eq!(trigger(&one, "b", "secret-b"), 200);
    let ev = b.recv_event();
    assert_eq!(ev["event"], "ev", "{ev}");
    assert_eq!(ev["channel"], "news");
    assert_eq!(trigger(&one, "a", "secret-a"), 200);
    assert_eq!(a.recv_event()["event"], "ev");
    // b's connection on node two is counted on node one, from node two's heartbeats.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let path = "/apps/b/connections";
        let query = signed_query("GET", path, &[], "", "key-b", "secret-b", now());
        let r = Http::connect(one.port).request("GET", &format!("{path}?{query}"), b"");
        assert_eq!(r.status, 200);
        if r.json()["connections"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node one never counted b's connection: {}",
            r.json()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both nodes still serve, and leave the cluster cleanly.
    drop(b);
    drop(a);
    for mut node in [one, two] {
        assert!(node.terminate().success());
    }
    let mut con = redis.connection().unwrap();
    let nodes: Vec<String> = ::redis::cmd("SMEMBERS")
        .arg("reverb:nodes")
        .query(&mut con)
        .unwrap();
    assert!(nodes.is_empty(), "{nodes:?}");
    redis.kill();
}
