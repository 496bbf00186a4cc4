//! HTTP connections that end badly: a request refused before its body was read, and a client
//! that never reads its answer. Both must end the way the server's documentation says, against
//! the real binary over real sockets.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// Writes `request` and reads the whole answer until the server closes; any error on the way
/// (a reset instead of the answer, a broken pipe while sending) is returned.
fn send_and_read_all(port: u16, request: &[&[u8]]) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    for part in request {
        s.write_all(part)?;
    }
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    Ok(answer)
}

/// A request refused at its head (413 for a body over `max_request_size`, 404 for a path that
/// is no endpoint) is answered before its body is read. The client is still sending the body,
/// and then reads: the server must take the rest of the body instead of closing on it, which
/// resets the connection and loses the answer (about one try in three before the fix).
#[test]
fn a_request_refused_before_its_body_still_gets_its_answer() {
    let server = Server::start(&[], &[]);
    let path = format!("/apps/{APP_ID}/events");
    let data = "x".repeat(2_000_000);
    let body = format!(r#"{{"name":"e","channel":"c","data":"{data}"}}"#);
    let query = signed_query("POST", &path, &[], &body, APP_KEY, APP_SECRET, now());
    let too_large = format!(
        "POST {path}?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let small_body = vec![b'y'; 200_000];
    let not_found = format!(
        "POST /not-an-endpoint HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        small_body.len()
    );
    let cases: [(&str, &[&[u8]], &str); 2] = [
        (
            "2 MB trigger",
            &[too_large.as_bytes(), body.as_bytes()],
            "HTTP/1.1 413 ",
        ),
        (
            "200 KB to no endpoint",
            &[not_found.as_bytes(), &small_body],
            "HTTP/1.1 404 ",
        ),
    ];
    let mut failures = Vec::new();
    for (name, request, status) in cases {
        for attempt in 0..30 {
            match send_and_read_all(server.port, request) {
                Ok(answer) if answer.starts_with(status.as_bytes()) => {}
                Ok(answer) => failures.push(format!(
                    "{name}, try {attempt}: {:?}",
                    String::from_utf8_lossy(&answer[..answer.len().min(60)])
                )),
                Err(e) => failures.push(format!("{name}, try {attempt}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 60 refused requests lost their answer:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let mut http = Http::connect(server.port);
    assert_eq!(http.trigger(&["c"], "e", "d", None).status, 200);
}

/// One connection subscribed to 1,000 channels of 154-character names, so that the channel list
/// is about 160 KB.
fn subscribe_many(server: &Server) -> (Ws, usize) {
    let (mut ws, _) = server.client();
    let n = 1000;
    for i in 0..n {
        let channel = format!("{i:04}{}", "x".repeat(150));
        ws.send_json(serde_json::json!({"event":"pusher:subscribe","data":{"channel":channel}}));
    }
    for _ in 0..n {
        let ev = ws.recv_event();
        assert_eq!(
            ev["event"], "pusher_internal:subscription_succeeded",
            "{ev}"
        );
    }
    (ws, n)
}

/// A client that asks for large answers and never reads them holds its connection only until
/// `write_timeout_ms` passes without the client taking anything: then the server resets it.
/// Before the fix the server waited for writability forever.
#[test]
fn a_client_that_never_reads_its_answer_is_reset_after_the_write_timeout() {
    let server = Server::start(&["--workers", "1"], &[("RINGCAST_WRITE_TIMEOUT_MS", "500")]);
    let (_subscriber, channels) = subscribe_many(&server);
    let path = format!("/apps/{APP_ID}/channels");
    // A client that reads gets the whole answer: the deadline is not one for the whole response.
    let mut http = Http::connect(server.port);
    let answer = http.signed("GET", &path, &[], "");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["channels"].as_object().unwrap().len(),
        channels
    );
    // 100 pipelined requests whose answers are far more than the socket buffers on both sides
    // hold (tcp_wmem's 4 MiB at most, and the initial receive window of a socket that is never
    // read).
    let requests = 100;
    let total = requests * answer.body.len();
    assert!(total > 12 << 20, "{total} bytes of answers");
    let mut pipelined = Vec::new();
    for _ in 0..requests {
        let query = signed_query("GET", &path, &[], "", APP_KEY, APP_SECRET, now());
        pipelined.extend_from_slice(
            format!("GET {path}?{query} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
    }
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(&pipelined).unwrap();
    let started = Instant::now();
    let limit = Duration::from_secs(15);
    let reset = loop {
        if let Some(e) = s.take_error().unwrap() {
            break e;
        }
        assert!(
            started.elapsed() < limit,
            "a client that read nothing for {limit:?} still holds its connection (write timeout 500 ms)"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(reset.kind(), io::ErrorKind::ConnectionReset, "{reset}");
    // What the client can still read is what the buffers held, not the answers it asked for.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
                break;
            }
        }
    }
    assert!(got < total, "read {got} of {total} bytes");
    // The server goes on serving.
    let mut http = Http::connect(server.port);
    assert_eq!(http.signed("GET", &path, &[], "").status, 200);
}
