//! Webhooks: channel and presence lifecycle events posted to the app's own server, as hosted
//! Pusher sends them.
//!
//! # Where an event is decided
//!
//! A webhook reports a fact, so it is decided where the fact is, by the same step that decides
//! the Pusher event that goes with it, and nowhere else:
//!
//! | event | decided by |
//! |---|---|
//! | `channel_occupied`, `channel_vacated` | the channel's owner (`crate::state::Owner`): first subscription, last one gone |
//! | `member_added`, `member_removed` | the channel's owner: a user's first connection in it, their last one gone |
//! | `subscription_count` | the channel's owner, with each change of the count, under the throttle of `pusher_internal:subscription_count`; the webhook does not need the app to send that event to its subscribers (`subscription_count = true`), nor the event the webhook |
//! | `cache_miss` | the channel's owner, when it answers a join with `pusher:cache_miss`, at most once a second per channel |
//! | `client_event` | the sender's shard (`crate::state::Shard`), once the event passed every rule |
//!
//! In a cluster the owner of those facts is Redis: the Lua script that decides a join or a
//! leave also says which webhooks follow, and the node that ran it sends them
//! (`crate::cluster`), so each is sent once per cluster, never once per node.
//!
//! `channel_vacated` and `member_removed` wait [`DELAY`] (hosted Pusher's 3 seconds) and are
//! dropped when the channel is occupied again, or the user joins again, in that time; the
//! `channel_occupied` or `member_added` of that return is then not sent either, so a page
//! reload sends nothing. The wait is kept by whoever decided the fact: the owner's clock
//! (`Owner::tick`), or in a cluster the deciding node's link thread with the pending event in
//! Redis, so that a join on any node cancels it.
//!
//! # How it is sent
//!
//! Workers never wait for a receiver. An event becomes a [`Hook`] in an effect of the state
//! core; the worker hands it to [`Webhooks::emit`], which puts it, for each webhook of the app
//! that wants it, into that webhook's bounded queue (`try_send`: a full queue counts the event
//! as overflowed and logs it, at most every 5 seconds, and the worker goes on). Each webhook
//! has a sender thread of its own ([`sender`]) with its own keep-alive HTTP client, so a slow
//! or dead receiver holds back only its own events. The thread sends in order, one request at
//! a time, retrying a failed one with exponential backoff for up to [`RETRY_FOR`] before it
//! gives up on it (counted and logged). On SIGTERM the threads send what is queued until the
//! shutdown deadline ([`Webhooks::shutdown`]).

pub mod config;
pub mod payload;
pub mod sender;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, TrySendError};
use ringcast_protocol::pusher::socket_id::SocketId;

use crate::app::Apps;
use crate::ids::AppIdx;
use crate::state::msg::{Channel, UserId};
pub use config::WebhookConfig;

/// How long `channel_vacated` and `member_removed` wait for the channel or the user to come
/// back (hosted Pusher's delay).
pub const DELAY: Duration = Duration::from_secs(3);
/// How long a failed request is retried (hosted Pusher's horizon).
pub const RETRY_FOR: Duration = Duration::from_secs(300);
/// Subscribers of one channel that miss its cache within this time cause one `cache_miss`.
pub const CACHE_MISS_EVERY: Duration = Duration::from_secs(1);
/// Least time between two log lines about overflowed events.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The event types, by their Pusher names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    ChannelOccupied,
    ChannelVacated,
    MemberAdded,
    MemberRemoved,
    ClientEvent,
    CacheMiss,
    SubscriptionCount,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 7] = [
        EventKind::ChannelOccupied,
        EventKind::ChannelVacated,
        EventKind::MemberAdded,
        EventKind::MemberRemoved,
        EventKind::ClientEvent,
        EventKind::CacheMiss,
        EventKind::SubscriptionCount,
    ];

    /// The name in `event_types` and in the event's `name` field.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::ChannelOccupied => "channel_occupied",
            EventKind::ChannelVacated => "channel_vacated",
            EventKind::MemberAdded => "member_added",
            EventKind::MemberRemoved => "member_removed",
            EventKind::ClientEvent => "client_event",
            EventKind::CacheMiss => "cache_miss",
            EventKind::SubscriptionCount => "subscription_count",
        }
    }

    /// The kind of a name.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Every name, comma-separated, for error messages.
    pub fn names() -> String {
        EventKind::ALL.map(EventKind::name).join(", ")
    }

    /// This kind's bit in a mask.
    pub fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Whether a mask of kinds includes the vacate pair (either half needs the other's delay).
pub fn wants_occupancy(mask: u8) -> bool {
    mask & (EventKind::ChannelOccupied.bit() | EventKind::ChannelVacated.bit()) != 0
}

/// Whether a mask of kinds includes the member pair.
pub fn wants_members(mask: u8) -> bool {
    mask & (EventKind::MemberAdded.bit() | EventKind::MemberRemoved.bit()) != 0
}

/// One event for an app's webhooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    ChannelOccupied {
        channel: Channel,
    },
    ChannelVacated {
        channel: Channel,
    },
    MemberAdded {
        channel: Channel,
        user_id: UserId,
    },
    MemberRemoved {
        channel: Channel,
        user_id: UserId,
    },
    ClientEvent {
        channel: Channel,
        event: String,
        /// The event's `data` as the client sent it, as JSON.
        data: String,
        socket_id: SocketId,
        /// The sender's presence user id, on presence channels.
        user_id: Option<UserId>,
    },
    CacheMiss {
        channel: Channel,
    },
    SubscriptionCount {
        channel: Channel,
        count: u64,
    },
}

