//! What each worker counts about its connections, and how the counts are gathered.
//!
//! Every worker keeps its own [`Stats`]: plain integers, written only by the worker's own
//! thread, next to the state they describe. Nothing is shared, nothing is atomic and nothing
//! is sent anywhere while the server works: a publish to ten thousand subscribers adds the
//! number it delivered to one integer, once, after its fan-out loop. The counts are read only
//! when someone asks: a reader sends every worker a [`MeshMsg::Stats`](crate::mesh::MeshMsg)
//! with a [`Request`], each worker answers with a [`WorkerReport`] built on its own thread
//! (from its counters, its shard's registry and its owner's facts), and the reader adds them
//! up with [`Totals`]. So watching costs one message per worker per look, and not watching
//! costs nothing.
//!
//! Counters only grow (except the open-connection gauge, `opened - removed`), so a reader
//! turns two looks into rates; the dashboard does that in the browser, and a Prometheus
//! exporter can publish them as they are, as `_total` counters, per app and per worker.
//!
//! | counter | counted where |
//! |---|---|
//! | `opened`, `removed` | a WebSocket of the app is added to / removed from the worker |
//! | `messages_in` | a text message arrives from a connection of the app |
//! | `api_events` | the HTTP API accepts an event, once per channel it names |
//! | `sent` | a frame for one connection (a reply, a confirmation, an owner's answer) |
//! | `deliveries` | a channel publish or a user frame handed to a subscriber, in the fan-out |
//! | `closes` | a connection starts closing, by close code; one that vanished without a close counts as 1006 |
//!
//! The webhook senders are threads of their own, not workers: their counters are atomics,
//! one set per app, shared with the workers that queue events (`crate::webhook::Counters`),
//! read all at once with [`webhook_reports`] (per app) or [`webhook_report`] (every app's
//! added up):
//!
//! | counter | counted where |
//! |---|---|
//! | `queued` | an event is put into a webhook's queue (once per webhook that wants it) |
//! | `queue_depth` | events in every webhook's queue now (a gauge) |
//! | `delivered`, `requests` | events and requests answered 2xx |
//! | `failures` | attempts that failed (non-2xx, timeout, refused), retried or not |
//! | `dropped` | events given up after 5 minutes of retries, or left at the shutdown deadline |
//! | `overflowed` | events refused because their webhook's queue was full |
//!
//! Beside the per-app counters, each worker keeps what a metrics scrape asks for as well
//! ([`ops`]: refused upgrades by reason, API requests by route, status and latency; [`wire`]:
//! frames and bytes its sockets took), and answers a scrape with a [`scrape::MetricsReport`].

pub mod ops;
pub mod scrape;
pub mod wire;

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ids::{AppIdx, ShardId};
use crate::state::msg::{Channel, Question, UserId};
use crate::worker::Worker;

/// The code a connection that vanished without a close frame is counted under. RFC 6455
/// section 7.4.1: 1006 "is designated for use in applications expecting a status code to
/// indicate that the connection was closed abnormally, e.g., without sending or receiving a
/// Close control frame".
pub const ABNORMAL_CLOSURE: u16 = 1006;

/// Closes each worker remembers, newest last: enough for "what happened just now" on a
/// dashboard, small enough to copy on every look.
pub const RECENT_CLOSES: usize = 32;

/// The counters of one app on one worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppCounters {
    /// WebSocket connections added.
    pub opened: u64,
    /// WebSocket connections removed.
    pub removed: u64,
    /// Text messages received from clients.
    pub messages_in: u64,
    /// Events accepted by the HTTP API, one per channel.
    pub api_events: u64,
    /// Frames sent to a single connection.
    pub sent: u64,
    /// Frames delivered by fan-out: channel publishes and frames for a user's connections.
    pub deliveries: u64,
    /// Closes by code, ordered by code.
    pub closes: Vec<(u16, u64)>,
}

impl AppCounters {
    /// Open connections.
    pub fn connections(&self) -> u64 {
        self.opened.saturating_sub(self.removed)
    }

    /// Every frame sent to the app's connections.
    pub fn messages_out(&self) -> u64 {
        self.sent + self.deliveries
    }

