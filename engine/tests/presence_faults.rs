//! Presence faults found by reading the engine: a joiner closed as a slow consumer during its
//! own join must leave no ghost member behind.
//!
//! With one worker the channel's owner is always local. A joiner whose outbound queue is
//! almost full gets its `subscription_succeeded` (the member list) queued past the bound and is
//! closed with 4100 while its join is being answered. The other members must then see
//! `member_added` for it before `member_removed`, never the other way round (which would leave
//! it in their member lists for good).

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use ringcast_protocol::pusher::auth::channel_auth;
use serde_json::json;
use support::*;

const MEMBERS: usize = 25;

fn join(ws: &mut Ws, sid: &str, user: &str, info: &str) {
    let data = json!({"user_id": user, "user_info": {"bio": info}}).to_string();
    let auth = channel_auth(APP_KEY, APP_SECRET, sid, "presence-room", Some(&data));
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":"presence-room","auth":auth,"channel_data":data}}));
}

#[test]
fn a_joiner_closed_during_its_own_join_leaves_no_ghost_member() {
    // The member list is 25 members of 10 KB: more than the joiner's whole queue may hold
    // (200 KB), while a batch of ten 10 KB events fits in it.
    let config = std::env::temp_dir().join(format!("ringcast-ghost-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "max_user_info_bytes = 12000\nmax_outbound_bytes = 200000\n",
    )
    .unwrap();
    let server = Server::start(
        &["--workers", "1", "--config", config.to_str().unwrap()],
        &[
            ("REVERB_APP_MAX_MESSAGE_SIZE", "20000"),
            // The joiner says nothing while its socket fills, which may take a while on a
            // loaded machine: it must not be pinged out (4201) meanwhile.
            ("REVERB_APP_PING_INTERVAL", "3600"),
        ],
    );
    let bio = "b".repeat(10_000);
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        let (mut ws, sid) = server.client();
        join(&mut ws, &sid, &format!("m{i}"), &bio);
        loop {
            let ev = ws.recv_event();
            if ev["event"] == "pusher_internal:subscription_succeeded" {
                break;
            }
        }
        members.push(ws);
    }
    for (i, ws) in members.iter_mut().enumerate() {
        // Each earlier member hears of the later ones.
        for _ in i + 1..MEMBERS {
            assert_eq!(
                ws.recv_event()["event"],
                "pusher_internal:member_added",
                "member m{i}"
            );
        }
    }
    // The joiner, with a small receive buffer, stops reading. Its public channel is filled,
    // ten 10 KB events a request, until the kernel takes less than half of a request: what
    // waits in the server's queue is then under 150 KB, under its bound, and the member list
    // passes it.
    let (mut joiner, sid) = small_window_client(server.port);
    joiner.subscribe("fill");
    let client_port = joiner.stream.local_addr().unwrap().port();
    // A subscriber that reads, after the joiner in the channel: once it has a request's ten
    // events, that request's fan-out has been written to the joiner too (the API answers
    // before the fan-out).
    let (mut probe, _) = server.client();
    probe.subscribe("fill");
    let mut http = Http::connect(server.port);
    let data = "d".repeat(10_000);
    let batch = json!({"batch": (0..10)
        .map(|_| json!({"name": "fill", "channel": "fill", "data": data}))
        .collect::<Vec<_>>()})
    .to_string();
    let path = format!("/apps/{APP_ID}/batch_events");
    // A bound on the loop, not a timing check: the send buffer autotunes up to 4 MiB.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (tx0, rx0) = kernel_queues(server.port, client_port);
        let r = http.signed("POST", &path, &[], &batch);
        assert_eq!(r.status, 200, "{}", r.body);
        for _ in 0..10 {
            assert_eq!(probe.recv_event()["event"], "fill");
        }
        let (tx1, rx1) = kernel_queues(server.port, client_port);
        if (tx1 + rx1).saturating_sub(tx0 + rx0) < 50_000 {
            break;
        }
        assert!(Instant::now() < deadline, "the kernel never filled up");
    }
    join(&mut joiner, &sid, "ghost", "g");
    joiner.stream.flush().unwrap();
    // The joiner is closed as a slow consumer, after what it had been sent (read now: a peer
    // that takes nothing for 5 s is reset).
    assert_eq!(joiner.recv_close(), Some(4100));
    // What every other member sees of the joiner, in order.
    for (i, ws) in members.iter_mut().enumerate() {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let ev = ws.recv_event();
            let name = ev["event"].as_str().unwrap().to_string();
            if name.starts_with("pusher_internal:member_") {
                let d: serde_json::Value =
                    serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
                assert_eq!(d["user_id"], "ghost", "member m{i}: {ev}");
                seen.push(name);
            }
        }
        assert_eq!(
            seen,
            [
                "pusher_internal:member_added",
                "pusher_internal:member_removed"
            ],
            "member m{i} must see the joiner arrive and then leave"
        );
        ws.expect_silence(Duration::from_millis(300));
    }
    // And the server's own list agrees.
    let users = http.signed(
        "GET",
        &format!("/apps/{APP_ID}/channels/presence-room/users"),
        &[],
        "",
    );
    assert_eq!(users.status, 200, "{}", users.body);
    let mut ids: Vec<String> = users.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..MEMBERS).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected);
}
