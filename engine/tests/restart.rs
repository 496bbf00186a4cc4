//! Restart without downtime: a steady connect loop, a subscriber population and a publisher
//! through two restarts (`SIGUSR2` to the process that was started, which hands over and then
//! supervises; then `ringcast restart`, which reaches the new process and through it the
//! supervisor). No connection is refused, every subscriber comes back (the test prints how
//! long each was away), and no publish the server accepted is lost by a subscriber that was
//! connected to the server that accepted it.
//!
//! The kernel moves connections waiting in the old process's accept queues to the new one's
//! only with `net.ipv4.tcp_migrate_req = 1` (what `tuning/apply.sh` sets); the test sets it
//! when it runs as root and the value is 0.

mod support;

use std::io::ErrorKind;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const SUBSCRIBERS: usize = 20;
const CHANNEL: &str = "ticks";
/// How long the subscribers have to come back after a hand-over, and the server to stop
/// after SIGTERM, before the test fails: far longer than either takes, so that only a
/// subscriber or a process that never makes it fails the test.
const LIVENESS: Duration = Duration::from_secs(30);

/// One subscriber's life: the sequence numbers it received, per connection.
#[derive(Default, Debug)]
struct Log {
    epochs: Vec<Vec<u64>>,
    /// Time from each 4200 close to the next subscription_succeeded.
    gaps: Vec<Duration>,
}

fn ensure_migrate_req() {
    let path = "/proc/sys/net/ipv4/tcp_migrate_req";
    let v = std::fs::read_to_string(path).unwrap_or_default();
    if v.trim() == "0" {
        std::fs::write(path, "1").unwrap_or_else(|e| {
            panic!("{path} is 0 and cannot be set ({e}): run tuning/apply.sh or the test as root")
        });
    }
}

/// Connects and subscribes, retrying a 4200 (a server that just stopped accepting).
fn subscribed(port: u16) -> Ws {
    loop {
        let mut ws = Ws::connect(
            port,
            &format!("/app/{APP_KEY}?protocol=7&client=js&version=8.6.0"),
        );
        let ev = ws.recv_event();
        if ev["event"] == "pusher:error" {
            assert_eq!(error_code(&ev), Some(4200), "{ev}");
            continue;
        }
        assert_eq!(ev["event"], "pusher:connection_established", "{ev}");
        ws.send_json(json!({"event":"pusher:subscribe","data":{"auth":"","channel":CHANNEL}}));
        let ev = ws.recv_event();
        assert_eq!(
            ev["event"], "pusher_internal:subscription_succeeded",
            "{ev}"
        );
        return ws;
    }
}

/// Each subscription (the first and every one after a 4200) adds one to `subscribed_count`.
fn subscriber(
    port: u16,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
    subscribed_count: Arc<AtomicU64>,
) {
    let mut ws = subscribed(port);
    log.lock().unwrap().epochs.push(Vec::new());
    subscribed_count.fetch_add(1, Ordering::SeqCst);
    ws.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while !stop.load(Ordering::SeqCst) {
        match ws.try_recv_timeout() {
            Some(Frame::Text(t)) => {
                let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
                if ev["event"] == "tick" {
                    let seq: u64 = ev["data"].as_str().unwrap().parse().unwrap();
                    log.lock().unwrap().epochs.last_mut().unwrap().push(seq);
                } else if ev["event"] == "pusher:error" {
                    assert_eq!(error_code(&ev), Some(4200), "{ev}");
                }
            }
            Some(Frame::Ping(p)) => ws.send_frame(true, 0xA, &p),
            Some(Frame::Close(code, _)) => {
                assert_eq!(code, Some(4200), "only a drain closes a subscriber");
                let closed = Instant::now();
                ws = subscribed(port);
                ws.stream
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let mut l = log.lock().unwrap();
                l.gaps.push(closed.elapsed());
                l.epochs.push(Vec::new());
                drop(l);
                subscribed_count.fetch_add(1, Ordering::SeqCst);
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => {}
        }
    }
}

/// Publishes 1, 2, 3, ... every 10 ms; a refused publish (503, or a connection that closed)
/// is retried with the same number on a new connection, as Laravel's queue does. Returns the
/// numbers that were accepted, in order.
fn publisher(port: u16, stop: Arc<AtomicBool>) -> Vec<u64> {
    let mut accepted = Vec::new();
    let mut seq = 1;
    let mut http = Http::connect(port);
    while !stop.load(Ordering::SeqCst) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            http.trigger(&[CHANNEL], "tick", &seq.to_string(), None)
        }));
        match result {
            Ok(r) if r.status == 200 => {
                accepted.push(seq);
                seq += 1;
                if r.head.to_ascii_lowercase().contains("connection: close") {
                    http = Http::connect(port);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(r) => {
                assert_eq!(r.status, 503, "{}", r.body);
                http = Http::connect(port);
            }
            Err(_) => http = Http::connect(port),
        }
    }
    accepted
}

