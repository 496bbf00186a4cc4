//! The cluster's Lua scripts of the workers' operations against a real `redis-server`,
//! driven by the link's own encoder and read back with its own decoder, without any ringcast
//! process: the lowest layer that can see the cluster-wide rules. Node ids stand for nodes.
//! The nodes' life (registering, reaping, re-asserting) is `cluster_life.rs`.

mod redis_scripts;
mod support;

use std::time::Duration;

use ringcast::cluster::decode::answer;
use ringcast::cluster::scripts::{ALREADY, COMMON, NOT_REGISTERED};
use ringcast::cluster::wire::{self, AskKind};
use ringcast::ids::{AppIdx, ShardId};
use ringcast::state::msg::{Answer, NodeInfo, Question};
use ringcast_protocol::Limits;

use redis_scripts::*;

#[test]
fn the_lua_frame_header_is_the_protocol_crates() {
    let mut r = redis();
    let script = format!("{COMMON}return wsframe(ARGV[3])");
    for len in [0, 5, 125, 126, 127, 300, 65535, 65536, 70_000] {
        let payload = "x".repeat(len);
        let framed: Vec<u8> = redis::cmd("EVAL")
            .arg(&script)
            .arg(0)
            .arg("t")
            .arg("n")
            .arg(&payload)
            .query(&mut r.con)
            .unwrap();
        let want = ringcast_protocol::ws::encode::text(payload.as_bytes());
        assert_eq!(framed[..], want[..], "payload of {len} bytes");
    }
}

