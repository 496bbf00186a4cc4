//! The metric families of a scrape, from the workers' reports added up.
//!
//! Names follow the Prometheus conventions: the `ringcast_` prefix, base units in the name
//! (`_bytes`, `_seconds`), `_total` on counters, and gauges for what can go down. The README
//! lists every family; this is the one place that names them.

use ringcast_protocol::Limits;

pub use super::cluster::ClusterInput;
use super::text::{Exposition, Kind};
use crate::ids::AppIdx;
use crate::stats::ops::{ApiRoute, HandshakeFailure, LATENCY_BUCKETS_US, OpsCounters};
use crate::stats::scrape::{AppCensus, CHANNEL_KINDS, MetricsReport};
use crate::stats::wire::Wire;
use crate::stats::{AppCounters, Totals};

/// What the process itself looks like, from `/proc/self`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Process {
    /// Resident memory in bytes.
    pub resident_bytes: u64,
    /// The open-file limit (soft). The number of open descriptors is not read: listing
    /// `/proc/self/fd` walks the whole descriptor table (one entry per connection) and took
    /// most of a scrape's 12 ms at 10,000 connections; `ringcast_connections` is that number
    /// to within a few descriptors per worker.
    pub max_fds: u64,
}

impl Process {
    /// Reads the figures of this process (zero for any that cannot be read).
    pub fn read() -> Process {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let resident_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let max_fds = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Process {
            resident_bytes: resident_kib * 1024,
            max_fds,
        }
    }
}

/// Everything one scrape shows.
pub struct Input<'a> {
    /// One report per worker, in worker order.
    pub reports: &'a [MetricsReport],
    /// Bytes queued in each worker's mesh inbox, in worker order.
    pub mesh_queued: &'a [u64],
    pub limits: &'a Limits,
    pub driver: &'static str,
    /// Seconds since the Unix epoch when the process started.
    pub started: u64,
    pub process: Process,
    /// The cluster link's figures, when scaling is on.
    pub cluster: Option<ClusterInput>,
    /// The webhook senders' counters of each app that has webhooks, by app id; `None`
    /// when no app has any.
    pub webhooks: Option<Vec<(String, crate::stats::WebhookReport)>>,
}

