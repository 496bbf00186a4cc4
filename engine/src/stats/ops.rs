//! What a worker counts for operators beyond the per-app counters: refused WebSocket upgrades
//! by reason, and HTTP API requests by route and status with their latency.
//!
//! Like the rest of `crate::stats`, these are plain integers of one worker, written on its
//! own thread and read only when a metrics scrape asks. Neither is on the fan-out path: an
//! upgrade is counted once per connection attempt, a request once per answer.
//!
//! Labels are closed sets chosen here, never text from a request: a scanner that sends ten
//! thousand made-up paths or app ids adds to `unknown`, not ten thousand series.

use std::time::Duration;

use ringcast_protocol::api::route::{Route, route};
use ringcast_protocol::pusher::error::PusherCode;

/// Why a WebSocket upgrade was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandshakeFailure {
    /// The upgrade request itself is invalid (RFC 6455 section 4.2.1: method, version,
    /// `Upgrade`, `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`).
    BadRequest,
    /// Not `/app/{key}` (4005).
    PathNotFound,
    /// No app has the key (4001).
    AppNotFound,
    /// The app is disabled (4003).
    AppDisabled,
    /// The `Origin` is not in the app's `allowed_origins` (4009).
    OriginNotAllowed,
    /// No `protocol` query parameter (4008).
    NoProtocol,
    /// A protocol version other than 5 to 7 (4007).
    UnsupportedProtocol,
    /// A `protocol` that is not a number (4006).
    InvalidVersion,
    /// The app is at `max_connections` (4004).
    OverQuota,
    /// The server is shutting down or handing over to a new process (4200).
    ShuttingDown,
    /// The 101 answer could not be written (the client went away or stopped reading).
    WriteFailed,
    /// On a TLS port: the TLS handshake or a record before the upgrade failed (plain HTTP sent
    /// to the TLS port, a client that does not trust the certificate, no common version or
    /// cipher).
    Tls,
}

impl HandshakeFailure {
    /// Every reason, in label order.
    pub const ALL: [HandshakeFailure; 12] = [
        Self::BadRequest,
        Self::PathNotFound,
        Self::AppNotFound,
        Self::AppDisabled,
        Self::OriginNotAllowed,
        Self::NoProtocol,
        Self::UnsupportedProtocol,
        Self::InvalidVersion,
        Self::OverQuota,
        Self::ShuttingDown,
        Self::WriteFailed,
        Self::Tls,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::PathNotFound => "path_not_found",
            Self::AppNotFound => "app_not_found",
            Self::AppDisabled => "app_disabled",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::NoProtocol => "no_protocol",
            Self::UnsupportedProtocol => "unsupported_protocol",
            Self::InvalidVersion => "invalid_version",
            Self::OverQuota => "over_quota",
            Self::ShuttingDown => "shutting_down",
            Self::WriteFailed => "write_failed",
            Self::Tls => "tls",
        }
    }

    /// The reason behind a refusal with a Pusher code (the engine refuses upgrades only with
    /// the codes named above; any other is counted as a bad request).
    pub fn of_refusal(code: PusherCode) -> HandshakeFailure {
        match code {
            PusherCode::PathNotFound => Self::PathNotFound,
            PusherCode::AppNotFound => Self::AppNotFound,
            PusherCode::AppDisabled => Self::AppDisabled,
            PusherCode::Unauthorized => Self::OriginNotAllowed,
            PusherCode::NoProtocol => Self::NoProtocol,
            PusherCode::UnsupportedProtocol => Self::UnsupportedProtocol,
            PusherCode::InvalidVersion => Self::InvalidVersion,
            PusherCode::OverQuota => Self::OverQuota,
            PusherCode::Reconnect => Self::ShuttingDown,
            _ => Self::BadRequest,
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// An HTTP API endpoint, as a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiRoute {
    Events,
    BatchEvents,
    LegacyChannelEvents,
    Channels,
    Channel,
    ChannelUsers,
    Connections,
    TerminateUserConnections,
    /// A path under `/apps/` that is no endpoint, or the wrong method for one.
    Unknown,
}

impl ApiRoute {
    /// Every route, in label order.
    pub const ALL: [ApiRoute; 9] = [
        Self::Events,
        Self::BatchEvents,
        Self::LegacyChannelEvents,
        Self::Channels,
        Self::Channel,
        Self::ChannelUsers,
        Self::Connections,
        Self::TerminateUserConnections,
        Self::Unknown,
    ];

    /// The route of `method path` (the path below the prefix), by the protocol crate's router.
    pub fn of(method: &str, path: &str) -> ApiRoute {
        match route(method, path) {
            Ok(Route::Events { .. }) => Self::Events,
            Ok(Route::BatchEvents { .. }) => Self::BatchEvents,
            Ok(Route::LegacyChannelEvents { .. }) => Self::LegacyChannelEvents,
            Ok(Route::Channels { .. }) => Self::Channels,
            Ok(Route::Channel { .. }) => Self::Channel,
            Ok(Route::ChannelUsers { .. }) => Self::ChannelUsers,
            Ok(Route::Connections { .. }) => Self::Connections,
            Ok(Route::TerminateUserConnections { .. }) => Self::TerminateUserConnections,
            Err(_) => Self::Unknown,
        }
    }

    /// The `route` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::BatchEvents => "batch_events",
            Self::LegacyChannelEvents => "legacy_channel_events",
            Self::Channels => "channels",
            Self::Channel => "channel",
            Self::ChannelUsers => "channel_users",
            Self::Connections => "connections",
            Self::TerminateUserConnections => "terminate_user_connections",
            Self::Unknown => "unknown",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Upper bounds of the latency histogram's buckets, in microseconds: 100 µs to 2.5 s. A
/// publish answered on the worker that received it takes well under a millisecond; the upper
/// buckets catch the waits for a busy worker's mesh room (up to 200 ms) and for owners'
/// answers.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000,
];

/// A latency histogram: counts per bucket (not cumulative; the last one is above every
/// bound), their sum and count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    pub buckets: [u64; LATENCY_BUCKETS_US.len() + 1],
    pub sum_us: u64,
    pub count: u64,
}