impl Hook {
    /// Its kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Hook::ChannelOccupied { .. } => EventKind::ChannelOccupied,
            Hook::ChannelVacated { .. } => EventKind::ChannelVacated,
            Hook::MemberAdded { .. } => EventKind::MemberAdded,
            Hook::MemberRemoved { .. } => EventKind::MemberRemoved,
            Hook::ClientEvent { .. } => EventKind::ClientEvent,
            Hook::CacheMiss { .. } => EventKind::CacheMiss,
            Hook::SubscriptionCount { .. } => EventKind::SubscriptionCount,
        }
    }

    /// The channel it is about.
    pub fn channel(&self) -> &str {
        match self {
            Hook::ChannelOccupied { channel }
            | Hook::ChannelVacated { channel }
            | Hook::MemberAdded { channel, .. }
            | Hook::MemberRemoved { channel, .. }
            | Hook::ClientEvent { channel, .. }
            | Hook::CacheMiss { channel }
            | Hook::SubscriptionCount { channel, .. } => channel.as_str(),
        }
    }
}

/// One app's webhook counters, shared by the workers and that app's sender threads;
/// `crate::stats` reads them.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events handed to a webhook's queue.
    pub queued: AtomicU64,
    /// Events whose request was answered 2xx.
    pub delivered: AtomicU64,
    /// Requests answered 2xx.
    pub requests: AtomicU64,
    /// Attempts that failed (non-2xx, timeout, connection refused), retried or not.
    pub failures: AtomicU64,
    /// Events given up on: retried for [`RETRY_FOR`], or still pending at the shutdown deadline.
    pub dropped: AtomicU64,
    /// Events refused because their webhook's queue was full.
    pub overflowed: AtomicU64,
}

impl Counters {
    /// Counts `left` events of the webhook to `url` as dropped, and logs them: what was still
    /// unsent when the shutdown's deadline came.
    fn unsent_at_shutdown(&self, url: &str, left: u64) {
        if left > 0 {
            self.dropped.fetch_add(left, Ordering::Relaxed);
            tracing::warn!(
                url = %url,
                events = left,
                "webhook events not sent before the shutdown deadline"
            );
        }
    }
}

/// One webhook at run time: its filter and its queue.
struct Target {
    mask: u8,
    filter: config::Filter,
    tx: Sender<sender::Queued>,
}

/// One webhook's sender thread, as the shutdown sees it.
struct Running {
    thread: JoinHandle<()>,
    url: String,
    /// Its queue, for the events left in it.
    queue: crossbeam_channel::Receiver<sender::Queued>,
    /// The events it holds outside the queue.
    held: Arc<sender::Held>,
    /// Its app's counters.
    counters: Arc<Counters>,
}

/// One app's webhooks and their counters.
struct AppHooks {
    /// The app's id when the senders started: the `app` label of its metrics.
    id: String,
    targets: Vec<Target>,
    counters: Arc<Counters>,
}

/// One app's webhook senders, as a reader of the counters sees them.
#[derive(Debug)]
pub struct AppView<'a> {
    /// The app's id.
    pub id: &'a str,
    pub counters: &'a Counters,
    /// Events waiting in the app's webhook queues now.
    pub queue_depth: u64,
}