/// The scrape's text.
pub fn render(input: &Input<'_>) -> String {
    let mut e = Exposition::default();
    let reports = input.reports;
    let totals = Totals::sum(reports.iter().map(|r| &r.base));
    // Apps are named by the newest table among the reports (after a reload, every worker has
    // it within one mesh round trip).
    let apps = reports
        .iter()
        .map(|r| r.apps.clone())
        .max_by_key(|a| a.len());
    let app_ids: Vec<(AppIdx, String)> = apps
        .iter()
        .flat_map(|a| a.iter().map(|app| (app.idx, app.cfg.id.clone())))
        .collect();
    let mut census: Vec<AppCensus> = Vec::new();
    let mut ops = OpsCounters::default();
    let mut wire = Wire::default();
    for r in reports {
        for c in &r.census {
            match census.iter_mut().find(|x| x.app == c.app) {
                Some(x) => x.add(c),
                None => census.push(c.clone()),
            }
        }
        ops.add(&r.ops);
        wire.add(&r.wire);
    }

    e.family(
        "ringcast_info",
        Kind::Gauge,
        "Build and runtime facts of this process, as labels; the value is always 1.",
    );
    e.sample(
        "ringcast_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("driver", input.driver),
        ],
        1u64,
    );
    e.family("ringcast_workers", Kind::Gauge, "Worker threads.");
    e.sample("ringcast_workers", &[], reports.len() as u64);
    e.family(
        "ringcast_start_time_seconds",
        Kind::Gauge,
        "When the process started, in seconds since the Unix epoch.",
    );
    e.sample("ringcast_start_time_seconds", &[], input.started);

    let per_app =
        |e: &mut Exposition, name: &str, kind: Kind, help: &str, f: &dyn Fn(AppIdx) -> u64| {
            e.family(name, kind, help);
            for (idx, id) in &app_ids {
                e.sample(name, &[("app", id)], f(*idx));
            }
        };
    let counters = |app: AppIdx| -> AppCounters { totals.app(app).counters };
    per_app(
        &mut e,
        "ringcast_connections",
        Kind::Gauge,
        "Open WebSocket connections.",
        &|a| counters(a).connections(),
    );
    per_app(
        &mut e,
        "ringcast_connections_opened_total",
        Kind::Counter,
        "WebSocket connections accepted (upgraded and admitted).",
        &|a| counters(a).opened,
    );
    per_app(
        &mut e,
        "ringcast_subscriptions",
        Kind::Gauge,
        "Channel subscriptions of the open connections.",
        &|a| totals.app(a).subscriptions,
    );
    let census_of = |app: AppIdx| {
        census
            .iter()
            .find(|c| c.app == app)
            .cloned()
            .unwrap_or_else(|| AppCensus::new(app))
    };
    e.family(
        "ringcast_channels",
        Kind::Gauge,
        "Channels with at least one subscriber, by kind and whether they are cache channels.",
    );
    for (idx, id) in &app_ids {
        let c = census_of(*idx);
        for (k, (_, kind)) in CHANNEL_KINDS.iter().enumerate() {
            for (cache, label) in [(0, "false"), (1, "true")] {
                e.sample(
                    "ringcast_channels",
                    &[("app", id), ("kind", kind), ("cache", label)],
                    c.channels[k][cache],
                );
            }
        }
    }
    per_app(
        &mut e,
        "ringcast_presence_members",
        Kind::Gauge,
        "Members of presence channels (distinct users per channel, summed over channels).",
        &|a| census_of(a).presence_members,
    );
    per_app(
        &mut e,
        "ringcast_users_online",
        Kind::Gauge,
        "Signed-in users with at least one connection.",
        &|a| census_of(a).users_online,
    );
    per_app(
        &mut e,
        "ringcast_ws_messages_received_total",
        Kind::Counter,
        "Text messages received from WebSocket clients.",
        &|a| counters(a).messages_in,
    );
    per_app(
        &mut e,
        "ringcast_ws_messages_sent_total",
        Kind::Counter,
        "Messages sent to WebSocket clients: replies to one connection and fan-out deliveries.",
        &|a| counters(a).messages_out(),
    );
    per_app(
        &mut e,
        "ringcast_deliveries_total",
        Kind::Counter,
        "Channel publishes and user messages handed to a subscriber by the fan-out.",
        &|a| counters(a).deliveries,
    );
    per_app(
        &mut e,
        "ringcast_api_events_total",
        Kind::Counter,
        "Events accepted by the HTTP API, one per channel named.",
        &|a| counters(a).api_events,
    );
    e.family(
        "ringcast_closes_total",
        Kind::Counter,
        "WebSocket connections closed, by close code (1006: gone without a close).",
    );
    for (idx, id) in &app_ids {
        for (code, n) in counters(*idx).closes {
            let code = code.to_string();
            e.sample("ringcast_closes_total", &[("app", id), ("code", &code)], n);
        }
    }

    e.family(
        "ringcast_handshake_failures_total",
        Kind::Counter,
        "WebSocket upgrade requests refused, by reason.",
    );
    for why in HandshakeFailure::ALL {
        e.sample(
            "ringcast_handshake_failures_total",
            &[("reason", why.label())],
            ops.handshake_failures(why),
        );
    }

    e.family(
        "ringcast_ws_frames_written_total",
        Kind::Counter,
        "WebSocket frames the sockets took whole.",
    );
    e.sample("ringcast_ws_frames_written_total", &[], wire.frames);
    e.family(
        "ringcast_ws_written_bytes_total",
        Kind::Counter,
        "Bytes the WebSocket sockets took.",
    );
    e.sample("ringcast_ws_written_bytes_total", &[], wire.bytes);
    e.family(
        "ringcast_ws_write_calls_total",
        Kind::Counter,
        "sendmsg system calls made for WebSocket connections.",
    );
    e.sample("ringcast_ws_write_calls_total", &[], wire.calls);

    e.family(
        "ringcast_http_requests_total",
        Kind::Counter,
        "Pusher HTTP API requests answered, by route and status.",
    );
    for route in ApiRoute::ALL {
        for &(status, n) in &ops.route(route).statuses {
            let status = status.to_string();
            e.sample(
                "ringcast_http_requests_total",
                &[("route", route.label()), ("status", &status)],
                n,
            );
        }
    }
    e.family(
        "ringcast_http_request_duration_seconds",
        Kind::Histogram,
        "Time from a Pusher HTTP API request's whole body to its answer, by route.",
    );
    let bounds: Vec<f64> = LATENCY_BUCKETS_US
        .iter()
        .map(|us| *us as f64 / 1e6)
        .collect();
    // Routes never asked show no histogram: nine routes of seventeen series each would be
    // most of a scrape.
    for route in ApiRoute::ALL {
        let l = &ops.route(route).latency;
        if l.count == 0 {
            continue;
        }
        e.histogram(
            "ringcast_http_request_duration_seconds",
            &[("route", route.label())],
            &bounds,
            &l.buckets,
            l.sum_us as f64 / 1e6,
        );
    }

    e.family(
        "ringcast_mesh_queued_bytes",
        Kind::Gauge,
        "Bytes queued in a worker's inbox from the other workers.",
    );
    for (i, q) in input.mesh_queued.iter().enumerate() {
        e.sample(
            "ringcast_mesh_queued_bytes",
            &[("worker", &i.to_string())],
            *q,
        );
    }
    e.family(
        "ringcast_mesh_limit_bytes",
        Kind::Gauge,
        "The bound of one worker's inbox (max_mesh_bytes).",
    );
    e.sample(
        "ringcast_mesh_limit_bytes",
        &[],
        input.limits.max_mesh_bytes as u64,
    );
    e.family(
        "ringcast_outqueue_bytes",
        Kind::Gauge,
        "Bytes waiting in the out-queues of a worker's connections whose socket was full.",
    );
    for (i, r) in reports.iter().enumerate() {
        e.sample(
            "ringcast_outqueue_bytes",
            &[("worker", &i.to_string())],
            r.queues.bytes,
        );
    }
    e.family(
        "ringcast_outqueue_connections",
        Kind::Gauge,
        "Connections of a worker with anything in their out-queue.",
    );
    for (i, r) in reports.iter().enumerate() {
        e.sample(
            "ringcast_outqueue_connections",
            &[("worker", &i.to_string())],
            r.queues.connections,
        );
    }
    e.family(
        "ringcast_outqueue_largest_bytes",
        Kind::Gauge,
        "The fullest out-queue of a worker's connections.",
    );
    for (i, r) in reports.iter().enumerate() {
        e.sample(
            "ringcast_outqueue_largest_bytes",
            &[("worker", &i.to_string())],
            r.queues.largest,
        );
    }
    e.family(
        "ringcast_outqueue_limit_bytes",
        Kind::Gauge,
        "The bound of one connection's out-queue (max_outbound_bytes); past it, 4100.",
    );
    e.sample(
        "ringcast_outqueue_limit_bytes",
        &[],
        input.limits.max_outbound_bytes as u64,
    );

    e.family(
        "ringcast_resident_memory_bytes",
        Kind::Gauge,
        "Resident memory of the process.",
    );
    e.sample(
        "ringcast_resident_memory_bytes",
        &[],
        input.process.resident_bytes,
    );
    e.family(
        "ringcast_max_fds",
        Kind::Gauge,
        "The open-file limit: one descriptor per connection.",
    );
    e.sample("ringcast_max_fds", &[], input.process.max_fds);
    if let Some(c) = &input.cluster {
        super::cluster::render(&mut e, c);
    }
    if let Some(w) = &input.webhooks {
        super::webhooks::render(&mut e, w);
    }
    e.finish()
}
