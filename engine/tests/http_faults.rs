//! HTTP connections that end badly: a client that never reads its answer. It must end the way
//! the server's documentation says, against the real binary over real sockets.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

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