impl Latency {
    /// Counts one observation.
    pub fn observe(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_US.partition_point(|b| *b < us);
        self.buckets[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.count += 1;
    }

    /// Adds `other`'s observations to these.
    pub fn add(&mut self, other: &Latency) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.count += other.count;
    }
}

/// One route's requests: answers by status, ordered by status, and their latency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteCounters {
    pub statuses: Vec<(u16, u64)>,
    pub latency: Latency,
}

impl RouteCounters {
    fn count_status(&mut self, status: u16, n: u64) {
        match self.statuses.binary_search_by_key(&status, |(s, _)| *s) {
            Ok(i) => self.statuses[i].1 += n,
            Err(i) => self.statuses.insert(i, (status, n)),
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &RouteCounters) {
        for &(s, n) in &other.statuses {
            self.count_status(s, n);
        }
        self.latency.add(&other.latency);
    }
}

/// One worker's refused upgrades and API requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpsCounters {
    /// Refused upgrades, indexed as [`HandshakeFailure::ALL`].
    pub handshake_failures: [u64; HandshakeFailure::ALL.len()],
    /// API requests, indexed as [`ApiRoute::ALL`].
    pub api: Vec<RouteCounters>,
}

impl Default for OpsCounters {
    fn default() -> Self {
        OpsCounters {
            handshake_failures: [0; HandshakeFailure::ALL.len()],
            api: vec![RouteCounters::default(); ApiRoute::ALL.len()],
        }
    }
}

impl OpsCounters {
    /// Counts one refused upgrade.
    pub fn handshake_failed(&mut self, why: HandshakeFailure) {
        self.handshake_failures[why.index()] += 1;
    }

    /// Counts one API answer with `status` after `took`.
    pub fn api_request(&mut self, route: ApiRoute, status: u16, took: Duration) {
        let r = &mut self.api[route.index()];
        r.count_status(status, 1);
        r.latency.observe(took);
    }

    /// Refused upgrades of `why`.
    pub fn handshake_failures(&self, why: HandshakeFailure) -> u64 {
        self.handshake_failures[why.index()]
    }

    /// The counters of `route`.
    pub fn route(&self, route: ApiRoute) -> &RouteCounters {
        &self.api[route.index()]
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &OpsCounters) {
        for (a, b) in self
            .handshake_failures
            .iter_mut()
            .zip(other.handshake_failures.iter())
        {
            *a += b;
        }
        for (a, b) in self.api.iter_mut().zip(other.api.iter()) {
            a.add(b);
        }
    }
}

/// The status code of an HTTP response the engine built (`HTTP/1.1 200 OK...`); 0 when the
/// bytes are not one.
pub fn status_of(response: &[u8]) -> u16 {
    response
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_falls_in_the_first_bucket_that_holds_it() {
        let mut l = Latency::default();
        l.observe(Duration::from_micros(100));
        l.observe(Duration::from_micros(101));
        l.observe(Duration::from_secs(10));
        assert_eq!(l.buckets[0], 1, "a bound is inclusive, as Prometheus' le");
        assert_eq!(l.buckets[1], 1);
        assert_eq!(l.buckets[LATENCY_BUCKETS_US.len()], 1, "beyond every bound");
        assert_eq!(l.count, 3);
        assert_eq!(l.sum_us, 10_000_201);
    }

    #[test]
    fn routes_and_statuses_are_closed_sets() {
        assert_eq!(ApiRoute::of("POST", "/apps/1/events"), ApiRoute::Events);
        assert_eq!(
            ApiRoute::of("GET", "/apps/1/channels/presence-x/users"),
            ApiRoute::ChannelUsers
        );
        assert_eq!(ApiRoute::of("GET", "/apps/1/events"), ApiRoute::Unknown);
        assert_eq!(ApiRoute::of("GET", "/apps/1/nonsense/x"), ApiRoute::Unknown);
        assert_eq!(status_of(b"HTTP/1.1 503 Service Unavailable\r\n"), 503);
        assert_eq!(status_of(b"junk"), 0);
        let mut a = OpsCounters::default();
        a.api_request(ApiRoute::Events, 200, Duration::from_micros(50));
        a.api_request(ApiRoute::Events, 401, Duration::from_micros(50));
        let mut b = OpsCounters::default();
        b.api_request(ApiRoute::Events, 200, Duration::from_millis(3));
        b.handshake_failed(HandshakeFailure::of_refusal(PusherCode::AppNotFound));
        a.add(&b);
        assert_eq!(a.route(ApiRoute::Events).statuses, vec![(200, 2), (401, 1)]);
        assert_eq!(a.route(ApiRoute::Events).latency.count, 3);
        assert_eq!(a.handshake_failures(HandshakeFailure::AppNotFound), 1);
        let labels: std::collections::HashSet<_> =
            HandshakeFailure::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), HandshakeFailure::ALL.len());
    }
}
