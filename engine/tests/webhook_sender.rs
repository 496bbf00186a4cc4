//! The webhook senders against a receiver written here on a loopback socket: every event is
//! delivered, given up or counted as overflowed, never lost without a count; retries reuse one
//! kept-alive connection and wait the backoff between attempts; the shutdown drains what is
//! queued, and counts what a receiver that never answers still holds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringcast::app::Apps;
use ringcast::config::AppConfig;
use ringcast::ids::AppIdx;
use ringcast::stats::{WebhookReport, webhook_report};
use ringcast::webhook::{Hook, WebhookConfig, Webhooks};
use ringcast_protocol::Limits;
use ringcast_protocol::pusher::auth::sign_hex;
use ringcast_protocol::pusher::channel::ChannelName;

/// How the receiver answers the n-th request (from 0).
type Answer = Box<dyn Fn(usize) -> Reply + Send + Sync>;

enum Reply {
    Status(u16),
    /// Never answer this request (the client times out).
    Hang,
}

/// What the receiver saw: each request's body, signature header and arrival, and the
/// connections they came on.
#[derive(Default)]
struct Seen {
    bodies: Vec<String>,
    signatures: Vec<String>,
    arrivals: Vec<Instant>,
    connections: usize,
}

/// A keep-alive HTTP/1.1 receiver on a free loopback port.
fn receiver(answer: Answer) -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let n = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    let s = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            s.lock().unwrap().connections += 1;
            let (s, n, answer) = (s.clone(), n.clone(), answer.clone());
            std::thread::spawn(move || serve(stream, &s, &n, &answer));
        }
    });
    (url, seen)
}