/// The code of a `pusher:error` (its `data` is a JSON string).
fn error_code(ev: &serde_json::Value) -> Option<u64> {
    let data: serde_json::Value = serde_json::from_str(ev["data"].as_str()?).ok()?;
    data["code"].as_u64()
}

/// Opens connections one after another until stopped: each must connect (never refused or
/// reset) and be established, after at most a few 4200s. Returns (attempts, 4200s).
fn connect_loop(port: u16, stop: Arc<AtomicBool>) -> (u64, u64) {
    let (mut attempts, mut refused_4200) = (0, 0);
    while !stop.load(Ordering::SeqCst) {
        attempts += 1;
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| {
            assert_ne!(e.kind(), ErrorKind::ConnectionRefused, "connection refused");
            panic!("connect failed: {e}")
        });
        let mut ws = Ws::from_upgrade(stream, port, &format!("/app/{APP_KEY}?protocol=7"));
        let ev = ws.recv_event();
        if ev["event"] == "pusher:error" {
            assert_eq!(error_code(&ev), Some(4200), "{ev}");
            refused_4200 += 1;
            continue;
        }
        assert_eq!(ev["event"], "pusher:connection_established", "{ev}");
        // A steady loop, not a flood: about 400 connections a second.
        std::thread::sleep(Duration::from_micros(2500));
    }
    (attempts, refused_4200)
}

