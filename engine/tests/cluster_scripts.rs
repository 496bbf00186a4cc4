//! The cluster's Lua scripts against a real `redis-server` (Debian's, started on a free
//! loopback port with persistence off), driven by the link's own encoder and read back with its
//! own decoder, without any ringcast process: the lowest layer that can see the cluster-wide
//! rules. Two node ids stand for two nodes.

use std::sync::Arc;
use std::time::Duration;

mod support;

use bytes::Bytes;
use ringcast::app::Apps;
use ringcast::cluster::scripts::{COMMON, Scripts};
use ringcast::cluster::wire::{self, Decoder, Delivery, Encoder, Fields};
use ringcast::config::AppConfig;
use ringcast::ids::{AppIdx, ConnKey, ShardId};
use ringcast::state::msg::{Answer, Join, NodeInfo, OwnerMsg, Question, ShardMsg};
use ringcast_protocol::Limits;
use ringcast_protocol::pusher::channel::ChannelName;
use ringcast_protocol::pusher::socket_id::SocketId;
use support::redis_server::RedisServer;

struct Redis {
    con: redis::Connection,
    _server: RedisServer,
}

fn redis() -> Redis {
    let server = RedisServer::start();
    let mut con = server.connection().unwrap();
    Scripts::default().load(&mut con).unwrap();
    Redis {
        con,
        _server: server,
    }
}

fn apps() -> Arc<Apps> {
    Arc::new(Apps::new(&[AppConfig {
        id: "7".into(),
        key: "k".into(),
        secret: "s".into(),
        subscription_count: true,
        ..AppConfig::default()
    }]))
}

fn encoder(apps: &Arc<Apps>, node: &str, max_members: usize) -> Encoder {
    Encoder {
        apps: apps.clone(),
        prefix: "t".into(),
        node: node.into(),
        scripts: Scripts::default(),
        max_members,
    }
}

fn channel(name: &str) -> Arc<ChannelName> {
    Arc::new(ChannelName::parse(name, &Limits::default()).unwrap())
}