    fn count_close(&mut self, code: u16, n: u64) {
        match self.closes.binary_search_by_key(&code, |(c, _)| *c) {
            Ok(i) => self.closes[i].1 += n,
            Err(i) => self.closes.insert(i, (code, n)),
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &AppCounters) {
        self.opened += other.opened;
        self.removed += other.removed;
        self.messages_in += other.messages_in;
        self.api_events += other.api_events;
        self.sent += other.sent;
        self.deliveries += other.deliveries;
        for &(code, n) in &other.closes {
            self.count_close(code, n);
        }
    }
}

/// The webhook senders' counters at one instant (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookReport {
    pub queued: u64,
    pub queue_depth: u64,
    pub delivered: u64,
    pub requests: u64,
    pub failures: u64,
    pub dropped: u64,
    pub overflowed: u64,
}

impl WebhookReport {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &WebhookReport) {
        self.queued += other.queued;
        self.queue_depth += other.queue_depth;
        self.delivered += other.delivered;
        self.requests += other.requests;
        self.failures += other.failures;
        self.dropped += other.dropped;
        self.overflowed += other.overflowed;
    }
}

/// The counters of every app that has webhooks now, by app id, in app order.
pub fn webhook_reports(hooks: &crate::webhook::Webhooks) -> Vec<(String, WebhookReport)> {
    use std::sync::atomic::Ordering::Relaxed;
    hooks
        .apps()
        .map(|a| {
            let c = a.counters;
            let report = WebhookReport {
                queued: c.queued.load(Relaxed),
                queue_depth: a.queue_depth,
                delivered: c.delivered.load(Relaxed),
                requests: c.requests.load(Relaxed),
                failures: c.failures.load(Relaxed),
                dropped: c.dropped.load(Relaxed),
                overflowed: c.overflowed.load(Relaxed),
            };
            (a.id.to_string(), report)
        })
        .collect()
}

/// The counters of `hooks` now, every app's added up.
pub fn webhook_report(hooks: &crate::webhook::Webhooks) -> WebhookReport {
    let mut total = WebhookReport::default();
    for (_, r) in webhook_reports(hooks) {
        total.add(&r);
    }
    total
}

/// One close, as the recent-closes list keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseRecord {
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub app: AppIdx,
    pub code: u16,
}

/// One worker's counters.
#[derive(Debug)]
pub struct Stats {
    apps: Vec<AppCounters>,
    recent: VecDeque<CloseRecord>,
    ops: ops::OpsCounters,
}

impl Stats {
    /// Zeroed counters for `apps` apps.
    pub fn new(apps: usize) -> Stats {
        Stats {
            apps: vec![AppCounters::default(); apps],
            recent: VecDeque::with_capacity(RECENT_CLOSES),
            ops: ops::OpsCounters::default(),
        }
    }

    /// Makes room for `apps` apps (a configuration reload added some).
    pub fn grow(&mut self, apps: usize) {
        if self.apps.len() < apps {
            self.apps.resize(apps, AppCounters::default());
        }
    }

    fn app(&mut self, app: AppIdx) -> &mut AppCounters {
        &mut self.apps[app.0 as usize]
    }

    /// A connection of `app` was added.
    pub fn opened(&mut self, app: AppIdx) {
        self.app(app).opened += 1;
    }

    /// A connection of `app` was removed; `closing` tells whether it had started closing
    /// (and so was counted by [`Stats::closed`]) or vanished without a close.
    pub fn removed(&mut self, app: AppIdx, closing: bool) {
        self.app(app).removed += 1;
        if !closing {
            self.closed(app, ABNORMAL_CLOSURE);
        }
    }

    /// A connection of `app` starts closing with `code`.
    pub fn closed(&mut self, app: AppIdx, code: u16) {
        self.app(app).count_close(code, 1);
        if self.recent.len() == RECENT_CLOSES {
            self.recent.pop_front();
        }
        self.recent.push_back(CloseRecord {
            at_ms: unix_ms(),
            app,
            code,
        });
    }

