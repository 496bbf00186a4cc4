//! The bad-input suite: one case per row of [`CASES`], each with the outcome a client or an
//! application sees (an HTTP status, a WebSocket close code, a `pusher:error` or
//! `pusher:subscription_error`), and after each case a check that a bystander connected to the
//! same server still receives a broadcast. At the end the server must still be running.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ringcast_protocol::pusher::auth::channel_auth;
use ringcast_protocol::pusher::error::PusherCode;
use serde_json::{Value, json};
use support::*;

/// What a case sends.
enum Input {
    /// Raw bytes on a fresh TCP connection.
    Raw(&'static [u8]),
    /// An upgrade request with these headers replaced (name, value; empty value removes it).
    Upgrade(&'static [(&'static str, &'static str)]),
    /// A request head that never finishes.
    Stall,
    /// Raw bytes after `connection_established` on an app connection.
    Frame(Vec<u8>),
    /// A JSON text message after `connection_established`.
    Text(String),
    /// A subscription whose auth or channel data is wrong; built per socket id.
    Subscribe(fn(&str) -> Value),
    /// An upgrade and a subscription sent in one packet, before `connection_established`.
    SubscribeFirst,
    /// An HTTP API request: method, path, query (built with the socket-free signer), body.
    Api(fn() -> (String, Vec<u8>)),
    /// Many client events at once.
    ClientEventFlood,
    /// More connections than the small app allows.
    ConnectionFlood,
    /// An upgrade to this path with these extra headers.
    Connect(&'static str, &'static [(&'static str, &'static str)]),
}

/// What must come back.
#[derive(Debug)]
enum Expect {
    Status(u16),
    Close(u16),
    /// The server closes the connection (with or without a response).
    Closed,
    PusherErrorCode(u16),
    SubscriptionError(u16),
    /// `connection_established` and then `subscription_succeeded`.
    EstablishedThenSubscribed,
    /// The upgrade succeeds, then a `pusher:error` and a close frame carry this code and its
    /// text, both exactly the protocol crate's.
    Refused(PusherCode),
}

struct Case {
    name: &'static str,
    input: Input,
    expect: Expect,
}

fn text_frame(payload: &[u8]) -> Vec<u8> {
    masked_frame(true, 1, payload)
}

fn api_request(
    method: &str,
    path: &str,
    body: &str,
    key: &str,
    secret: &str,
    ts: u64,
) -> (String, Vec<u8>) {
    let q = signed_query(method, path, &[], body, key, secret, ts);
    let head = format!(
        "{method} {path}?{q} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    (head, body.as_bytes().to_vec())
}

fn event_body() -> String {
    json!({"name":"e","channel":"c","data":"d"}).to_string()
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        Case { name: "malformed request line", input: Input::Raw(b"GARBAGE\r\n\r\n"), expect: Expect::Status(400) },
        Case { name: "oversized request head", input: Input::Raw(OVERSIZED_HEAD), expect: Expect::Status(431) },
        Case { name: "missing Sec-WebSocket-Key", input: Input::Upgrade(&[("Sec-WebSocket-Key", "")]), expect: Expect::Status(400) },
        Case { name: "Sec-WebSocket-Key not 16 bytes", input: Input::Upgrade(&[("Sec-WebSocket-Key", "c2hvcnQ=")]), expect: Expect::Status(400) },
        Case { name: "unsupported WebSocket version", input: Input::Upgrade(&[("Sec-WebSocket-Version", "8")]), expect: Expect::Status(426) },
        Case { name: "handshake that never finishes", input: Input::Stall, expect: Expect::Closed },
        Case { name: "unmasked client frame", input: Input::Frame(vec![0x81, 0x02, b'h', b'i']), expect: Expect::Close(1002) },
        Case { name: "reserved bit set", input: Input::Frame(with_first_byte(0xC1, b"{}")), expect: Expect::Close(1002) },
        Case { name: "reserved opcode", input: Input::Frame(with_first_byte(0x83, b"{}")), expect: Expect::Close(1002) },
        Case { name: "fragmented control frame", input: Input::Frame(masked_frame(false, 9, b"p")), expect: Expect::Close(1002) },
        Case { name: "control frame over 125 bytes", input: Input::Frame(masked_frame(true, 9, &[b'p'; 126])), expect: Expect::Close(1002) },
        Case { name: "frame over the message limit", input: Input::Frame(text_frame(&[b' '; 12_000])), expect: Expect::Close(1009) },
        Case { name: "fragments over the message limit", input: Input::Frame([masked_frame(false, 1, &[b' '; 6000]), masked_frame(true, 0, &[b' '; 6000])].concat()), expect: Expect::Close(1009) },
        Case { name: "invalid UTF-8 in text", input: Input::Frame(text_frame(&[0x7b, 0xff, 0xfe, 0x7d])), expect: Expect::Close(1007) },
        Case { name: "invalid close code", input: Input::Frame(masked_frame(true, 8, &999u16.to_be_bytes())), expect: Expect::Close(1002) },
        Case { name: "close payload of one byte", input: Input::Frame(masked_frame(true, 8, &[3])), expect: Expect::Close(1002) },
        Case { name: "binary frame", input: Input::Frame(masked_frame(true, 2, b"\x00\x01")), expect: Expect::Close(1003) },
        Case { name: "invalid JSON", input: Input::Text("{\"event\":".into()), expect: Expect::PusherErrorCode(4200) },
        Case { name: "JSON that is not an object", input: Input::Text("[1,2]".into()), expect: Expect::PusherErrorCode(4200) },
        Case { name: "unknown pusher event", input: Input::Text(json!({"event":"pusher:rocket","data":{}}).to_string()), expect: Expect::PusherErrorCode(4200) },
        Case { name: "invalid channel name", input: Input::Text(json!({"event":"pusher:subscribe","data":{"channel":"a b"}}).to_string()), expect: Expect::SubscriptionError(400) },
        Case { name: "over-long channel name", input: Input::Text(json!({"event":"pusher:subscribe","data":{"channel":"x".repeat(200)}}).to_string()), expect: Expect::SubscriptionError(400) },
        Case { name: "subscribe sent before connection_established", input: Input::SubscribeFirst, expect: Expect::EstablishedThenSubscribed },
        Case { name: "forged private signature", input: Input::Subscribe(|_| json!({"channel":"private-x","auth":format!("{APP_KEY}:{}", "0".repeat(64))})), expect: Expect::SubscriptionError(401) },
        Case { name: "private auth without the key prefix", input: Input::Subscribe(|_| json!({"channel":"private-x","auth":"nonsense"})), expect: Expect::SubscriptionError(401) },
        Case { name: "signature for another socket id", input: Input::Subscribe(|_| json!({"channel":"private-x","auth":channel_auth(APP_KEY, APP_SECRET, "1.1", "private-x", None)})), expect: Expect::SubscriptionError(401) },
        Case {
            name: "presence channel_data changed after signing",
            input: Input::Subscribe(|sid| {
                let signed = r#"{"user_id":"1"}"#;
                json!({"channel":"presence-x","auth":channel_auth(APP_KEY, APP_SECRET, sid, "presence-x", Some(signed)),"channel_data":r#"{"user_id":"2"}"#})
            }),
            expect: Expect::SubscriptionError(401),
        },
        Case { name: "presence without channel_data", input: Input::Subscribe(|sid| json!({"channel":"presence-x","auth":channel_auth(APP_KEY, APP_SECRET, sid, "presence-x", None)})), expect: Expect::SubscriptionError(401) },
        Case { name: "API: wrong signature", input: Input::Api(|| api_request("POST", events_path(), &event_body(), APP_KEY, "not-the-secret", now())), expect: Expect::Status(401) },
        Case { name: "API: expired timestamp", input: Input::Api(|| api_request("POST", events_path(), &event_body(), APP_KEY, APP_SECRET, now() - 601)), expect: Expect::Status(401) },
        Case { name: "API: future timestamp", input: Input::Api(|| api_request("POST", events_path(), &event_body(), APP_KEY, APP_SECRET, now() + 601)), expect: Expect::Status(401) },
        Case {
            name: "API: wrong body_md5",
            input: Input::Api(|| {
                let (head, _) = api_request("POST", events_path(), &event_body(), APP_KEY, APP_SECRET, now());
                let other = json!({"name":"e","channel":"c","data":"changed!"}).to_string();
                let head = head.replace(&format!("Content-Length: {}", event_body().len()), &format!("Content-Length: {}", other.len()));
                (head, other.into_bytes())
            }),
            expect: Expect::Status(401),
        },
        Case { name: "API: unknown app", input: Input::Api(|| api_request("POST", "/apps/4242/events", &event_body(), APP_KEY, APP_SECRET, now())), expect: Expect::Status(404) },
        Case { name: "API: body over the limit", input: Input::Api(|| api_request("POST", events_path(), &"x".repeat(300_000), APP_KEY, APP_SECRET, now())), expect: Expect::Status(413) },
        Case {
            name: "API: too many channels",
            input: Input::Api(|| {
                let channels: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
                let body = json!({"name":"e","channels":channels,"data":"d"}).to_string();
                api_request("POST", events_path(), &body, APP_KEY, APP_SECRET, now())
            }),
            expect: Expect::Status(400),
        },
        Case { name: "API: malformed JSON", input: Input::Api(|| api_request("POST", events_path(), "{\"name\":", APP_KEY, APP_SECRET, now())), expect: Expect::Status(400) },
        Case { name: "API: data that is not a string", input: Input::Api(|| api_request("POST", events_path(), r#"{"name":"e","channel":"c","data":{"a":1}}"#, APP_KEY, APP_SECRET, now())), expect: Expect::Status(400) },
        Case { name: "client event flood", input: Input::ClientEventFlood, expect: Expect::PusherErrorCode(4301) },
        Case { name: "connection flood beyond max_connections", input: Input::ConnectionFlood, expect: Expect::Close(4004) },
        Case { name: "unknown app key", input: Input::Connect("/app/no-such-key?protocol=7", &[]), expect: Expect::Refused(PusherCode::AppNotFound) },
        Case { name: "disabled app", input: Input::Connect("/app/off-key?protocol=7", &[]), expect: Expect::Refused(PusherCode::AppDisabled) },
        Case { name: "origin not allowed", input: Input::Connect("/app/origin-key?protocol=7", &[("Origin", "https://evil.test")]), expect: Expect::Refused(PusherCode::Unauthorized) },
        Case { name: "no protocol version", input: Input::Connect("/app/test-key", &[]), expect: Expect::Refused(PusherCode::NoProtocol) },
        Case { name: "unsupported protocol version", input: Input::Connect("/app/test-key?protocol=3", &[]), expect: Expect::Refused(PusherCode::UnsupportedProtocol) },
        Case { name: "protocol version not a number", input: Input::Connect("/app/test-key?protocol=seven", &[]), expect: Expect::Refused(PusherCode::InvalidVersion) },
        Case { name: "upgrade to no app path", input: Input::Connect("/nowhere", &[]), expect: Expect::Refused(PusherCode::PathNotFound) },
    ]
}

fn events_path() -> &'static str {
    "/apps/1001/events"
}

const OVERSIZED_HEAD: &[u8] = {
    const N: usize = 9000;
    const PREFIX: &[u8] = b"GET /up HTTP/1.1\r\nX-Big: ";
    const BYTES: [u8; N] = {
        let mut b = [b'a'; N];
        let mut i = 0;
        while i < PREFIX.len() {
            b[i] = PREFIX[i];
            i += 1;
        }
        b
    };
    &BYTES
};

fn with_first_byte(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = masked_frame(true, 1, payload);
    f[0] = first;
    f
}

fn upgrade_request(port: u16, replace: &[(&str, &str)]) -> Vec<u8> {
    let mut headers = vec![
        ("Host", format!("127.0.0.1:{port}")),
        ("Upgrade", "websocket".into()),
        ("Connection", "Upgrade".into()),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==".into()),
        ("Sec-WebSocket-Version", "13".into()),
    ];
    for (name, value) in replace {
        headers.retain(|(n, _)| n != name);
        if !value.is_empty() {
            headers.push((name, value.to_string()));
        }
    }
    let mut req = format!("GET /app/{APP_KEY}?protocol=7 HTTP/1.1\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

fn raw_status(port: u16, bytes: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut tmp).expect("a response");
        assert!(n > 0, "closed without a response");
        buf.extend_from_slice(&tmp[..n]);
    }
    String::from_utf8_lossy(&buf[9..12]).parse().unwrap()
}

fn run(server: &Server, case: &Case) {
    let port = server.port;
    match (&case.input, &case.expect) {
        (Input::Raw(bytes), Expect::Status(code)) => assert_eq!(raw_status(port, bytes), *code),
        (Input::Upgrade(replace), Expect::Status(code)) => {
            assert_eq!(raw_status(port, &upgrade_request(port, replace)), *code)
        }
        (Input::Api(build), Expect::Status(code)) => {
            let (head, body) = build();
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(&body);
            let mut http = Http::connect(port);
            let r = http.raw(&bytes);
            assert_eq!(r.status, *code, "{}", r.body);
            assert!(r.json()["error"].is_string(), "{}", r.body);
            assert!(
                !r.body.contains(APP_SECRET),
                "the secret never appears in an answer"
            );
        }
        (Input::Stall, Expect::Closed) => {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /app/test-key?protocol=7 HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut all = Vec::new();
            // The server closes it after the handshake timeout (a 408 may precede the close).
            s.read_to_end(&mut all)
                .expect("closed by the server, not timed out here");
        }
        (Input::Frame(bytes), Expect::Close(code)) => {
            let (mut ws, _) = server.client();
            ws.stream.write_all(bytes).unwrap();
            assert_eq!(ws.recv_close(), Some(*code));
        }
        (Input::Text(text), expect) => {
            let (mut ws, _) = server.client();
            ws.send_text(text);
            check_event(&mut ws, expect);
            ws.send_json(json!({"event":"pusher:ping","data":{}}));
            assert_eq!(
                ws.recv_event()["event"],
                "pusher:pong",
                "the connection stays open"
            );
        }
        (Input::Subscribe(build), expect) => {
            let (mut ws, sid) = server.client();
            ws.send_json(json!({"event":"pusher:subscribe","data":build(&sid)}));
            check_event(&mut ws, expect);
        }
        (Input::SubscribeFirst, Expect::EstablishedThenSubscribed) => {
            let mut bytes = upgrade_request(port, &[]);
            bytes.extend(text_frame(
                json!({"event":"pusher:subscribe","data":{"channel":"early"}})
                    .to_string()
                    .as_bytes(),
            ));
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(&bytes).unwrap();
            let mut ws = Ws::from_stream(s);
            assert_eq!(ws.recv_event()["event"], "pusher:connection_established");
            assert_eq!(
                ws.recv_event()["event"],
                "pusher_internal:subscription_succeeded"
            );
        }
        (Input::ClientEventFlood, expect) => {
            let (mut ws, sid) = server.client();
            let auth = channel_auth(APP_KEY, APP_SECRET, &sid, "private-flood", None);
            ws.send_json(
                json!({"event":"pusher:subscribe","data":{"channel":"private-flood","auth":auth}}),
            );
            assert_eq!(
                ws.recv_event()["event"],
                "pusher_internal:subscription_succeeded"
            );
            for _ in 0..30 {
                ws.send_json(json!({"event":"client-x","channel":"private-flood","data":{}}));
            }
            check_event(&mut ws, expect);
        }
        (Input::Connect(path, headers), Expect::Refused(code)) => {
            let (mut ws, status, _) = Ws::try_connect(port, path, headers);
            assert_eq!(status, 101, "refusals come after the upgrade, as Pusher's");
            let ev = ws.recv_event();
            assert_eq!(ev["event"], "pusher:error", "{ev}");
            let data: Value = serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
            assert_eq!(data["code"], code.code(), "{ev}");
            assert_eq!(data["message"], code.message(), "{ev}");
            match ws.recv() {
                Frame::Close(close, reason) => {
                    assert_eq!(close, Some(code.code()));
                    assert_eq!(reason, code.message());
                }
                other => panic!("expected the close frame, got {other:?}"),
            }
        }
        (Input::ConnectionFlood, Expect::Close(code)) => {
            let mut held = Vec::new();
            for _ in 0..2 {
                let mut ws = server.ws("/app/small-key?protocol=7");
                assert_eq!(ws.recv_event()["event"], "pusher:connection_established");
                held.push(ws);
            }
            let mut ws = server.ws("/app/small-key?protocol=7");
            assert_eq!(ws.recv_close(), Some(*code));
        }
        _ => panic!(
            "case {} pairs an input with an expectation the suite cannot check",
            case.name
        ),
    }
}

fn check_event(ws: &mut Ws, expect: &Expect) {
    let ev = ws.recv_event();
    let data: Value = ev["data"]
        .as_str()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null);
    match expect {
        Expect::PusherErrorCode(code) => {
            assert_eq!(ev["event"], "pusher:error", "{ev}");
            assert_eq!(data["code"], *code, "{ev}");
        }
        Expect::SubscriptionError(status) => {
            assert_eq!(ev["event"], "pusher:subscription_error", "{ev}");
            assert_eq!(data["status"], *status, "{ev}");
        }
        other => panic!("not an event expectation: {other:?}"),
    }
}

#[test]
fn bad_input_gets_a_clear_answer_and_touches_nobody_else() {
    let dir = std::env::temp_dir().join(format!("ringcast-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("apps.toml");
    std::fs::write(
        &file,
        "handshake_timeout_ms = 1000\n[[apps]]\nid = \"1001\"\nkey = \"test-key\"\nsecret = \"test-secret\"\n\n[[apps]]\nid = \"2002\"\nkey = \"small-key\"\nsecret = \"small-secret\"\nmax_connections = 2\n\n\
         [[apps]]\nid = \"3003\"\nkey = \"off-key\"\nsecret = \"off-secret\"\nenabled = false\n\n\
         [[apps]]\nid = \"4004\"\nkey = \"origin-key\"\nsecret = \"origin-secret\"\nallowed_origins = [\"allowed.test\"]\n",
    )
    .unwrap();
    let mut server = Server::start_with(
        &["--workers", "2", "--config", file.to_str().unwrap()],
        &[],
        false,
    );
    let (mut bystander, _) = server.client();
    bystander.subscribe("bystander");
    let mut http = Http::connect(server.port);
    let cases = cases();
    for (i, case) in cases.iter().enumerate() {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&server, case)));
        if let Err(e) = outcome {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "case {:?} (expected {:?}) failed: {msg}",
                case.name, case.expect
            );
        }
        let r = http.trigger(&["bystander"], "still-here", &i.to_string(), None);
        assert_eq!(r.status, 200, "after {:?}", case.name);
        let ev = bystander.recv_event();
        assert_eq!(
            ev["data"].as_str(),
            Some(i.to_string().as_str()),
            "after {:?}",
            case.name
        );
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
    let status = server.terminate();
    assert!(status.success());
    let mut log = String::new();
    for line in server.stdout.try_iter() {
        log.push_str(&line);
    }
    assert!(
        !log.contains(APP_SECRET),
        "the secret never appears in the output"
    );
}
