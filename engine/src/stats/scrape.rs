//! One worker's answer to a metrics scrape: its [`WorkerReport`] plus what an operator's
//! monitoring needs and the dashboard does not (refused upgrades, API requests, writes,
//! out-queue depth, channels by kind).
//!
//! A scrape sends every worker one [`MeshMsg::Metrics`](crate::mesh::MeshMsg); each builds
//! its [`MetricsReport`] on its own thread and the exporter (`crate::metrics`) adds them up.
//! The cost lands on the workers only when someone scrapes, proportional to what they hold
//! (one pass over the connections for the queue depth, one over the channels they own).

use std::sync::Arc;

use ringcast_protocol::pusher::channel::{ChannelKind, is_cache_name, kind_of};

use super::ops::OpsCounters;
use super::wire::{self, Wire};
use super::{Request, WorkerReport};
use crate::app::Apps;
use crate::ids::AppIdx;
use crate::worker::Worker;

/// Channel kinds as the `kind` label of the channel count.
pub const CHANNEL_KINDS: [(ChannelKind, &str); 5] = [
    (ChannelKind::Public, "public"),
    (ChannelKind::Private, "private"),
    (ChannelKind::EncryptedPrivate, "private_encrypted"),
    (ChannelKind::Presence, "presence"),
    (ChannelKind::ServerToUser, "server_to_user"),
];

/// The channels of one app that a worker owns, as counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppCensus {
    pub app: AppIdx,
    /// Occupied channels, indexed as [`CHANNEL_KINDS`], split into not-cache `[0]` and cache
    /// `[1]` channels.
    pub channels: [[u64; 2]; CHANNEL_KINDS.len()],
    /// Members of the presence channels (a user in two channels counts twice).
    pub presence_members: u64,
    /// Signed-in users online (counted by the app's user owner only).
    pub users_online: u64,
}

impl AppCensus {
    /// Nothing counted yet for `app`.
    pub fn new(app: AppIdx) -> AppCensus {
        AppCensus {
            app,
            channels: [[0; 2]; CHANNEL_KINDS.len()],
            presence_members: 0,
            users_online: 0,
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &AppCensus) {
        for (a, b) in self.channels.iter_mut().zip(other.channels.iter()) {
            a[0] += b[0];
            a[1] += b[1];
        }
        self.presence_members += other.presence_members;
        self.users_online += other.users_online;
    }
}

/// What one worker's outbound queues hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Bytes queued for connections whose socket was full.
    pub bytes: u64,
    /// Connections with anything queued.
    pub connections: u64,
    /// The most queued for one connection.
    pub largest: u64,
}

/// One worker's answer to a metrics scrape.
#[derive(Clone, Debug)]
pub struct MetricsReport {
    /// Per-app counters and subscriptions, as the dashboard's reports.
    pub base: WorkerReport,
    /// The app table this worker serves, to name the apps of the report.
    pub apps: Arc<Apps>,
    /// The channels this worker owns, per app.
    pub census: Vec<AppCensus>,
    /// Refused upgrades and API requests.
    pub ops: OpsCounters,
    /// What this worker's WebSocket sockets took.
    pub wire: Wire,
    /// This worker's outbound queues.
    pub queues: QueueDepth,
}

impl Worker {
    /// This worker's answer to a metrics scrape.
    pub fn metrics_report(&mut self) -> MetricsReport {
        let base = self.stats_report(&Request {
            app: None,
            channels: false,
        });
        let apps = self.shared.apps.clone();
        let census = (0..apps.len() as u32)
            .map(AppIdx)
            .map(|app| {
                let mut c = AppCensus::new(app);
                c.users_online = self.owner.users_online(app) as u64;
                for (name, _, members) in self.owner.occupied(app) {
                    let kind = kind_of(name.as_str());
                    let k = CHANNEL_KINDS
                        .iter()
                        .position(|(k, _)| *k == kind)
                        .unwrap_or(0);
                    c.channels[k][usize::from(is_cache_name(name.as_str()))] += 1;
                    c.presence_members += members as u64;
                }
                c
            })
            .collect();
        let mut queues = QueueDepth::default();
        for (_, _, conn) in self.shard.iter_mut() {
            let n = conn.out.bytes() as u64;
            if n > 0 {
                queues.bytes += n;
                queues.connections += 1;
                queues.largest = queues.largest.max(n);
            }
        }
        MetricsReport {
            base,
            apps,
            census,
            ops: self.stats.ops().clone(),
            wire: wire::current(),
            queues,
        }
    }
}