    /// A text message arrived from a connection of `app`.
    pub fn received(&mut self, app: AppIdx) {
        self.app(app).messages_in += 1;
    }

    /// The HTTP API accepted `n` events (counted per channel) for `app`.
    pub fn api_events(&mut self, app: AppIdx, n: u64) {
        self.app(app).api_events += n;
    }

    /// A frame was sent to one connection of `app` (`None`: an echo connection, not counted).
    pub fn sent(&mut self, app: Option<AppIdx>) {
        if let Some(app) = app {
            self.app(app).sent += 1;
        }
    }

    /// A fan-out handed one frame to `n` connections of `app`.
    pub fn delivered(&mut self, app: AppIdx, n: u64) {
        self.app(app).deliveries += n;
    }

    /// A WebSocket upgrade was refused.
    pub fn handshake_failed(&mut self, why: ops::HandshakeFailure) {
        self.ops.handshake_failed(why);
    }

    /// The HTTP API answered `method path` (below the prefix) with `response` after `took`.
    pub fn api_request(&mut self, method: &str, path: &str, response: &[u8], took: Duration) {
        let route = ops::ApiRoute::of(method, path);
        self.ops.api_request(route, ops::status_of(response), took);
    }

    /// Refused upgrades and API requests so far.
    pub fn ops(&self) -> &ops::OpsCounters {
        &self.ops
    }

    /// The counters of `app`.
    pub fn of(&self, app: AppIdx) -> &AppCounters {
        &self.apps[app.0 as usize]
    }

    /// The recent closes, oldest first.
    pub fn recent_closes(&self) -> impl Iterator<Item = &CloseRecord> {
        self.recent.iter()
    }
}

/// What a reader asks every worker for.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// One app, or every app.
    pub app: Option<AppIdx>,
    /// Whether to list the channels this worker owns (with their presence members): the
    /// dashboard wants them, a metrics scrape only wants numbers.
    pub channels: bool,
}

/// One app's figures on one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppReport {
    pub app: AppIdx,
    pub counters: AppCounters,
    /// Subscriptions of this worker's connections.
    pub subscriptions: u64,
}

/// A channel with its cluster-wide counts, from its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelReport {
    pub app: AppIdx,
    pub name: Channel,
    /// Subscriptions on every worker.
    pub subscriptions: u64,
    /// Presence members with their number of connections, ordered by id (empty elsewhere).
    pub members: Vec<(UserId, u32)>,
}

/// One worker's answer to a [`Request`].
#[derive(Clone, Debug)]
pub struct WorkerReport {
    pub worker: ShardId,
    /// Open WebSocket connections of every app on this worker.
    pub connections: u64,
    /// The apps asked for.
    pub apps: Vec<AppReport>,
    /// The channels this worker owns, of the apps asked for, when asked.
    pub channels: Vec<ChannelReport>,
    /// Recent closes of the apps asked for, oldest first.
    pub recent_closes: Vec<CloseRecord>,
}

impl Worker {
    /// This worker's answer to `req`, built from its counters, its registry and its owner.
    pub fn stats_report(&self, req: &Request) -> WorkerReport {
        let wanted = |app: AppIdx| req.app.is_none_or(|a| a == app);
        let apps: Vec<AppIdx> = (0..self.shared.apps.len() as u32)
            .map(AppIdx)
            .filter(|a| wanted(*a))
            .collect();
        let mut channels = Vec::new();
        if req.channels {
            let now = std::time::Instant::now();
            for &app in &apps {
                let q = Question::Channels {
                    app,
                    prefix: String::new(),
                };
                if let crate::state::msg::Answer::Channels(list) = self.owner.answer(&q, now) {
                    for (name, info) in list {
                        let members = if name.is_presence() {
                            self.owner.members(app, &name)
                        } else {
                            Vec::new()
                        };
                        channels.push(ChannelReport {
                            app,
                            name,
                            subscriptions: info.subscriptions,
                            members,
                        });
                    }
                }
            }
        }
        WorkerReport {
            worker: self.id,
            connections: self.len() as u64,
            apps: apps
                .iter()
                .map(|&app| AppReport {
                    app,
                    counters: self.stats.of(app).clone(),
                    subscriptions: self.shard.app_subscriptions(app),
                })
                .collect(),
            channels,
            recent_closes: self
                .stats
                .recent_closes()
                .filter(|c| wanted(c.app))
                .copied()
                .collect(),
        }
    }
}