#[test]
fn presence_members_are_counted_per_user_across_nodes_and_leave_nothing_behind() {
    let mut r = redis();
    let apps = apps();
    let [a, b] = registered(&mut r.con, &apps, ["a", "b"], 100);
    let room = "presence-room";

    a.run(&mut r.con, join(room, Some("1"), 10));
    let on_a = summary(&drain(&mut r.con, "a", &apps));
    assert_eq!(on_a.len(), 2, "{on_a:?}");
    assert!(on_a[0].starts_with("answer:pusher_internal:subscription_succeeded"));
    assert!(on_a[0].contains(r#""ids":["1"]"#), "{on_a:?}");
    assert!(
        on_a[1].ends_with("except 10.1"),
        "member_added skips the joiner: {on_a:?}"
    );
    // User 2 on node b: the answer to b, member_added to a (and to b, except the joiner).
    b.run(&mut r.con, join(room, Some("2"), 20));
    let on_a = summary(&drain(&mut r.con, "a", &apps));
    assert_eq!(
        on_a,
        [
            "pusher_internal:member_added {\"user_id\":\"2\",\"user_info\":{\"name\":\"2\"}} except 20.1"
        ]
    );
    let on_b = summary(&drain(&mut r.con, "b", &apps));
    assert_eq!(on_b.len(), 2, "{on_b:?}");
    assert!(on_b[0].starts_with("answer:pusher_internal:subscription_succeeded"));
    assert!(on_b[0].contains(r#""count":2"#), "{on_b:?}");
    assert_eq!(
        on_b[1],
        "pusher_internal:member_added {\"user_id\":\"2\",\"user_info\":{\"name\":\"2\"}} except 20.1",
        "the other members on b hear of it too, not the joiner"
    );
    // User 2 again, on node a: no second member.
    a.run(&mut r.con, join(room, Some("2"), 11));
    let on_a = summary(&drain(&mut r.con, "a", &apps));
    assert_eq!(on_a.len(), 1, "only the answer: {on_a:?}");
    assert!(drain(&mut r.con, "b", &apps).is_empty());
    // User 2 leaves node b: still on a, no member_removed.
    b.run(&mut r.con, leave(room, Some("2")));
    assert!(drain(&mut r.con, "a", &apps).is_empty());
    // ... and node a: member_removed to a, the only interested node left.
    a.run(&mut r.con, leave(room, Some("2")));
    assert_eq!(
        summary(&drain(&mut r.con, "a", &apps)),
        ["pusher_internal:member_removed {\"user_id\":\"2\"}"]
    );
    assert!(drain(&mut r.con, "b", &apps).is_empty());
    a.run(&mut r.con, leave(room, Some("1")));
    assert!(
        drain(&mut r.con, "a", &apps).is_empty(),
        "nobody is left to tell"
    );
    assert_eq!(
        fact_keys(&mut r.con),
        Vec::<String>::new(),
        "nothing left in Redis"
    );
}

#[test]
fn a_full_presence_channel_refuses_new_users_on_any_node_and_counts_nothing() {
    let mut r = redis();
    let apps = apps();
    let [a, b] = registered(&mut r.con, &apps, ["a", "b"], 1);
    let room = "presence-small";
    a.run(&mut r.con, join(room, Some("1"), 10));
    b.run(&mut r.con, join(room, Some("2"), 20));
    drain(&mut r.con, "a", &apps);
    let on_b = summary(&drain(&mut r.con, "b", &apps));
    assert_eq!(on_b.len(), 1);
    assert!(
        on_b[0].starts_with("answer:refused pusher:subscription_error"),
        "{on_b:?}"
    );
    // The member already in is welcome on another node.
    b.run(&mut r.con, join(room, Some("1"), 21));
    let on_b = summary(&drain(&mut r.con, "b", &apps));
    assert!(on_b[0].starts_with("answer:pusher_internal:subscription_succeeded"));
    a.run(&mut r.con, leave(room, Some("1")));
    b.run(&mut r.con, leave(room, Some("1")));
    assert_eq!(
        fact_keys(&mut r.con),
        Vec::<String>::new(),
        "nothing left in Redis"
    );
}

#[test]
fn counts_and_publishes_go_only_to_interested_nodes() {
    let mut r = redis();
    let apps = apps();
    let [a, b, c] = registered(&mut r.con, &apps, ["a", "b", "c"], 100);
    let news = "news";
    a.run(&mut r.con, join(news, None, 1));
    let on_a = summary(&drain(&mut r.con, "a", &apps));
    assert_eq!(on_a.len(), 2, "{on_a:?}");
    assert!(on_a[0].starts_with("answer:pusher_internal:subscription_succeeded"));
    assert_eq!(
        on_a[1], "pusher_internal:subscription_count {\"subscription_count\":1}",
        "the count follows the answer in the joiner's log"
    );
    b.run(&mut r.con, join(news, None, 2));
    for node in ["a", "b"] {
        let got = summary(&drain(&mut r.con, node, &apps));
        assert_eq!(
            got.last().unwrap(),
            "pusher_internal:subscription_count {\"subscription_count\":2}"
        );
    }
    // A publish reaches the nodes with subscribers, its own node's included (its subscribers
    // take it in the order Redis ran it), with the origin and operation number.
    let publish = |n: &Node, con: &mut redis::Connection, i: u8| {
        let frame = ringcast_protocol::ws::encode::text(
            format!(r#"{{"event":"e","channel":"news","data":"{i}"}}"#).as_bytes(),
        );
        n.publish(con, news, frame)
    };
    assert_eq!(
        publish(&c, &mut r.con, 1),
        redis::Value::Int(0),
        "no copy for c"
    );
    assert_eq!(
        publish(&a, &mut r.con, 2),
        redis::Value::Int(1),
        "a copy for a"
    );
    assert_eq!(
        summary(&drain(&mut r.con, "a", &apps)),
        ["e 1 #1 from c", "e 2 #2 from a"]
    );
    assert_eq!(
        summary(&drain(&mut r.con, "b", &apps)),
        ["e 1 #1 from c", "e 2 #2 from a"]
    );
    assert!(
        drain(&mut r.con, "c", &apps).is_empty(),
        "c has no subscriber"
    );
    a.run(&mut r.con, leave(news, None));
    b.run(&mut r.con, leave(news, None));
    drain(&mut r.con, "b", &apps);
    assert_eq!(fact_keys(&mut r.con), Vec::<String>::new());
}

#[test]
fn counts_over_a_hundred_subscriptions_are_throttled_and_the_last_one_still_arrives() {
    let mut r = redis();
    let apps = apps();
    let a = node(&apps, "a", 100);
    a.register(&mut r.con, "");
    let big = "big";
    let counts = |con: &mut redis::Connection| -> Vec<String> {
        summary(&drain(con, "a", &apps))
            .into_iter()
            .filter(|e| e.starts_with("pusher_internal:subscription_count"))
            .collect()
    };
    for i in 0..101 {
        a.run(&mut r.con, join(big, None, i));
    }
    let sent = counts(&mut r.con);
    assert_eq!(sent.len(), 101, "every count up to the first one over 100");
    assert!(sent[100].ends_with(":101}"), "{}", sent[100]);
    for i in 101..105 {
        a.run(&mut r.con, join(big, None, i));
    }
    assert!(counts(&mut r.con).is_empty(), "within the window: none");
    let heartbeat = |con: &mut redis::Connection| {
        a.heartbeat(con, 30_000);
    };
    heartbeat(&mut r.con);
    assert!(counts(&mut r.con).is_empty(), "the window has not passed");
    // The window passes (without waiting 5 s): the next heartbeat sends the latest count once.
    let _: () = redis::cmd("DEL")
        .arg("t:cthr:7:big")
        .query(&mut r.con)
        .unwrap();
    heartbeat(&mut r.con);
    assert_eq!(
        counts(&mut r.con),
        ["pusher_internal:subscription_count {\"subscription_count\":105}"]
    );
    heartbeat(&mut r.con);
    assert!(counts(&mut r.con).is_empty(), "sent once");
}

#[test]
fn the_node_list_has_every_node_with_its_connections_and_what_is_left_of_its_lease() {
    let mut r = redis();
    let apps = apps();
    let [a, b, c] = registered(&mut r.con, &apps, ["aaaa", "bbbb", "cccc"], 10);
    for n in [&a, &b, &c] {
        n.heartbeat(&mut r.con, 30_000);
    }
    // Heartbeats with connections: b has 5, c's lease is short and expires; a says goodbye
    // after the others asked once.
    let _: () = redis::cmd("HSET")
        .arg("t:conns:7")
        .arg("bbbb")
        .arg(5)
        .query(&mut r.con)
        .unwrap();
    c.heartbeat(&mut r.con, 1);
    std::thread::sleep(Duration::from_millis(20));
    let ask = |n: &Node, con: &mut redis::Connection| -> Vec<NodeInfo> {
        let (tx, _rx) = futures_channel::oneshot::channel();
        let q = Question::Nodes { app: AppIdx(0) };
        let kind = AskKind::of(&q);
        let reply = n.run_op(con, wire::Command::Ask(q, tx), 0);
        let Answer::Nodes(mut nodes) = answer(kind, &reply, &Limits::default()) else {
            panic!("a node list");
        };
        nodes.sort_by(|x, y| x.id.cmp(&y.id));
        nodes
    };
    let nodes = ask(&b, &mut r.con);
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["aaaa", "bbbb", "cccc"]);
    assert_eq!(nodes[0].connections, 0);
    assert_eq!(nodes[1].connections, 5);
    for n in &nodes[..2] {
        let left = n.lease_ms_left.expect("a live lease");
        assert!(left > 25_000 && left <= 30_000, "{n:?}");
    }
    assert_eq!(nodes[2].lease_ms_left, None, "an expired lease");

    let _: redis::Value = a.enc.goodbye().query(&mut r.con).unwrap();
    let ids: Vec<String> = ask(&c, &mut r.con).into_iter().map(|n| n.id).collect();
    assert_eq!(ids, ["bbbb", "cccc"], "a node that left is not listed");
}

#[test]
fn an_operation_counts_once_and_only_for_a_registered_node() {
    let mut r = redis();
    let apps = apps();
    let a = node(&apps, "a", 100);
    let cmd = |slot| wire::Command::Owner(ShardId(1), join("presence-once", Some("1"), slot));
    assert_eq!(
        a.run_op(&mut r.con, cmd(1), 1),
        redis::Value::Int(NOT_REGISTERED),
        "an unregistered node changes nothing"
    );
    assert_eq!(fact_keys(&mut r.con), Vec::<String>::new());
    assert!(
        drain(&mut r.con, "a", &apps).is_empty(),
        "and answers nobody"
    );
    a.register(&mut r.con, "");
    assert_eq!(a.run_op(&mut r.con, cmd(1), 1), redis::Value::Int(1));
    // Sent again after a broken connection: Redis had run it.
    assert_eq!(a.run_op(&mut r.con, cmd(1), 1), redis::Value::Int(ALREADY));
    assert_eq!(a.run_op(&mut r.con, cmd(2), 0), redis::Value::Int(ALREADY));
    let npc: i64 = redis::cmd("HGET")
        .arg("t:npc:a")
        .arg("7\0presence-once\x001")
        .query(&mut r.con)
        .unwrap();
    assert_eq!(npc, 1, "one connection, however often it was sent");
    let answers = summary(&drain(&mut r.con, "a", &apps))
        .into_iter()
        .filter(|e| e.starts_with("answer:"))
        .count();
    assert_eq!(answers, 1, "one answer");
}

#[test]
fn the_frames_built_in_lua_are_the_protocol_crates() {
    use ringcast_protocol::pusher::event::ServerEvent;
    let mut r = redis();
    let mut lua = |body: &str, args: &[&str]| -> Vec<u8> {
        let mut c = redis::cmd("EVAL");
        c.arg(format!("{COMMON}{body}")).arg(0).arg("t").arg("n");
        for a in args {
            c.arg(*a);
        }
        c.query(&mut r.con).unwrap()
    };
    for user in ["1", "user@example.com", "Zo\u{eb}", "a\"b\\c", "x/y"] {
        let got = lua(
            "return removed_frame(ARGV[3], ARGV[4])",
            &["presence-room", user],
        );
        let want = ServerEvent::MemberRemoved {
            channel: "presence-room",
            user_id: user,
        }
        .to_frame();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "member_removed of {user:?}"
        );
        let got = lua("return offline_frame(ARGV[3])", &[user]);
        let want = ServerEvent::WatchlistEvents {
            online: &[],
            offline: &[user],
        }
        .to_frame();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "offline of {user:?}"
        );
    }
    let got = lua(
        "local pre, post = count_parts(ARGV[3]) return pre .. '42' .. post",
        &["private-a.b"],
    );
    let (pre, post) = wire::count_parts("private-a.b");
    assert_eq!(got, [pre, b"42".to_vec(), post].concat());
}