/// Every app's webhooks: what the workers hand events to.
pub struct Webhooks {
    /// Per app (by index), its webhooks.
    apps: Vec<AppHooks>,
    start: Instant,
    /// When overflow was last logged, in milliseconds since `start`.
    logged_at: AtomicU64,
    stop: Mutex<Option<Sender<()>>>,
    deadline: Arc<Mutex<Option<Instant>>>,
    threads: Mutex<Vec<Running>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field(
                "webhooks",
                &self.apps.iter().map(|a| a.targets.len()).sum::<usize>(),
            )
            .finish()
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Webhooks {
    /// Starts a sender thread for every webhook of `apps`; `None` when no app has one.
    pub fn start(apps: &Apps) -> std::io::Result<Option<Arc<Webhooks>>> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let deadline = Arc::new(Mutex::new(None));
        let mut threads = Vec::new();
        let mut targets = Vec::with_capacity(apps.len());
        for i in 0..apps.len() {
            let app = apps.get(AppIdx(i as u32));
            let counters = Arc::new(Counters::default());
            let mut list = Vec::new();
            for (n, w) in app.cfg.webhooks.iter().enumerate() {
                let (tx, rx) = crossbeam_channel::bounded(w.max_queue);
                let s = sender::Sender::new(
                    w,
                    &app.cfg.key,
                    &app.cfg.secret,
                    rx.clone(),
                    stop_rx.clone(),
                    deadline.clone(),
                    counters.clone(),
                );
                let held = s.held();
                threads.push(Running {
                    thread: std::thread::Builder::new()
                        .name(format!("ringcast-hook{i}.{n}"))
                        .spawn(move || s.run())?,
                    url: w.url.clone(),
                    queue: rx,
                    held,
                    counters: counters.clone(),
                });
                list.push(Target {
                    mask: w.mask(),
                    filter: w.filter.clone(),
                    tx,
                });
            }
            targets.push(AppHooks {
                id: app.cfg.id.clone(),
                targets: list,
                counters,
            });
        }
        if threads.is_empty() {
            return Ok(None);
        }
        Ok(Some(Arc::new(Webhooks {
            apps: targets,
            start: Instant::now(),
            logged_at: AtomicU64::new(0),
            stop: Mutex::new(Some(stop_tx)),
            deadline,
            threads: Mutex::new(threads),
        })))
    }

    /// Hands `hook` to every webhook of `app` that wants it. Never waits: a full queue counts
    /// the event as overflowed.
    pub fn emit(&self, app: AppIdx, hook: Hook) {
        let Some(app) = self.apps.get(app.0 as usize) else {
            return;
        };
        let bit = hook.kind().bit();
        let at_ms = unix_ms();
        for t in &app.targets {
            if t.mask & bit == 0 || !t.filter.matches(hook.channel()) {
                continue;
            }
            let q = sender::Queued {
                hook: hook.clone(),
                at_ms,
            };
            match t.tx.try_send(q) {
                Ok(()) => {
                    app.counters.queued.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Full(_)) => self.overflowed(app),
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    fn overflowed(&self, app: &AppHooks) {
        let total = app.counters.overflowed.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.start.elapsed().as_millis() as u64;
        let last = self.logged_at.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64)
            && self
                .logged_at
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                app = %app.id,
                overflowed_total = total,
                "a webhook queue is full (its receiver is slow or down); events past max_queue are dropped"
            );
        }
    }

    /// The counters and queue depth of every app that has webhooks, in app order.
    pub fn apps(&self) -> impl Iterator<Item = AppView<'_>> {
        self.apps
            .iter()
            .filter(|a| !a.targets.is_empty())
            .map(|a| AppView {
                id: &a.id,
                counters: &a.counters,
                queue_depth: a.targets.iter().map(|t| t.tx.len() as u64).sum(),
            })
    }

    /// Sends what is queued until `deadline`, then stops every sender thread (what is still
    /// pending then is counted as dropped) and waits for them, half a second past `deadline`
    /// at most: a thread still waiting for its receiver then (a request begun before the
    /// shutdown, with a longer timeout) is left behind, and its events, the request's and the
    /// queue's, are counted as dropped and logged here.
    pub fn shutdown(&self, deadline: Instant) {
        if let Ok(mut d) = self.deadline.lock() {
            *d = Some(deadline);
        }
        if let Ok(mut s) = self.stop.lock() {
            s.take();
        }
        let threads = self
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for r in threads {
            while !r.thread.is_finished() && Instant::now() < deadline + Duration::from_millis(500)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            if r.thread.is_finished() {
                let _ = r.thread.join();
                continue;
            }
            if !r.held.settle() {
                continue;
            }
            r.counters
                .unsent_at_shutdown(&r.url, r.held.take() + r.queue.len() as u64);
        }
    }
}
