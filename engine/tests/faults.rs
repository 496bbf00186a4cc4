//! Faults: clients that vanish or stop reading, shutdown in the middle of a fan-out, a worker
//! that dies.

mod support;

use std::collections::HashSet;
use std::io::{ErrorKind, Read};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use ringcast_protocol::pusher::auth::channel_auth;
use serde_json::json;
use support::*;

#[test]
fn a_vanished_client_is_cleaned_up_with_its_presence_membership() {
    let server = Server::start(
        &["--workers", "2"],
        &[
            ("REVERB_APP_PING_INTERVAL", "1"),
            ("REVERB_APP_PONG_TIMEOUT", "1"),
        ],
    );
    let join = |ws: &mut Ws, sid: &str, user: &str| {
        let data = json!({"user_id": user}).to_string();
        let auth = channel_auth(APP_KEY, APP_SECRET, sid, "presence-room", Some(&data));
        ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":"presence-room","auth":auth,"channel_data":data}}));
    };
    let (mut gone, sid) = server.client();
    join(&mut gone, &sid, "ghost");
    assert_eq!(
        gone.recv_event()["event"],
        "pusher_internal:subscription_succeeded"
    );
    let (mut alive, sid) = server.client();
    join(&mut alive, &sid, "alive");
    // `gone` now says nothing at all (its TCP connection stays open, as when a phone loses
    // its network); `alive` answers every ping.
    let started = Instant::now();
    loop {
        let ev = alive.recv_event();
        match ev["event"].as_str() {
            Some("pusher:ping") => alive.send_json(json!({"event":"pusher:pong","data":{}})),
            Some("pusher_internal:member_removed") => {
                let data: serde_json::Value =
                    serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
                assert_eq!(data["user_id"], "ghost");
                break;
            }
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never noticed the vanished client"
        );
    }
    assert_eq!(gone.recv_close(), Some(4201));
}

#[test]
fn sigterm_during_a_fan_out_loses_no_accepted_event() {
    let mut server = Server::start(&["--workers", "2"], &[("RINGCAST_SHUTDOWN_TIMEOUT", "10")]);
    let mut subs: Vec<Ws> = (0..6).map(|_| server.client().0).collect();
    for s in &mut subs {
        s.subscribe("stream");
    }
    let port = server.port;
    let publisher = std::thread::spawn(move || {
        let mut accepted = Vec::new();
        let mut http = Http::connect(port);
        for i in 0..100_000 {
            // Once shutting down, the server answers 503 or closes the API connection; a
            // timeout or any other failure is a fault.
            match http.try_trigger(&["stream"], "n", &i.to_string(), None) {
                Ok(r) if r.status == 200 => accepted.push(i),
                Ok(r) => {
                    assert_eq!(r.status, 503, "{}", r.body);
                    break;
                }
                Err(e) if closed_by_peer(&e) => break,
                Err(e) => panic!("after {} accepted events: {e}", accepted.len()),
            }
        }
        accepted
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = server.terminate();
    let accepted = publisher.join().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!accepted.is_empty());
    for s in &mut subs {
        let mut got = Vec::new();
        loop {
            match s.try_recv() {
                Some(Frame::Text(t)) => {
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                    got.push(v["data"].as_str().unwrap().parse::<usize>().unwrap());
                }
                Some(Frame::Close(code, _)) => {
                    assert_eq!(code, Some(4200));
                    break;
                }
                Some(_) => {}
                None => panic!("closed without 4200"),
            }
        }
        assert_eq!(
            got, accepted,
            "every accepted event, in order, before the close"
        );
        let unique: HashSet<_> = got.iter().collect();
        assert_eq!(unique.len(), got.len());
    }
}

#[test]
fn a_panicking_worker_takes_the_process_down() {
    let mut server = Server::start(
        &["--workers", "2"],
        &[("RINGCAST_FAULT_PANIC_AFTER_MS", "300")],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the process kept running with a dead worker"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // The panic hook aborts: killed by SIGABRT, not an exit with some failure code.
    assert_eq!(
        (status.code(), status.signal()),
        (None, Some(libc::SIGABRT)),
        "{status:?}"
    );
}

/// Whether an I/O error means the server closed the connection (end of stream, reset, or a
/// write into a closed socket).
fn closed_by_peer(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
    )
}

/// A server with a 64 KiB queue bound and its only subscriber of `flood`, after flooding the
/// channel with 8 KB events until the server gave up on that subscriber, which never read (it
/// leaves the channel the moment the server starts closing it with 4100). The server's send
/// buffers are 4 MiB, so that the kernel holds megabytes for the subscriber behind its close
/// frame, more than its own receive buffer takes.
fn abandoned_subscriber() -> (Server, Ws) {
    let server = Server::start(
        &["--workers", "1"],
        &[
            ("RINGCAST_MAX_OUTBOUND_BYTES", "65536"),
            ("RINGCAST_SEND_BUFFER_BYTES", "4194304"),
        ],
    );
    let (mut client, _) = server.client();
    client.subscribe("flood");
    let mut http = Http::connect(server.port);
    let payload = "z".repeat(8000);
    let path = format!("/apps/{APP_ID}/channels/flood");
    for _ in 0..400 {
        if http.signed("GET", &path, &[], "").json()["occupied"] == false {
            return (server, client);
        }
        for _ in 0..50 {
            assert_eq!(http.trigger(&["flood"], "e", &payload, None).status, 200);
        }
    }
    panic!("the server kept 160 MB of events for a client that does not read");
}

#[test]
fn a_consumer_that_never_reads_again_is_reset_after_the_close_grace() {
    let (_server, mut stuck) = abandoned_subscriber();
    // Its close frame waits behind megabytes the kernel holds for it. Once it has taken
    // nothing for the whole grace period (5 s, checked each second), the server resets the
    // connection instead of keeping that data for a clean close.
    std::thread::sleep(Duration::from_secs(8));
    let mut buf = vec![0u8; 1 << 16];
    let mut read = 0usize;
    let end = loop {
        match stuck.stream.read(&mut buf) {
            Ok(0) => break "end of stream",
            Ok(n) => read += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break "reset",
            Err(e) => panic!("after {read} bytes: {e}"),
        }
    };
    assert_eq!(end, "reset", "after {read} bytes");
}

#[test]
fn a_consumer_that_reads_slowly_gets_its_close_frame_however_long_it_takes() {
    let (_server, mut slow) = abandoned_subscriber();
    // It reads about 400 KB a second: taking what the kernel holds for it lasts longer than
    // one grace period, but it makes progress in each.
    let started = Instant::now();
    let mut read = 0usize;
    let close = 'reading: loop {
        std::thread::sleep(Duration::from_millis(150));
        let n = slow
            .read_some()
            .expect("the server reset a client that reads");
        assert!(
            n > 0,
            "end of stream after {read} bytes, without a close frame"
        );
        read += n;
        while let Some(frame) = slow.buffered() {
            match frame {
                Frame::Text(_) => {}
                Frame::Close(code, _) => break 'reading code,
                other => panic!("after {read} bytes: {other:?}"),
            }
        }
    };
    assert_eq!(close, Some(4100));
    assert_eq!(slow.buffered_len(), 0, "bytes after the close frame");
    assert!(
        started.elapsed() > Duration::from_secs(6),
        "{read} bytes took {:?}: not longer than a grace period, so this run did not test the extension",
        started.elapsed()
    );
}
