//! The metric families of the cluster link to Redis, present only when scaling is on: the
//! state of its two connections, the round trips of the command connection, connections lost,
//! calls that did not run, and the depth of the queue in front of the command thread.

use super::text::{Exposition, Kind};
use crate::cluster::health::{Connection, HealthReport, ROUND_TRIP_BUCKETS_US};

/// The link's figures at one scrape.
#[derive(Clone, Debug)]
pub struct ClusterInput {
    /// This node's id in the cluster.
    pub node: String,
    pub health: HealthReport,
    /// Bytes waiting for the command thread.
    pub queued_bytes: u64,
    /// Their bound.
    pub limit_bytes: u64,
}

/// Writes the cluster families.
pub fn render(e: &mut Exposition, c: &ClusterInput) {
    let h = &c.health;
    e.family(
        "ringcast_cluster_node_info",
        Kind::Gauge,
        "This node's id in its cluster, as a label; the value is always 1.",
    );
    e.sample("ringcast_cluster_node_info", &[("node", &c.node)], 1u64);
    let per_connection = |e: &mut Exposition, name: &str, kind: Kind, help: &str, v: [u64; 2]| {
        e.family(name, kind, help);
        for (conn, v) in Connection::ALL.iter().zip(v) {
            e.sample(name, &[("connection", conn.label())], v);
        }
    };
    per_connection(
        e,
        "ringcast_redis_up",
        Kind::Gauge,
        "Whether the link's Redis connection is up (1) or lost and being retried (0).",
        h.up.map(u64::from),
    );
    per_connection(
        e,
        "ringcast_redis_connections_lost_total",
        Kind::Counter,
        "Times the link lost a Redis connection (an I/O error or a timeout).",
        h.lost,
    );
    e.family(
        "ringcast_redis_heartbeat_round_trip_seconds",
        Kind::Gauge,
        "Round trip of the last heartbeat (lease and connection counts, every second).",
    );
    e.sample(
        "ringcast_redis_heartbeat_round_trip_seconds",
        &[],
        h.last_heartbeat_us as f64 / 1e6,
    );
    e.family(
        "ringcast_redis_round_trip_seconds",
        Kind::Histogram,
        "Round trips of the command connection: each pipeline of script calls, each heartbeat.",
    );
    let bounds: Vec<f64> = ROUND_TRIP_BUCKETS_US
        .iter()
        .map(|us| *us as f64 / 1e6)
        .collect();
    e.histogram(
        "ringcast_redis_round_trip_seconds",
        &[],
        &bounds,
        &h.round_trips,
        h.round_trip_sum_us as f64 / 1e6,
    );
    e.family(
        "ringcast_redis_calls_failed_total",
        Kind::Counter,
        "Cluster script calls that did not run: Redis was unreachable or the script failed.",
    );
    e.sample("ringcast_redis_calls_failed_total", &[], h.failed);
    e.family(
        "ringcast_redis_queued_bytes",
        Kind::Gauge,
        "Bytes of cluster commands waiting for the link's command thread.",
    );
    e.sample("ringcast_redis_queued_bytes", &[], c.queued_bytes);
    e.family(
        "ringcast_redis_queue_limit_bytes",
        Kind::Gauge,
        "The bound of that queue (max_mesh_bytes); past it the API answers 503.",
    );
    e.sample("ringcast_redis_queue_limit_bytes", &[], c.limit_bytes);
}
