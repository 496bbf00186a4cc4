//! A node's life in the cluster, script by script, against a real `redis-server`: the reaper
//! of a node whose lease expired (once, with its events, nothing left behind), REGISTER's
//! three answers, the re-assertion of a node's share (loud after a reap, silent after a
//! Redis that lost its data, then SETTLE), and the webhooks a reap decides.

mod redis_scripts;
mod support;

use std::sync::Arc;
use std::time::Duration;

use ringcast::cluster::decode::{HookStep, fired, reaped_hooks};
use ringcast::cluster::rebuild::{self, Followups, Mode, Totals};
use ringcast::cluster::scripts::NOT_REGISTERED;
use ringcast::cluster::wire::Pending;
use ringcast::ids::{AppIdx, ConnKey, ShardId};
use ringcast::state::msg::{OwnerMsg, Snapshot, UserId};

use redis_scripts::*;

fn signin(user: &str, watchlist: &[&str]) -> OwnerMsg {
    OwnerMsg::Signin {
        app: AppIdx(0),
        user: Arc::from(user),
        watchlist: watchlist.iter().map(|w| UserId::from(*w)).collect(),
        from: ShardId(1),
        conn: ConnKey {
            slot: 9,
            generation: 1,
        },
    }
}

/// The `reaped` list of a HEARTBEAT reply.
fn reaped(v: &redis::Value) -> Vec<String> {
    let redis::Value::Array(parts) = v else {
        panic!("{v:?}")
    };
    let redis::Value::Array(list) = &parts[3] else {
        panic!("{v:?}")
    };
    list.iter()
        .map(|x| match x {
            redis::Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_dead_node_is_reaped_once_by_one_survivor_with_its_events_and_nothing_is_left() {
    let mut r = redis();
    let apps = apps();
    let [a, b, c] = registered(&mut r.con, &apps, ["a", "b", "c"], 100);
    let room = "presence-room";
    // On a: user 1 (only there) and user 2 (also on b), a plain subscription, user 5 signed in.
    a.run(&mut r.con, join(room, Some("1"), 1));
    a.run(&mut r.con, join(room, Some("2"), 2));
    a.run(&mut r.con, join("news", None, 3));
    a.run(&mut r.con, signin("5", &[]));
    // On b: user 2, a watcher of user 5, and a subscriber of news.
    b.run(&mut r.con, join(room, Some("2"), 4));
    b.run(&mut r.con, join("news", None, 5));
    b.run(&mut r.con, signin("6", &["5"]));
    for n in ["a", "b", "c"] {
        drain(&mut r.con, n, &apps);
    }
    // a's lease runs out (it was killed); b and c both beat afterwards.
    a.heartbeat(&mut r.con, 1);
    std::thread::sleep(Duration::from_millis(20));
    let by_b = b.heartbeat(&mut r.con, 30_000);
    let by_c = c.heartbeat(&mut r.con, 30_000);
    assert_eq!(reaped(&by_b), ["a"], "the first survivor reaps");
    assert!(reaped(&by_c).is_empty(), "the second finds nothing to reap");
    let on_b = summary(&drain(&mut r.con, "b", &apps));
    assert_eq!(
        on_b,
        [
            "pusher_internal:member_removed {\"user_id\":\"1\"}",
            "to 6: pusher_internal:watchlist_events {\"events\":[{\"name\":\"offline\",\"user_ids\":[\"5\"]}]}",
            "pusher_internal:subscription_count {\"subscription_count\":1}",
        ],
        "user 2 stays (on b); once each"
    );
    assert!(
        drain(&mut r.con, "c", &apps).len() <= 1,
        "c: only the watchlist event"
    );
    let left: Vec<String> = all_keys(&mut r.con)
        .into_iter()
        .filter(|k| k.ends_with(":a"))
        .collect();
    assert!(left.is_empty(), "nothing under a's id: {left:?}");
    let users: Vec<String> = redis::cmd("HKEYS")
        .arg("t:pres:7:presence-room")
        .query(&mut r.con)
        .unwrap();
    assert_eq!(users, ["2"]);
    let subs: i64 = redis::cmd("HGET")
        .arg("t:subs:7:news")
        .arg("a")
        .query::<Option<i64>>(&mut r.con)
        .unwrap()
        .unwrap_or(0);
    assert_eq!(subs, 0);
    let interest: Vec<String> = redis::cmd("SMEMBERS")
        .arg("t:int:7:news")
        .query(&mut r.con)
        .unwrap();
    assert_eq!(interest, ["b"]);

    // a was only frozen: what it sends now changes nothing, and it hears so.
    assert_eq!(
        a.run(&mut r.con, leave(room, Some("2"))),
        redis::Value::Int(NOT_REGISTERED)
    );
    let pcnt: i64 = redis::cmd("HGET")
        .arg("t:pcnt:7:presence-room")
        .arg("2")
        .query(&mut r.con)
        .unwrap();
    assert_eq!(pcnt, 1, "b's user 2 is not taken away by a's late leave");
    assert_eq!(
        a.heartbeat(&mut r.con, 30_000),
        redis::Value::Array(vec![redis::Value::Int(0)])
    );
    let (mode, _) = a.register(&mut r.con, "e1");
    assert_eq!(
        mode, "loud",
        "reaped in the same data set: it comes back as new joins"
    );
}

#[test]
fn register_says_what_redis_kept() {
    let mut r = redis();
    let apps = apps();
    let a = node(&apps, "a", 100);
    let (mode, epoch) = a.register(&mut r.con, "");
    assert_eq!(
        (mode.as_str(), epoch.as_str()),
        ("silent", "e1"),
        "a fresh data set"
    );
    let (mode, _) = a.register(&mut r.con, "e1");
    assert_eq!(mode, "continue", "same data set, still registered");
    let _: () = redis::cmd("FLUSHALL").query(&mut r.con).unwrap();
    let (mode, epoch) = a
        .enc
        .register("e1", "e2", 0, 30_000, false, 0)
        .query::<(String, String)>(&mut r.con)
        .unwrap();
    assert_eq!(
        (mode.as_str(), epoch.as_str()),
        ("silent", "e2"),
        "the data is gone"
    );
    let (mode, _) = a
        .enc
        .register("e2", "e3", 0, 30_000, true, 0)
        .query::<(String, String)>(&mut r.con)
        .unwrap();
    assert_eq!(mode, "loud", "an interrupted re-assertion starts again");
    let (mode, _) = a
        .enc
        .register("e2", "e3", 0, 30_000, false, 5)
        .query::<(String, String)>(&mut r.con)
        .unwrap();
    assert_eq!(
        mode, "silent",
        "Redis lacks operations it answered (restored from an older snapshot)"
    );
}

/// A snapshot of one worker: user `user` in `room` on two connections, one plain subscription
/// to `news`, and `user` signed in watching `watched`.
fn snapshot(room: &str, user: &str, watched: &str) -> Snapshot {
    let member = Some((UserId::from(user), Arc::from(r#"{"name":"x"}"#)));
    Snapshot {
        subs: vec![
            (AppIdx(0), channel(room), member.clone()),
            (AppIdx(0), channel(room), member),
            (AppIdx(0), channel("news"), None),
        ],
        signins: vec![(AppIdx(0), UserId::from(user), vec![UserId::from(watched)])],
        pending: Vec::new(),
    }
}

fn run_all(con: &mut redis::Connection, calls: Vec<redis::Cmd>) {
    for c in calls {
        let v: i64 = c.query(con).unwrap();
        assert_eq!(v, 1);
    }
}

#[test]
fn a_silent_assertion_restores_the_facts_without_events_and_settle_sends_what_changed() {
    let mut r = redis();
    let apps = apps();
    let [a, b] = registered(&mut r.con, &apps, ["a", "b"], 100);
    b.run(&mut r.con, join("news", None, 1));
    b.run(&mut r.con, join("presence-room", Some("9"), 2));
    drain(&mut r.con, "b", &apps);
    let totals = Totals::of(&[snapshot("presence-room", "1", "9")]);
    run_all(
        &mut r.con,
        rebuild::assert_calls(&a.enc, Mode::Silent, &totals, 0),
    );
    assert!(drain(&mut r.con, "b", &apps).is_empty(), "no events");
    assert!(drain(&mut r.con, "a", &apps).is_empty(), "no events");
    let npc: i64 = redis::cmd("HGET")
        .arg("t:npc:a")
        .arg("7\0presence-room\x001")
        .query(&mut r.con)
        .unwrap();
    assert_eq!(npc, 2, "two connections");
    let mut users: Vec<String> = redis::cmd("HKEYS")
        .arg("t:pres:7:presence-room")
        .query(&mut r.con)
        .unwrap();
    users.sort();
    assert_eq!(users, ["1", "9"]);
    let total: i64 = redis::cmd("HGET")
        .arg("t:subs:7:news")
        .arg("a")
        .query(&mut r.con)
        .unwrap();
    assert_eq!(total, 1);
    let watchers: Vec<String> = redis::cmd("HKEYS")
        .arg("t:watch:7:9")
        .query(&mut r.con)
        .unwrap();
    assert_eq!(watchers, ["1"]);

    // While Redis was away, user 3 left a's presence channel and user 9's connection on a
    // went (9 is still on b); SETTLE tells everyone of 3 only, and sends the counts.
    let follow = Followups {
        departed: vec![
            (AppIdx(0), channel("presence-room"), UserId::from("3")),
            (AppIdx(0), channel("presence-room"), UserId::from("9")),
        ],
        ..Followups::default()
    };
    run_all(
        &mut r.con,
        rebuild::settle_calls(&a.enc, Mode::Silent, &totals, &follow),
    );
    let on_b = summary(&drain(&mut r.con, "b", &apps));
    assert_eq!(
        on_b,
        [
            "pusher_internal:member_removed {\"user_id\":\"3\"}",
            "pusher_internal:subscription_count {\"subscription_count\":2}",
        ]
    );
}

#[test]
fn a_loud_assertion_sends_what_new_joins_would_to_the_other_nodes() {
    let mut r = redis();
    let apps = apps();
    let [a, b] = registered(&mut r.con, &apps, ["a", "b"], 100);
    b.run(&mut r.con, join("presence-room", Some("9"), 1));
    b.run(&mut r.con, join("news", None, 2));
    b.run(&mut r.con, signin("9", &["1"]));
    drain(&mut r.con, "b", &apps);
    let totals = Totals::of(&[snapshot("presence-room", "1", "9")]);
    run_all(
        &mut r.con,
        rebuild::assert_calls(&a.enc, Mode::Loud, &totals, 7),
    );
    let on_b = summary(&drain(&mut r.con, "b", &apps));
    assert_eq!(
        on_b,
        [
            "pusher_internal:subscription_count {\"subscription_count\":2}",
            "pusher_internal:member_added {\"user_id\":\"1\",\"user_info\":{\"name\":\"x\"}}",
            "to 9: pusher_internal:watchlist_events {\"events\":[{\"name\":\"online\",\"user_ids\":[\"1\"]}]}",
        ]
    );
    let on_a = summary(&drain(&mut r.con, "a", &apps));
    assert!(
        !on_a.iter().any(|e| e.contains("member_added")),
        "a's own clients never saw user 1 leave: {on_a:?}"
    );
    let hw: u64 = redis::cmd("GET").arg("t:nop:a").query(&mut r.con).unwrap();
    assert_eq!(hw, 7, "what Redis answered before is not run again");
    // A sign-in made while Redis was away is told who of its list is online.
    let follow = Followups {
        signins: vec![(
            AppIdx(0),
            ShardId(1),
            ConnKey {
                slot: 4,
                generation: 2,
            },
            vec![UserId::from("9"), UserId::from("nobody")],
        )],
        ..Followups::default()
    };
    run_all(
        &mut r.con,
        rebuild::settle_calls(&a.enc, Mode::Loud, &totals, &follow),
    );
    let on_a = summary(&drain(&mut r.con, "a", &apps));
    assert_eq!(on_a.len(), 1, "{on_a:?}");
    assert!(on_a[0].contains("ToConn"), "{on_a:?}");
    assert!(on_a[0].contains("slot: 4"), "{on_a:?}");
}

#[test]
fn a_big_dead_node_is_reaped_in_steps_of_the_budget() {
    use ringcast::cluster::scripts::REAP_BUDGET;
    let mut r = redis();
    let apps = apps();
    let [a, b] = registered(&mut r.con, &apps, ["a", "b"], 100);
    let n = REAP_BUDGET as usize + 500;
    let mut pipe = redis::pipe();
    for i in 0..n {
        let msg = join(&format!("ch-{i}"), None, i as u32);
        let cmd = ringcast::cluster::wire::Command::Owner(ShardId(1), msg);
        pipe.add_command(a.enc.encode(&cmd, a.next_op(), false).unwrap());
    }
    let _: Vec<redis::Value> = pipe.query(&mut r.con).unwrap();
    let chans = |con: &mut redis::Connection| -> usize {
        redis::cmd("SCARD").arg("t:chans:7").query(con).unwrap()
    };
    assert_eq!(chans(&mut r.con), n);
    a.heartbeat(&mut r.con, 1);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(reaped(&b.heartbeat(&mut r.con, 30_000)), ["a"]);
    assert_eq!(
        chans(&mut r.con),
        500,
        "one step reaps the budget's worth of entries"
    );
    let dead: Vec<String> = redis::cmd("SMEMBERS")
        .arg("t:dead")
        .query(&mut r.con)
        .unwrap();
    assert_eq!(dead, ["a"], "and goes on at the next heartbeat");
    assert_eq!(
        a.run(&mut r.con, leave("ch-1", None)),
        redis::Value::Int(NOT_REGISTERED),
        "a node being reaped is no longer registered"
    );
    assert!(reaped(&b.heartbeat(&mut r.con, 30_000)).is_empty());
    assert_eq!(chans(&mut r.con), 0);
    let left: Vec<String> = all_keys(&mut r.con)
        .into_iter()
        .filter(|k| k.ends_with(":a") || k == "t:dead")
        .collect();
    assert!(left.is_empty(), "nothing of a is left: {left:?}");
}

/// App "7" with `subscription_count` and a webhook of the occupancy and member events.
fn hooked_apps() -> Arc<ringcast::app::Apps> {
    Arc::new(ringcast::app::Apps::new(&[ringcast::config::AppConfig {
        id: "7".into(),
        key: "k".into(),
        secret: "s".into(),
        subscription_count: true,
        webhooks: vec![ringcast::webhook::config::WebhookConfig {
            url: "http://127.0.0.1:9/".into(),
            event_types: [
                "channel_occupied",
                "channel_vacated",
                "member_added",
                "member_removed",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        }],
        ..Default::default()
    }]))
}

fn pending_of(r: &mut Redis, hash: &str) -> Vec<String> {
    let mut v: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("t:{hash}"))
        .query(&mut r.con)
        .unwrap();
    v.sort();
    v
}

#[test]
fn a_reaped_nodes_departures_are_the_survivors_webhooks_and_a_return_cancels_one() {
    let mut r = redis();
    let apps = hooked_apps();
    let limits = ringcast_protocol::Limits::default();
    let [a, b, c] = registered(&mut r.con, &apps, ["a", "b", "c"], 100);
    let room = "presence-room";
    // On a: users 1 and 3 (only there), a channel only a has, and news (also on b).
    a.run(&mut r.con, join(room, Some("1"), 1));
    a.run(&mut r.con, join(room, Some("3"), 2));
    a.run(&mut r.con, join("lonely", None, 3));
    a.run(&mut r.con, join("news", None, 4));
    b.run(&mut r.con, join(room, Some("2"), 5));
    b.run(&mut r.con, join("news", None, 6));
    a.heartbeat(&mut r.con, 1);
    std::thread::sleep(Duration::from_millis(20));
    let beat = b.heartbeat(&mut r.con, 30_000);
    let redis::Value::Array(parts) = &beat else {
        panic!("{beat:?}")
    };
    let steps = reaped_hooks(&parts[4], &apps, &limits);
    let mut seen: Vec<String> = steps
        .iter()
        .map(|(ctx, step)| {
            let what = match step {
                HookStep::Send(h) => format!("send {}", h.kind().name()),
                HookStep::Later(k, _) => format!("later {}", *k as char),
            };
            format!(
                "{what} {} {}",
                ctx.channel.as_str(),
                ctx.user.as_deref().unwrap_or("-")
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "later r presence-room 1",
            "later r presence-room 3",
            "later v lonely -",
            "send subscription_count news -",
        ],
        "the room keeps user 2 (on b), news keeps b's subscriber"
    );
    assert_eq!(
        pending_of(&mut r, "whr"),
        ["7\0presence-room\x001", "7\0presence-room\x003"]
    );
    assert_eq!(pending_of(&mut r, "whv"), ["7\0lonely"]);
    let again = c.heartbeat(&mut r.con, 30_000);
    let redis::Value::Array(parts) = &again else {
        panic!("{again:?}")
    };
    assert_eq!(
        parts[4],
        redis::Value::Array(Vec::new()),
        "the second survivor decides nothing"
    );

    // User 3 reconnected on c within the 3 s: its member_removed is cancelled, and the join
    // sends no member_added either.
    assert_eq!(
        c.run(&mut r.con, join(room, Some("3"), 7)),
        redis::Value::Int(1)
    );
    assert_eq!(pending_of(&mut r, "whr"), ["7\0presence-room\x001"]);

    // b fires the departures after their delay: user 3's is no longer there.
    let due: Vec<Pending> = steps
        .into_iter()
        .filter_map(|(ctx, step)| match step {
            HookStep::Later(kind, token) => Some(Pending {
                due: std::time::Instant::now(),
                kind,
                ctx,
                token,
            }),
            HookStep::Send(_) => None,
        })
        .collect();
    let reply: redis::Value = b.enc.fire(&due).query(&mut r.con).unwrap();
    let mut sent: Vec<String> = fired(due, &reply)
        .into_iter()
        .map(|(_, h)| format!("{} {}", h.kind().name(), h.channel()))
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        ["channel_vacated lonely", "member_removed presence-room"]
    );
    assert!(pending_of(&mut r, "whr").is_empty());
    assert!(pending_of(&mut r, "whv").is_empty());
}
