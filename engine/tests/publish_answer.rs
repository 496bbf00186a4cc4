//! A publish is answered before its fan-out, and the fan-out still keeps the order in which the
//! publishes were accepted and the bound on what a worker has left to write.
//!
//! The `fault-injection` build's `RINGCAST_FAULT_SLOW_FANOUT_MS` makes a worker wait that long
//! before it starts the fan-out of a publish its own API accepted, while its other tasks keep
//! running, as a worker behind a long fan-out would.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn a_publish_is_answered_before_its_fan_out_runs() {
    let server = Server::start(
        &["--workers", "1"],
        &[("RINGCAST_FAULT_SLOW_FANOUT_MS", "1500")],
    );
    let (mut ws, _) = server.client();
    ws.subscribe("news");
    let mut http = Http::connect(server.port);
    let resp = http.trigger(&["news"], "headline", "\"first\"", None);
    assert_eq!(resp.status, 200, "{}", resp.json());
    // The answer is in; the fan-out has not started, so the subscriber has nothing yet.
    ws.expect_silence(Duration::from_millis(500));
    let ev = ws.recv_event();
    assert_eq!(ev["event"], "headline", "{ev}");
    assert_eq!(ev["data"], "\"first\"", "{ev}");
}

#[test]
fn a_worker_behind_on_its_fan_out_refuses_the_next_publish_with_503() {
    // Longer than the 2 s a publish waits for a fan-out to catch up.
    let server = Server::start(
        &["--workers", "1"],
        &[("RINGCAST_FAULT_SLOW_FANOUT_MS", "3000")],
    );
    // 120 subscribers of a 9,000-byte event: one publish is more than a mebibyte still to write.
    let mut subs: Vec<Ws> = (0..120)
        .map(|_| {
            let (mut ws, _) = server.client();
            ws.subscribe("big");
            ws
        })
        .collect();
    let big = format!("\"{}\"", "x".repeat(9000));
    let mut http = Http::connect(server.port);
    let first = http.trigger(&["big"], "first", &big, None);
    assert_eq!(first.status, 200, "{}", first.json());
    let mut other = Http::connect(server.port);
    let refused = other.trigger(&["big"], "second", "\"small\"", None);
    assert_eq!(refused.status, 503, "{}", refused.json());
    let why = refused.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("behind on deliveries"), "{why}");
    for (i, ws) in subs.iter_mut().enumerate() {
        let ev = ws.recv_event();
        assert_eq!(ev["event"], "first", "subscriber {i}");
    }
    // Once the backlog is written, publishes are accepted again, and the refused one never
    // arrives: what follows the first event is the third, then the fourth.
    for name in ["third", "fourth"] {
        let again = other.trigger(&["big"], name, "\"small\"", None);
        assert_eq!(again.status, 200, "{}", again.json());
    }
    for (i, ws) in subs.iter_mut().enumerate() {
        for name in ["third", "fourth"] {
            let ev = ws.recv_event();
            assert_eq!(ev["event"], name, "subscriber {i}: {ev}");
        }
    }
    subs[0].expect_silence(Duration::from_millis(200));
}

#[test]
fn sequential_publishes_through_both_workers_arrive_in_the_order_they_were_accepted() {
    let server = Server::start(&["--workers", "2"], &[]);
    let mut subs: Vec<Ws> = (0..6)
        .map(|_| {
            let (mut ws, _) = server.client();
            ws.subscribe("ordered");
            ws
        })
        .collect();
    const N: usize = 60;
    for i in 0..N {
        // A new connection each time: the kernel spreads them over both workers' listeners.
        let mut http = Http::connect(server.port);
        let resp = http.trigger(&["ordered"], "n", &i.to_string(), None);
        assert_eq!(resp.status, 200, "{}", resp.json());
    }
    for (s, ws) in subs.iter_mut().enumerate() {
        for i in 0..N {
            let ev = ws.recv_event();
            assert_eq!(ev["data"], i.to_string(), "subscriber {s}: {ev}");
        }
        ws.expect_silence(Duration::from_millis(200));
    }
}