/// Worker reports added up.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Per app, in the order first seen.
    pub apps: Vec<AppReport>,
    /// Every channel reported (each channel has one owner, so none appears twice).
    pub channels: Vec<ChannelReport>,
    /// Recent closes of every worker, oldest first.
    pub recent_closes: Vec<CloseRecord>,
}

impl Totals {
    /// Adds up `reports`.
    pub fn sum<'a>(reports: impl IntoIterator<Item = &'a WorkerReport>) -> Totals {
        let mut t = Totals::default();
        for r in reports {
            for a in &r.apps {
                match t.apps.iter_mut().find(|x| x.app == a.app) {
                    Some(x) => {
                        x.counters.add(&a.counters);
                        x.subscriptions += a.subscriptions;
                    }
                    None => t.apps.push(a.clone()),
                }
            }
            t.channels.extend(r.channels.iter().cloned());
            t.recent_closes.extend(r.recent_closes.iter().copied());
        }
        t.recent_closes.sort_by_key(|c| c.at_ms);
        t
    }

    /// The summed figures of `app` (zero when no report had it).
    pub fn app(&self, app: AppIdx) -> AppReport {
        self.apps
            .iter()
            .find(|a| a.app == app)
            .cloned()
            .unwrap_or(AppReport {
                app,
                counters: AppCounters::default(),
                subscriptions: 0,
            })
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_are_counted_by_code_and_the_recent_list_is_bounded() {
        let mut s = Stats::new(2);
        let (a, b) = (AppIdx(0), AppIdx(1));
        s.opened(a);
        s.opened(a);
        s.opened(b);
        s.closed(a, 4100);
        s.removed(a, true);
        s.removed(a, false);
        assert_eq!(s.of(a).connections(), 0);
        assert_eq!(s.of(b).connections(), 1);
        assert_eq!(s.of(a).closes, vec![(1006, 1), (4100, 1)]);
        for _ in 0..RECENT_CLOSES + 5 {
            s.closed(b, 4201);
        }
        assert_eq!(s.recent_closes().count(), RECENT_CLOSES);
        assert!(s.recent_closes().all(|c| c.app == b && c.code == 4201));
        assert_eq!(s.of(b).closes, vec![(4201, RECENT_CLOSES as u64 + 5)]);
    }

    #[test]
    fn reports_add_up_per_app() {
        let counters = |opened, deliveries, closes: Vec<(u16, u64)>| AppCounters {
            opened,
            deliveries,
            sent: 1,
            closes,
            ..AppCounters::default()
        };
        let report = |worker, c: AppCounters, at_ms| WorkerReport {
            worker: ShardId(worker),
            connections: c.opened,
            apps: vec![AppReport {
                app: AppIdx(0),
                counters: c,
                subscriptions: 3,
            }],
            channels: Vec::new(),
            recent_closes: vec![CloseRecord {
                at_ms,
                app: AppIdx(0),
                code: 1000,
            }],
        };
        let r0 = report(0, counters(5, 100, vec![(1000, 2), (4100, 1)]), 20);
        let r1 = report(1, counters(7, 50, vec![(1000, 1), (4201, 4)]), 10);
        let t = Totals::sum([&r0, &r1]);
        let a = t.app(AppIdx(0));
        assert_eq!(a.counters.opened, 12);
        assert_eq!(a.counters.messages_out(), 152);
        assert_eq!(a.subscriptions, 6);
        assert_eq!(a.counters.closes, vec![(1000, 3), (4100, 1), (4201, 4)]);
        let at: Vec<u64> = t.recent_closes.iter().map(|c| c.at_ms).collect();
        assert_eq!(at, vec![10, 20], "oldest first across workers");
        assert_eq!(t.app(AppIdx(9)).counters, AppCounters::default());
    }
}