fn join(name: &str, user: Option<&str>, slot: u32) -> OwnerMsg {
    OwnerMsg::Join(Join {
        app: AppIdx(0),
        channel: channel(name),
        from: ShardId(1),
        conn: ConnKey {
            slot,
            generation: 3,
        },
        socket_id: SocketId::parse(&format!("{slot}.1")).unwrap(),
        member: user.map(|u| (Arc::from(u), format!(r#"{{"name":"{u}"}}"#))),
        reply: true,
    })
}

fn leave(name: &str, user: Option<&str>) -> OwnerMsg {
    OwnerMsg::Leave {
        app: AppIdx(0),
        channel: channel(name),
        user: user.map(Arc::from),
    }
}

/// Runs a command's script on `con`.
fn run(enc: &Encoder, con: &mut redis::Connection, msg: OwnerMsg) -> redis::Value {
    let (cmd, _) = enc.encode(wire::Command::Owner(msg)).unwrap();
    cmd.query(con).unwrap()
}

/// An inbox entry: its id and its fields.
type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// Every entry of `node`'s inbox, decoded, and the inbox emptied.
fn drain(con: &mut redis::Connection, node: &str, apps: &Arc<Apps>) -> Vec<Delivery> {
    let key = format!("t:inbox:{node}");
    let reply: Vec<Entry> = {
        let raw: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query(con)
            .unwrap();
        raw.into_iter()
            .map(|(id, flat)| {
                let pairs = flat
                    .chunks_exact(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect();
                (id, pairs)
            })
            .collect()
    };
    let _: () = redis::cmd("DEL").arg(&key).query(con).unwrap();
    let dec = Decoder {
        apps: apps.clone(),
        limits: Limits::default(),
    };
    reply
        .iter()
        .flat_map(|(_, f)| dec.decode(&Fields(f)))
        .collect()
}

/// What the deliveries are, as short strings: `answer:<first frame's event>`, or the event of
/// each published frame.
fn summary(ds: &[Delivery]) -> Vec<String> {
    let event = |f: &Bytes| {
        let header = match f[1] {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        let text = String::from_utf8_lossy(&f[header..]).into_owned();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let data = v["data"].as_str().unwrap_or("").to_string();
        format!("{} {data}", v["event"].as_str().unwrap())
    };
    ds.iter()
        .map(|d| match d {
            Delivery::One(_, ShardMsg::JoinAnswer(a)) => format!(
                "answer:{}{}",
                if a.accepted { "" } else { "refused " },
                event(&a.frames[0])
            ),
            Delivery::All(ShardMsg::Publish { frame, except, .. }) => {
                format!(
                    "{}{}",
                    event(frame),
                    except.map(|x| format!(" except {x}")).unwrap_or_default()
                )
            }
            other => format!("{other:?}"),
        })
        .collect()
}

fn keys(con: &mut redis::Connection) -> Vec<String> {
    let mut k: Vec<String> = redis::cmd("KEYS").arg("t:*").query(con).unwrap();
    k.sort();
    k
}

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
    let (a, b) = (encoder(&apps, "a", 100), encoder(&apps, "b", 100));
    let room = "presence-room";

    run(&a, &mut r.con, join(room, Some("1"), 10));
    let on_a = summary(&drain(&mut r.con, "a", &apps));
    assert_eq!(on_a.len(), 2, "{on_a:?}");
    assert!(on_a[0].starts_with("answer:pusher_internal:subscription_succeeded"));
    assert!(on_a[0].contains(r#""ids":["1"]"#), "{on_a:?}");
    assert!(
        on_a[1].ends_with("except 10.1"),
        "member_added skips the joiner: {on_a:?}"
    );
    // User 2 on node b: the answer to b, member_added to a (and to b, except the joiner).
    run(&b, &mut r.con, join(room, Some("2"), 20));
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
    run(&a, &mut r.con, join(room, Some("2"), 11));
    let on_a = summary(&drain(&mut r.con, "a", &apps));
    assert_eq!(on_a.len(), 1, "only the answer: {on_a:?}");
    assert!(drain(&mut r.con, "b", &apps).is_empty());
    // User 2 leaves node b: still on a, no member_removed.
    run(&b, &mut r.con, leave(room, Some("2")));
    assert!(drain(&mut r.con, "a", &apps).is_empty());
    // ... and node a: member_removed to a, the only interested node left.
    run(&a, &mut r.con, leave(room, Some("2")));
    assert_eq!(
        summary(&drain(&mut r.con, "a", &apps)),
        ["pusher_internal:member_removed {\"user_id\":\"2\"}"]
    );
    assert!(drain(&mut r.con, "b", &apps).is_empty());
    run(&a, &mut r.con, leave(room, Some("1")));
    assert!(
        drain(&mut r.con, "a", &apps).is_empty(),
        "nobody is left to tell"
    );
    assert_eq!(
        keys(&mut r.con),
        Vec::<String>::new(),
        "nothing left in Redis"
    );
}

#[test]
fn a_full_presence_channel_refuses_new_users_on_any_node_and_counts_nothing() {
    let mut r = redis();
    let apps = apps();
    let (a, b) = (encoder(&apps, "a", 1), encoder(&apps, "b", 1));
    let room = "presence-small";
    run(&a, &mut r.con, join(room, Some("1"), 10));
    run(&b, &mut r.con, join(room, Some("2"), 20));
    drain(&mut r.con, "a", &apps);
    let on_b = summary(&drain(&mut r.con, "b", &apps));
    assert_eq!(on_b.len(), 1);
    assert!(
        on_b[0].starts_with("answer:refused pusher:subscription_error"),
        "{on_b:?}"
    );
    // The member already in is welcome on another node.
    run(&b, &mut r.con, join(room, Some("1"), 21));
    let on_b = summary(&drain(&mut r.con, "b", &apps));
    assert!(on_b[0].starts_with("answer:pusher_internal:subscription_succeeded"));
    run(&a, &mut r.con, leave(room, Some("1")));
    run(&b, &mut r.con, leave(room, Some("1")));
    assert_eq!(
        keys(&mut r.con),
        Vec::<String>::new(),
        "nothing left in Redis"
    );
}

#[test]
fn counts_and_publishes_go_only_to_interested_nodes() {
    let mut r = redis();
    let apps = apps();
    let (a, b, c) = (
        encoder(&apps, "a", 100),
        encoder(&apps, "b", 100),
        encoder(&apps, "c", 100),
    );
    let news = "news";
    run(&a, &mut r.con, join(news, None, 1));
    let on_a = summary(&drain(&mut r.con, "a", &apps));
    assert_eq!(on_a.len(), 2, "{on_a:?}");
    assert!(on_a[0].starts_with("answer:pusher_internal:subscription_succeeded"));
    assert_eq!(
        on_a[1], "pusher_internal:subscription_count {\"subscription_count\":1}",
        "the count follows the answer in the joiner's log"
    );
    run(&b, &mut r.con, join(news, None, 2));
    for node in ["a", "b"] {
        let got = summary(&drain(&mut r.con, node, &apps));
        assert_eq!(
            got.last().unwrap(),
            "pusher_internal:subscription_count {\"subscription_count\":2}"
        );
    }
    // A publish on c reaches a and b; one on a reaches b only (a delivers its own at once).
    let publish = |enc: &Encoder, con: &mut redis::Connection, n: u8| {
        let frame = ringcast_protocol::ws::encode::text(
            format!(r#"{{"event":"e","channel":"news","data":"{n}"}}"#).as_bytes(),
        );
        let (cmd, _) = enc
            .encode(wire::Command::Publish(vec![wire::Item {
                app: AppIdx(0),
                channel: channel(news),
                frame,
                except: None,
                cache: None,
            }]))
            .unwrap();
        let _: redis::Value = cmd.query(con).unwrap();
    };
    publish(&c, &mut r.con, 1);
    publish(&a, &mut r.con, 2);
    assert_eq!(summary(&drain(&mut r.con, "a", &apps)), ["e 1"]);
    assert_eq!(summary(&drain(&mut r.con, "b", &apps)), ["e 1", "e 2"]);
    assert!(
        drain(&mut r.con, "c", &apps).is_empty(),
        "c has no subscriber"
    );
    run(&a, &mut r.con, leave(news, None));
    run(&b, &mut r.con, leave(news, None));
    drain(&mut r.con, "b", &apps);
    assert_eq!(keys(&mut r.con), Vec::<String>::new());
}

#[test]
fn counts_over_a_hundred_subscriptions_are_throttled_and_the_last_one_still_arrives() {
    let mut r = redis();
    let apps = apps();
    let a = encoder(&apps, "a", 100);
    let big = "big";
    let counts = |con: &mut redis::Connection| -> Vec<String> {
        summary(&drain(con, "a", &apps))
            .into_iter()
            .filter(|e| e.starts_with("pusher_internal:subscription_count"))
            .collect()
    };
    for i in 0..101 {
        run(&a, &mut r.con, join(big, None, i));
    }
    let sent = counts(&mut r.con);
    assert_eq!(sent.len(), 101, "every count up to the first one over 100");
    assert!(sent[100].ends_with(":101}"), "{}", sent[100]);
    for i in 101..105 {
        run(&a, &mut r.con, join(big, None, i));
    }
    assert!(counts(&mut r.con).is_empty(), "within the window: none");
    let heartbeat = |con: &mut redis::Connection| {
        let _: redis::Value = a.heartbeat(30_000).query(con).unwrap();
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
    let (a, b, c) = (
        encoder(&apps, "aaaa", 10),
        encoder(&apps, "bbbb", 10),
        encoder(&apps, "cccc", 10),
    );
    for enc in [&a, &b, &c] {
        let _: redis::Value = enc.heartbeat(30_000).query(&mut r.con).unwrap();
    }
    // Heartbeats with connections: b has 5, c's lease is short and expires; a says goodbye
    // after the others asked once.
    let _: () = redis::cmd("HSET")
        .arg("t:conns:7")
        .arg("bbbb")
        .arg(5)
        .query(&mut r.con)
        .unwrap();
    let _: redis::Value = c.heartbeat(1).query(&mut r.con).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let ask = |enc: &Encoder, con: &mut redis::Connection| -> Vec<NodeInfo> {
        let (tx, _rx) = futures_channel::oneshot::channel();
        let q = Question::Nodes { app: AppIdx(0) };
        let (cmd, then) = enc.encode(wire::Command::Ask(q, tx)).unwrap();
        let reply: redis::Value = cmd.query(con).unwrap();
        let wire::Then::Answer(kind, _) = then else {
            panic!("a question is answered");
        };
        let Answer::Nodes(mut nodes) = wire::answer(kind, &reply, &Limits::default()) else {
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

    let _: redis::Value = a.goodbye().query(&mut r.con).unwrap();
    let ids: Vec<String> = ask(&c, &mut r.con).into_iter().map(|n| n.id).collect();
    assert_eq!(ids, ["bbbb", "cccc"], "a node that left is not listed");
}
