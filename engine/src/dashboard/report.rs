//! The document a stats publish carries: one app's figures, added up over every worker.
//!
//! ```text
//! {
//!   "at": 1764600000000,                       wall clock, ms since the epoch
//!   "app": "1001",
//!   "connections": 3, "subscriptions": 5,      open now; subscriptions leave out the watchers'
//!   "watchers": 1,                             subscriptions to the stats channel itself
//!   "counters": {"messages_in": .., "api_events": .., "messages_out": .., "deliveries": ..,
//!                "sent": .., "opened": ..},    totals since start: the page derives rates
//!   "closes": [{"code": 4100, "count": 2, "reason": "Over capacity"}],
//!   "recent_closes": [{"at": .., "code": 4201, "reason": ".."}],
//!   "channels": {"total": 2, "list": [{"name": "sales", "subscriptions": 2}, ...]},
//!   "presence": [{"channel": "presence-doc", "users": 2,
//!                 "members": [{"id": "1", "connections": 1}, ...]}],
//!   "nodes": [{"id": "", "name": "host (pid 42)", "this": true, "started_at": ..,
//!              "lease_age_secs": null, "lease_ms_left": null,
//!              "connections": 3, "workers": [{"id": 0, "connections": 2, "answered": true}]}]
//! }
//! ```
//!
//! With scaling on, `nodes` lists every node of `{P}:nodes` by id (sorted), as Redis answered
//! [`Question::Nodes`](crate::state::msg::Question::Nodes): each with its connections to the app
//! (this node's counted live here, the others' as their last heartbeat wrote them),
//! `lease_ms_left` (the lease's PTTL) and `lease_age_secs`, the time since the node last renewed
//! its lease: the lease's length ([`ClusterView::lease`]) minus what is left, to a tenth of a second (about 0 to 1 for a node that
//! renews every second; `null` once the lease has expired). Only this node has `workers` and
//! `started_at`; when Redis did not answer in time, this node is listed alone.
//!
//! Lists are bounded so that a publish stays small whatever the app does: the busiest
//! [`MAX_CHANNELS`] channels, the [`MAX_PRESENCE`] busiest presence channels with at most
//! [`MAX_MEMBERS`] members each; the totals say how many there are in all.

use ringcast_protocol::pusher::error::PusherCode;
use ringcast_protocol::ws::close::CloseCode;
use serde_json::{Value, json};

use super::CHANNEL_PREFIX;
use crate::ids::{AppIdx, ShardId};
use crate::state::msg::NodeInfo;
use crate::stats::{ABNORMAL_CLOSURE, ChannelReport, Totals, WorkerReport};

/// Channels listed, busiest first.
pub const MAX_CHANNELS: usize = 200;
/// Presence channels whose members are listed, busiest first.
pub const MAX_PRESENCE: usize = 50;
/// Members listed per presence channel.
pub const MAX_MEMBERS: usize = 100;

/// This process, as an entry of the node list.
#[derive(Clone, Debug)]
pub struct Node {
    /// Host name and process id.
    pub name: String,
    /// When it started, ms since the epoch.
    pub started_at_ms: u64,
}

impl Node {
    /// This process.
    pub fn this(started_at_ms: u64) -> Node {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        Node {
            name: format!("{host} (pid {})", std::process::id()),
            started_at_ms,
        }
    }
}

/// What a clustered node knows of the cluster for a document.
#[derive(Clone, Copy, Debug)]
pub struct ClusterView<'a> {
    /// This node's id.
    pub this: &'a str,
    /// The nodes as Redis listed them, or `None` when it did not answer in time.
    pub nodes: Option<&'a [NodeInfo]>,
    /// How long a lease lasts (`crate::cluster::Cluster::lease`).
    pub lease: std::time::Duration,
}

/// Seconds since a lease with `left_ms` to run was renewed, to a tenth.
pub fn lease_age_secs(left_ms: u64, lease: std::time::Duration) -> f64 {
    let lease = lease.as_millis() as u64;
    (lease.saturating_sub(left_ms) / 100) as f64 / 10.0
}

/// What a close code means, for the operator.
pub fn close_reason(code: u16) -> &'static str {
    if code == ABNORMAL_CLOSURE {
        return "Closed without a close frame";
    }
    if code == CloseCode::NO_STATUS.0 {
        return "Closed by the client without a code";
    }
    match PusherCode::from_code(code) {
        Some(c) => c.message(),
        None => CloseCode(code).reason(),
    }
}