#[test]
fn two_restarts_refuse_no_connection_and_lose_no_accepted_publish() {
    ensure_migrate_req();
    let server = Server::start(&["--workers", "2"], &[("RINGCAST_SHUTDOWN_TIMEOUT", "5")]);
    let port = server.port;
    let stop = Arc::new(AtomicBool::new(false));
    let subscriptions = Arc::new(AtomicU64::new(0));
    let logs: Vec<Arc<Mutex<Log>>> = (0..SUBSCRIBERS).map(|_| Arc::default()).collect();
    let subs: Vec<_> = logs
        .iter()
        .map(|log| {
            let (stop, log, n) = (stop.clone(), log.clone(), subscriptions.clone());
            std::thread::spawn(move || subscriber(port, stop, log, n))
        })
        .collect();
    // Every subscriber has subscribed `times` times (once, then again after each hand-over):
    // waits for it, failing only when some never do within LIVENESS.
    let all_subscribed = |times: u64, what: &str| {
        let want = SUBSCRIBERS as u64 * times;
        let since = Instant::now();
        loop {
            let n = subscriptions.load(Ordering::SeqCst);
            if n >= want {
                return;
            }
            assert!(
                since.elapsed() < LIVENESS,
                "{} of {SUBSCRIBERS} subscribers not back {LIVENESS:?} after {what}",
                want - n
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    all_subscribed(1, "the start");
    let pub_stop = Arc::new(AtomicBool::new(false));
    let publishing = {
        let s = pub_stop.clone();
        std::thread::spawn(move || publisher(port, s))
    };
    let connecting = {
        let s = stop.clone();
        std::thread::spawn(move || connect_loop(port, s))
    };
    let handed_over = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match server.stdout.recv_timeout(left) {
                Ok(line) if line.starts_with("ringcast handed over to pid") => return,
                Ok(_) => {}
                Err(_) => panic!("no hand-over after {what}"),
            }
        }
    };
    std::thread::sleep(Duration::from_millis(1500));
    // 1: SIGUSR2 to the process that was started; it serves until the new one is ready.
    // SAFETY: `kill` takes no pointers; the pid is our own child's.
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGUSR2);
    }
    handed_over("SIGUSR2");
    all_subscribed(2, "the first hand-over");
    std::thread::sleep(Duration::from_millis(2000));
    // 2: `ringcast restart`, which finds the serving process by its port.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(["restart", "--port", &port.to_string(), "--timeout", "30"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ringcast restarted: pid"));
    handed_over("ringcast restart");
    all_subscribed(3, "the second hand-over");
    std::thread::sleep(Duration::from_millis(2000));
    pub_stop.store(true, Ordering::SeqCst);
    let accepted = publishing.join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (attempts, refused_4200) = connecting.join().unwrap();
    for s in subs {
        s.join().unwrap();
    }
    let logs: Vec<Log> = logs
        .into_iter()
        .map(|l| Arc::try_unwrap(l).unwrap().into_inner().unwrap())
        .collect();

    let mut gaps: Vec<Duration> = logs.iter().flat_map(|l| l.gaps.iter().copied()).collect();
    gaps.sort_unstable();
    eprintln!(
        "{attempts} connections ({refused_4200} told 4200), {} publishes accepted; \
         subscribers away from a 4200 to their next subscription_succeeded: median {:?}, longest {:?} ({} reconnects)",
        accepted.len(),
        gaps.get(gaps.len() / 2).copied().unwrap_or_default(),
        gaps.last().copied().unwrap_or_default(),
        gaps.len(),
    );
    assert!(attempts > 1000, "{attempts} connection attempts");
    assert!(
        refused_4200 <= 8,
        "{refused_4200} of {attempts} connections were told 4200 (at most one per accept in flight)"
    );
    assert!(
        accepted.len() > 200,
        "{} publishes accepted",
        accepted.len()
    );
    let last = *accepted.last().unwrap();
    assert_eq!(
        accepted,
        (1..=last).collect::<Vec<_>>(),
        "every number accepted once"
    );
    for (i, log) in logs.iter().enumerate() {
        assert_eq!(
            log.epochs.len(),
            3,
            "subscriber {i} reconnected twice: {log:?}"
        );
        let all: Vec<u64> = log.epochs.concat();
        assert!(
            all.windows(2).all(|w| w[0] < w[1]),
            "subscriber {i}: order or duplicates"
        );
        for (e, got) in log.epochs.iter().enumerate() {
            // While connected, nothing accepted is missing.
            if let (Some(lo), Some(hi)) = (got.first(), got.last()) {
                assert_eq!(
                    got,
                    &(*lo..=*hi).collect::<Vec<_>>(),
                    "subscriber {i} lost a publish while connected (epoch {e})"
                );
            }
        }
        assert_eq!(
            log.epochs[0].first(),
            Some(&1),
            "subscriber {i} got the first"
        );
        assert_eq!(
            log.epochs[2].last(),
            Some(&last),
            "subscriber {i} got the last"
        );
    }
    // What an old server accepted it delivered to all its subscribers before their 4200: the
    // last number of each old connection is the same for everyone.
    for e in 0..2 {
        let ends: Vec<Option<&u64>> = logs.iter().map(|l| l.epochs[e].last()).collect();
        assert!(
            ends.windows(2).all(|w| w[0] == w[1]),
            "epoch {e} ends: {ends:?}"
        );
    }
    // SIGTERM to the supervisor stops the process that serves, which drains, and then the
    // supervisor, with its status.
    let mut server = server;
    let started = Instant::now();
    // SAFETY: `kill` takes no pointers; the pid is our own child's.
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGTERM);
    }
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < LIVENESS,
            "the supervisor had not exited {LIVENESS:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!(
        "the supervisor and the process it supervised stopped {:?} after SIGTERM",
        started.elapsed()
    );
    assert!(status.success(), "{status:?}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens any more"
    );
}

#[test]
fn a_draining_server_answers_up_with_503_and_closes_kept_alive_connections() {
    let mut server = Server::start(&["--workers", "1"], &[("RINGCAST_SHUTDOWN_TIMEOUT", "5")]);
    let mut http = Http::connect(server.port);
    let r = http.request("GET", "/up", b"");
    assert_eq!(r.status, 200, "{}", r.body);
    // A client that never answers the close keeps the drain going for a few seconds.
    let (_silent, _) = server.client();
    // SAFETY: `kill` takes no pointers; the pid is our own child's.
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let r = loop {
        let r = http.request("GET", "/up", b"");
        if r.status != 200 {
            break r;
        }
        assert!(Instant::now() < deadline, "/up kept answering 200");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.head.to_ascii_lowercase().contains("connection: close"),
        "{}",
        r.head
    );
    assert!(server.terminate().success());
}