fn serve(stream: TcpStream, seen: &Mutex<Seen>, n: &AtomicUsize, answer: &Answer) {
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    loop {
        let mut len = 0;
        let mut signature = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if lower.starts_with("x-pusher-signature:") {
                signature = line["x-pusher-signature:".len()..].trim().to_string();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        {
            let mut s = seen.lock().unwrap();
            s.bodies.push(String::from_utf8(body).unwrap());
            s.signatures.push(signature);
            s.arrivals.push(Instant::now());
        }
        match answer(n.fetch_add(1, Ordering::SeqCst)) {
            Reply::Status(code) => {
                let head = format!("HTTP/1.1 {code} X\r\nContent-Length: 2\r\n\r\n{{}}");
                if w.write_all(head.as_bytes()).is_err() {
                    return;
                }
            }
            Reply::Hang => {
                std::thread::sleep(Duration::from_secs(5));
                return;
            }
        }
    }
}

fn hooks(url: &str, max_queue: usize, timeout_ms: u64) -> Arc<Webhooks> {
    let app = AppConfig {
        id: "1".into(),
        key: "k".into(),
        secret: "s3cret".into(),
        webhooks: vec![WebhookConfig {
            url: url.into(),
            event_types: vec!["channel_occupied".into()],
            max_queue,
            timeout_ms,
            ..WebhookConfig::default()
        }],
        ..AppConfig::default()
    };
    Webhooks::start(&Apps::new(&[app]))
        .unwrap()
        .expect("one webhook")
}

fn occupied(i: usize) -> Hook {
    let name = ChannelName::parse(&format!("c{i}"), &Limits::default()).unwrap();
    Hook::ChannelOccupied {
        channel: Arc::new(name),
    }
}

fn wait_for(what: &str, hooks: &Webhooks, pred: impl Fn(&WebhookReport) -> bool) -> WebhookReport {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = webhook_report(hooks);
        if pred(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn failures_are_retried_on_one_kept_alive_connection_and_signed_as_sent() {
    let (url, seen) = receiver(Box::new(|n| Reply::Status(if n < 2 { 503 } else { 200 })));
    let h = hooks(&url, 10, 1000);
    h.emit(AppIdx(0), occupied(1));
    h.emit(AppIdx(0), occupied(2));
    let r = wait_for("two deliveries", &h, |r| r.delivered == 2);
    assert_eq!((r.failures, r.requests, r.queued), (2, 2, 2), "{r:?}");
    let s = seen.lock().unwrap();
    assert_eq!(s.bodies.len(), 4);
    assert_eq!(s.bodies[0], s.bodies[2], "a retry sends the same bytes");
    assert!(s.bodies[0].contains(r#""channel":"c1""#));
    for (body, sig) in s.bodies.iter().zip(&s.signatures) {
        assert_eq!(*sig, sign_hex("s3cret", body));
    }
    assert_eq!(
        s.connections, 1,
        "keep-alive: every request on one connection"
    );
    // The first request's three attempts: 0.5 s, then 1 s between them.
    let gaps: Vec<Duration> = s.arrivals[..3].windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= Duration::from_millis(500) && gaps[1] >= Duration::from_millis(1000),
        "{gaps:?}"
    );
}

#[test]
fn a_full_queue_counts_what_it_refuses_and_shutdown_counts_what_is_left() {
    let (url, _seen) = receiver(Box::new(|_| Reply::Hang));
    let h = hooks(&url, 3, 200);
    for i in 0..20 {
        h.emit(AppIdx(0), occupied(i));
    }
    let r = webhook_report(&h);
    assert!(r.overflowed >= 16, "{r:?}");
    assert!(r.queue_depth <= 3, "{r:?}");
    wait_for("a timed-out attempt", &h, |r| r.failures >= 1);
    h.shutdown(Instant::now() + Duration::from_millis(500));
    let r = webhook_report(&h);
    assert_eq!(r.delivered, 0);
    assert_eq!(
        r.delivered + r.dropped + r.overflowed,
        20,
        "every event is delivered, given up or overflowed: {r:?}"
    );
}

#[test]
fn a_request_still_waiting_for_its_receiver_at_the_deadline_counts_as_dropped() {
    // The receiver never answers and the request's timeout (10 s) outlasts the shutdown's:
    // the shutdown leaves the sender behind and counts its events itself.
    let (url, seen) = receiver(Box::new(|_| Reply::Hang));
    let h = hooks(&url, 10, 10_000);
    for i in 0..5 {
        h.emit(AppIdx(0), occupied(i));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().bodies.is_empty() {
        assert!(Instant::now() < deadline, "the first request never came");
        std::thread::sleep(Duration::from_millis(10));
    }
    h.shutdown(Instant::now() + Duration::from_millis(300));
    let r = webhook_report(&h);
    assert_eq!(
        (r.delivered, r.dropped, r.overflowed),
        (0, 5, 0),
        "the request in flight and the four queued behind it: {r:?}"
    );
}

#[test]
fn shutdown_sends_what_is_queued_before_the_deadline() {
    let (url, seen) = receiver(Box::new(|_| {
        std::thread::sleep(Duration::from_millis(20));
        Reply::Status(200)
    }));
    let h = hooks(&url, 100, 1000);
    for i in 0..30 {
        h.emit(AppIdx(0), occupied(i));
    }
    h.shutdown(Instant::now() + Duration::from_secs(5));
    let r = webhook_report(&h);
    assert_eq!((r.delivered, r.dropped, r.queue_depth), (30, 0, 0), "{r:?}");
    let s = seen.lock().unwrap();
    let order: Vec<bool> = (0..30)
        .map(|i| s.bodies[i].contains(&format!(r#""channel":"c{i}""#)))
        .collect();
    assert!(order.iter().all(|x| *x), "in the order emitted");
}

#[test]
fn a_receiver_that_was_down_gets_the_backlog_in_order_once_it_is_back() {
    // A port with nothing listening: every attempt is refused until the receiver starts.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let h = hooks(&url, 1000, 1000);
    for i in 0..50 {
        h.emit(AppIdx(0), occupied(i));
    }
    wait_for("refused attempts", &h, |r| r.failures >= 3);
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    std::thread::spawn(move || {
        let n = AtomicUsize::new(0);
        let answer: Answer = Box::new(|_| Reply::Status(200));
        for stream in listener.incoming().flatten() {
            serve(stream, &s, &n, &answer);
        }
    });
    let r = wait_for("the backlog", &h, |r| r.delivered == 50);
    assert_eq!((r.dropped, r.overflowed, r.queue_depth), (0, 0, 0), "{r:?}");
    let s = seen.lock().unwrap();
    for (i, body) in s.bodies.iter().enumerate() {
        assert!(
            body.contains(&format!(r#""channel":"c{i}""#)),
            "{i}: {body}"
        );
    }
}