/// The stats document of `app` (whose id is `app_id`) from the `reports` of the workers that
/// answered, out of `workers`, at `at_ms`.
pub fn document(
    app: AppIdx,
    app_id: &str,
    node: &Node,
    workers: usize,
    reports: &[WorkerReport],
    cluster: Option<ClusterView<'_>>,
    at_ms: u64,
) -> Value {
    let totals = Totals::sum(reports);
    let mine = totals.app(app);
    let c = &mine.counters;
    let (watch, mut channels): (Vec<ChannelReport>, Vec<ChannelReport>) = totals
        .channels
        .into_iter()
        .filter(|ch| ch.app == app)
        .partition(|ch| ch.name.as_str().starts_with(CHANNEL_PREFIX));
    let watchers: u64 = watch.iter().map(|ch| ch.subscriptions).sum();
    channels.sort_by(|a, b| {
        b.subscriptions
            .cmp(&a.subscriptions)
            .then_with(|| a.name.as_str().cmp(b.name.as_str()))
    });
    let list: Vec<Value> = channels
        .iter()
        .take(MAX_CHANNELS)
        .map(|ch| {
            let mut v = json!({"name": ch.name.as_str(), "subscriptions": ch.subscriptions});
            if ch.name.is_presence() {
                v["users"] = ch.members.len().into();
            }
            v
        })
        .collect();
    let presence: Vec<Value> = channels
        .iter()
        .filter(|ch| ch.name.is_presence())
        .take(MAX_PRESENCE)
        .map(|ch| {
            let members: Vec<Value> = ch
                .members
                .iter()
                .take(MAX_MEMBERS)
                .map(|(id, n)| json!({"id": &**id, "connections": n}))
                .collect();
            json!({"channel": ch.name.as_str(), "users": ch.members.len(), "members": members})
        })
        .collect();
    let closes: Vec<Value> = c
        .closes
        .iter()
        .map(|&(code, count)| json!({"code": code, "count": count, "reason": close_reason(code)}))
        .collect();
    let recent: Vec<Value> = totals
        .recent_closes
        .iter()
        .rev()
        .map(|r| json!({"at": r.at_ms, "code": r.code, "reason": close_reason(r.code)}))
        .collect();
    let per_worker: Vec<Value> = (0..workers)
        .map(|i| {
            let r = reports.iter().find(|r| r.worker == ShardId(i as u16));
            let connections = r
                .and_then(|r| r.apps.iter().find(|a| a.app == app))
                .map_or(0, |a| a.counters.connections());
            json!({"id": i, "connections": connections, "answered": r.is_some()})
        })
        .collect();
    let this = json!({
        "id": cluster.map_or("", |v| v.this),
        "name": node.name,
        "this": true,
        "started_at": node.started_at_ms,
        "lease_age_secs": Value::Null,
        "lease_ms_left": Value::Null,
        "connections": c.connections(),
        "workers": per_worker,
    });
    let nodes = match cluster.and_then(|v| Some((v.this, v.nodes?, v.lease))) {
        Some((me, listed, lease)) => {
            let mut listed: Vec<&NodeInfo> = listed.iter().collect();
            listed.sort_by(|a, b| a.id.cmp(&b.id));
            let mut out: Vec<Value> = listed
                .iter()
                .map(|n| {
                    let (mut v, age) = if n.id == me {
                        (this.clone(), n.lease_ms_left)
                    } else {
                        let v = json!({
                            "id": n.id, "name": n.id, "this": false,
                            "connections": n.connections, "workers": [],
                        });
                        (v, n.lease_ms_left)
                    };
                    v["lease_ms_left"] = age.into();
                    v["lease_age_secs"] = age.map(|a| lease_age_secs(a, lease)).into();
                    v
                })
                .collect();
            if !listed.iter().any(|n| n.id == me) {
                out.push(this);
            }
            out
        }
        None => vec![this],
    };
    json!({
        "at": at_ms,
        "app": app_id,
        "connections": c.connections(),
        "subscriptions": mine.subscriptions.saturating_sub(watchers),
        "watchers": watchers,
        "counters": {
            "messages_in": c.messages_in,
            "api_events": c.api_events,
            "messages_out": c.messages_out(),
            "deliveries": c.deliveries,
            "sent": c.sent,
            "opened": c.opened,
        },
        "closes": closes,
        "recent_closes": recent,
        "channels": {"total": channels.len(), "list": list},
        "presence": presence,
        "nodes": nodes,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ringcast_protocol::pusher::channel::ChannelName;

    use super::*;
    use crate::stats::{AppCounters, AppReport, CloseRecord};

    fn channel(app: u32, name: &str, subs: u64, members: &[&str]) -> ChannelReport {
        ChannelReport {
            app: AppIdx(app),
            name: Arc::new(ChannelName::parse(name, &Default::default()).unwrap()),
            subscriptions: subs,
            members: members.iter().map(|m| (Arc::from(*m), 1)).collect(),
        }
    }

    fn worker(id: u16, opened: u64, channels: Vec<ChannelReport>) -> WorkerReport {
        WorkerReport {
            worker: ShardId(id),
            connections: opened + 7,
            apps: vec![AppReport {
                app: AppIdx(0),
                counters: AppCounters {
                    opened,
                    removed: 1,
                    closes: vec![(4201, 1)],
                    ..AppCounters::default()
                },
                subscriptions: 4,
            }],
            channels,
            recent_closes: vec![CloseRecord {
                at_ms: u64::from(id),
                app: AppIdx(0),
                code: 4201,
            }],
        }
    }

    #[test]
    fn one_app_over_every_worker_without_the_stats_channel() {
        let stats = super::super::channel_name("s");
        let reports = [
            worker(
                0,
                3,
                vec![
                    channel(0, "sales", 2, &[]),
                    channel(0, &stats, 1, &[]),
                    channel(1, "other-app", 9, &[]),
                ],
            ),
            worker(1, 2, vec![channel(0, "presence-doc", 3, &["1", "2"])]),
        ];
        let node = Node {
            name: "n".into(),
            started_at_ms: 5,
        };
        let doc = document(AppIdx(0), "1001", &node, 3, &reports, None, 99);
        assert_eq!(doc["connections"], 3, "opened 5, removed 2");
        assert_eq!(doc["subscriptions"], 7, "8 minus the watcher's");
        assert_eq!(doc["watchers"], 1);
        assert_eq!(doc["channels"]["total"], 2);
        let names: Vec<&str> = doc["channels"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["presence-doc", "sales"],
            "busiest first, no stats channel"
        );
        assert_eq!(doc["channels"]["list"][0]["users"], 2);
        assert_eq!(doc["presence"][0]["members"][1]["id"], "2");
        assert_eq!(
            doc["closes"][0],
            json!({"code": 4201, "count": 2, "reason": "Pong reply not received in time"})
        );
        assert_eq!(doc["recent_closes"][0]["at"], 1, "newest first");
        let workers = &doc["nodes"][0]["workers"];
        assert_eq!(
            workers[0],
            json!({"id": 0, "connections": 2, "answered": true})
        );
        assert_eq!(
            workers[2],
            json!({"id": 2, "connections": 0, "answered": false})
        );
        assert!(doc["nodes"][0]["lease_age_secs"].is_null());
    }

    #[test]
    fn a_clustered_node_lists_every_node_with_its_lease_age() {
        let reports = [worker(0, 3, vec![])];
        let node = Node {
            name: "host (pid 1)".into(),
            started_at_ms: 5,
        };
        let listed = [
            NodeInfo {
                id: "bb".into(),
                connections: 4,
                lease_ms_left: Some(29_250),
            },
            NodeInfo {
                id: "aa".into(),
                connections: 9,
                lease_ms_left: Some(30_000),
            },
            NodeInfo {
                id: "cc".into(),
                connections: 1,
                lease_ms_left: None,
            },
        ];
        let view = ClusterView {
            this: "aa",
            nodes: Some(&listed),
            lease: std::time::Duration::from_secs(30),
        };
        let doc = document(AppIdx(0), "1001", &node, 1, &reports, Some(view), 99);
        let nodes = doc["nodes"].as_array().unwrap();
        let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["aa", "bb", "cc"]);
        assert_eq!(nodes[0]["this"], true);
        assert_eq!(nodes[0]["name"], "host (pid 1)");
        assert_eq!(nodes[0]["connections"], 2, "this node's own count, live");
        assert_eq!(nodes[0]["lease_age_secs"], 0.0);
        assert_eq!(nodes[1]["this"], false);
        assert_eq!(nodes[1]["connections"], 4);
        assert_eq!(nodes[1]["lease_age_secs"], 0.7);
        assert_eq!(nodes[1]["lease_ms_left"], 29_250);
        assert!(nodes[2]["lease_age_secs"].is_null(), "an expired lease");

        let silent = ClusterView {
            this: "aa",
            nodes: None,
            lease: std::time::Duration::from_secs(30),
        };
        let doc = document(AppIdx(0), "1001", &node, 1, &reports, Some(silent), 99);
        assert_eq!(doc["nodes"].as_array().unwrap().len(), 1);
        assert_eq!(doc["nodes"][0]["id"], "aa");
    }

    #[test]
    fn close_reasons() {
        assert_eq!(close_reason(4100), "Over capacity");
        assert_eq!(close_reason(1000), "Normal closure");
        assert_eq!(close_reason(1006), "Closed without a close frame");
        assert_eq!(close_reason(3999), "");
    }
}
