//! Helpers of the script tests (`cluster_scripts.rs`, `cluster_life.rs`): a real
//! `redis-server` (`support/redis_server.rs`: Debian's, on a free loopback port with
//! persistence off), nodes
//! made of the link's own encoder with an operation counter, and the inboxes read back with
//! the link's own decoder, without any ringcast process.
#![allow(dead_code)]

use std::cell::Cell;
use std::sync::Arc;

use bytes::Bytes;
use ringcast::app::Apps;
use ringcast::cluster::decode::{Decoder, Delivery, Fields};
use ringcast::cluster::scripts::Scripts;
use ringcast::cluster::wire::{self, Encoder};
use ringcast::config::AppConfig;
use ringcast::ids::{AppIdx, ConnKey, ShardId};
use ringcast::state::msg::{Join, OwnerMsg, ShardMsg};
use ringcast_protocol::Limits;
use ringcast_protocol::pusher::channel::ChannelName;
use ringcast_protocol::pusher::socket_id::SocketId;

use crate::support::redis_server::RedisServer;

pub struct Redis {
    pub con: redis::Connection,
    _server: RedisServer,
}

/// A Redis of its own, with the scripts loaded.
pub fn redis() -> Redis {
    let server = RedisServer::start();
    let mut con = server.connection().unwrap();
    Scripts::default().load(&mut con).unwrap();
    Redis {
        con,
        _server: server,
    }
}

/// App "7", with `subscription_count` on.
pub fn apps() -> Arc<Apps> {
    Arc::new(Apps::new(&[AppConfig {
        id: "7".into(),
        key: "k".into(),
        secret: "s".into(),
        subscription_count: true,
        ..AppConfig::default()
    }]))
}

/// One node of the tests: the link's encoder and the node's operation counter.
pub struct Node {
    pub enc: Encoder,
    op: Cell<u64>,
}

pub fn node(apps: &Arc<Apps>, id: &str, max_members: usize) -> Node {
    Node {
        enc: Encoder {
            apps: apps.clone(),
            prefix: "t".into(),
            node: id.into(),
            scripts: Scripts::default(),
            max_members,
        },
        op: Cell::new(0),
    }
}

impl Node {
    /// Registers the node (REGISTER) and answers its mode and the epoch.
    pub fn register(&self, con: &mut redis::Connection, known: &str) -> (String, String) {
        self.enc
            .register(known, "e1", self.op.get(), 30_000, false, self.op.get())
            .query(con)
            .unwrap()
    }

    /// The next operation number.
    pub fn next_op(&self) -> u64 {
        self.op.set(self.op.get() + 1);
        self.op.get()
    }

    /// Runs command `cmd` as operation `op`.
    pub fn run_op(&self, con: &mut redis::Connection, cmd: wire::Command, op: u64) -> redis::Value {
        self.enc
            .encode(&cmd, op, false)
            .unwrap()
            .query(con)
            .unwrap()
    }

    /// Runs `msg` of worker 1 as the next operation.
    pub fn run(&self, con: &mut redis::Connection, msg: OwnerMsg) -> redis::Value {
        let op = self.next_op();
        self.run_op(con, wire::Command::Owner(ShardId(1), msg), op)
    }

    /// Publishes `frame` on `channel` as the next operation.
    pub fn publish(&self, con: &mut redis::Connection, name: &str, frame: Bytes) -> redis::Value {
        let op = self.next_op();
        let items = vec![wire::Item {
            app: AppIdx(0),
            channel: channel(name),
            frame,
            except: None,
            cache: None,
        }];
        self.run_op(con, wire::Command::Publish(items, None), op)
    }

    /// A heartbeat with a lease of `lease_ms`.
    pub fn heartbeat(&self, con: &mut redis::Connection, lease_ms: u64) -> redis::Value {
        self.enc.heartbeat(lease_ms).query(con).unwrap()
    }
}

/// Nodes `ids`, registered.
pub fn registered<const N: usize>(
    con: &mut redis::Connection,
    apps: &Arc<Apps>,
    ids: [&str; N],
    max_members: usize,
) -> [Node; N] {
    ids.map(|id| {
        let n = node(apps, id, max_members);
        n.register(con, "");
        n
    })
}

pub fn channel(name: &str) -> Arc<ChannelName> {
    Arc::new(ChannelName::parse(name, &Limits::default()).unwrap())
}

pub fn join(name: &str, user: Option<&str>, slot: u32) -> OwnerMsg {
    OwnerMsg::Join(Join {
        app: AppIdx(0),
        channel: channel(name),
        from: ShardId(1),
        conn: ConnKey {
            slot,
            generation: 3,
        },
        seq: slot,
        socket_id: SocketId::parse(&format!("{slot}.1")).unwrap(),
        member: user.map(|u| (Arc::from(u), format!(r#"{{"name":"{u}"}}"#))),
        reply: true,
    })
}

pub fn leave(name: &str, user: Option<&str>) -> OwnerMsg {
    OwnerMsg::Leave {
        app: AppIdx(0),
        channel: channel(name),
        user: user.map(Arc::from),
    }
}

/// An inbox entry: its id and its fields.
type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// Every entry of `node`'s inbox, decoded, and the inbox emptied.
pub fn drain(con: &mut redis::Connection, node: &str, apps: &Arc<Apps>) -> Vec<Delivery> {
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

/// A frame's event and data.
pub fn event(f: &Bytes) -> String {
    let header = match f[1] {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let text = String::from_utf8_lossy(&f[header..]).into_owned();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let data = v["data"].as_str().unwrap_or("").to_string();
    format!("{} {data}", v["event"].as_str().unwrap())
}

/// What the deliveries are, as short strings: `answer:<first frame's event>`, or the event of
/// each published frame (with `#<op> from <node>` for a numbered publish).
pub fn summary(ds: &[Delivery]) -> Vec<String> {
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
            Delivery::Op {
                origin,
                op,
                msg: ShardMsg::Publish { frame, .. },
                ..
            } => format!("{} #{op} from {origin}", event(frame)),
            Delivery::All(ShardMsg::ToUser { user, frame, .. }) => {
                format!("to {user}: {}", event(frame))
            }
            other => format!("{other:?}"),
        })
        .collect()
}

/// The keys of the cluster's facts (not the nodes' registrations and leases).
pub fn fact_keys(con: &mut redis::Connection) -> Vec<String> {
    let mut k: Vec<String> = redis::cmd("KEYS").arg("t:*").query(con).unwrap();
    k.retain(|k| {
        !(k == "t:epoch"
            || k == "t:rebuilding"
            || k == "t:nodes"
            || k.starts_with("t:nop:")
            || k.starts_with("t:node:")
            || k.starts_with("t:conns:")
            || k.starts_with("t:inbox:"))
    });
    k.sort();
    k
}

/// Every key under the prefix.
pub fn all_keys(con: &mut redis::Connection) -> Vec<String> {
    let mut k: Vec<String> = redis::cmd("KEYS").arg("t:*").query(con).unwrap();
    k.sort();
    k
}
