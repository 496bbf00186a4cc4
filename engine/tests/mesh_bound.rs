//! The worker mesh is bounded: a publisher faster than a worker can deliver is told so with 503
//! (which Laravel's queue retries) instead of growing the server's memory, and every publish
//! that was accepted is still delivered, once and in order.
//!
//! The last worker is made to stop serving for a few seconds (the `fault-injection` build's
//! `RINGCAST_FAULT_STALL_*`), as a worker busy with a huge fan-out or starved of CPU would.
//! Publishers keep posting through the other worker meanwhile.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::*;

const STALL_AT_MS: u64 = 1500;
const STALL_MS: u64 = 3000;
const PUBLISHERS: usize = 16;

#[test]
fn a_publisher_faster_than_a_worker_gets_503_and_nothing_accepted_is_lost() {
    let started = Instant::now();
    let server = Server::start(
        &["--workers", "2"],
        &[
            // Room for a few dozen 1 KiB events per worker.
            ("RINGCAST_MAX_MESH_BYTES", "65536"),
            ("RINGCAST_FAULT_STALL_AT_MS", &STALL_AT_MS.to_string()),
            ("RINGCAST_FAULT_STALL_MS", &STALL_MS.to_string()),
        ],
    );
    // Subscribers on both workers (the kernel spreads connections over the two listeners).
    let mut subs: Vec<Ws> = (0..8)
        .map(|_| {
            let (mut ws, _) = server.client();
            ws.subscribe("flood");
            ws
        })
        .collect();
    // The publishers connect before the stall; those that land on the stalled worker wait for
    // it, the others keep posting through the worker that still runs.
    let mut https: Vec<Http> = (0..PUBLISHERS)
        .map(|_| Http::connect(server.port))
        .collect();
    for h in &mut https {
        assert_eq!(h.request("GET", "/up", b"").status, 200);
    }
    let stall_start = Duration::from_millis(STALL_AT_MS + 200);
    let stall_end = Duration::from_millis(STALL_AT_MS + STALL_MS - 500);
    assert!(
        started.elapsed() < stall_start,
        "the set-up took longer than the time before the stall"
    );
    std::thread::sleep(stall_start - started.elapsed());
    let payload = "x".repeat(1024);
    let barrier = Arc::new(Barrier::new(PUBLISHERS));
    let handles: Vec<_> = https
        .into_iter()
        .enumerate()
        .map(|(p, mut http)| {
            let payload = payload.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut results = Vec::new();
                let mut seq = 0u32;
                while started.elapsed() < stall_end {
                    let data = format!("{p}:{seq}:{payload}");
                    let status = http.trigger(&["flood"], "e", &data, None).status;
                    results.push((seq, status));
                    seq += 1;
                }
                results
            })
        })
        .collect();
    let results: Vec<Vec<(u32, u16)>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let refused: usize = results.iter().flatten().filter(|(_, s)| *s == 503).count();
    let mut accepted: HashMap<usize, Vec<u32>> = HashMap::new();
    for (p, r) in results.iter().enumerate() {
        for (seq, status) in r {
            assert!(
                *status == 200 || *status == 503,
                "publisher {p} event {seq}: status {status}"
            );
            if *status == 200 {
                accepted.entry(p).or_default().push(*seq);
            }
        }
    }
    assert!(
        refused > 0,
        "a worker was stalled for {STALL_MS} ms with a 64 KiB inbox and no publish was refused"
    );
    let total: usize = accepted.values().map(Vec::len).sum();
    assert!(total > 0, "nothing was accepted at all");
    // Every subscriber gets every accepted event exactly once, in each publisher's order.
    for (i, ws) in subs.iter_mut().enumerate() {
        let mut got: HashMap<usize, Vec<u32>> = HashMap::new();
        for _ in 0..total {
            let ev = ws.recv_event();
            assert_eq!(ev["event"], "e", "{ev}");
            let data = ev["data"].as_str().unwrap();
            let mut parts = data.splitn(3, ':');
            let p: usize = parts.next().unwrap().parse().unwrap();
            let seq: u32 = parts.next().unwrap().parse().unwrap();
            got.entry(p).or_default().push(seq);
        }
        assert_eq!(got, accepted, "subscriber {i}");
        ws.expect_silence(Duration::from_millis(300));
    }
}
