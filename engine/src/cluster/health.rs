//! What the cluster link knows about its Redis, for `/metrics`: whether each of its two
//! connections is up, how long round trips take, how often they were lost, how many commands
//! did not run.
//!
//! The two cluster threads write these figures and the metrics thread reads them, so they are
//! atomics. They are written once per pipeline, per `XREAD` or per heartbeat, on the cluster
//! threads, never on a worker: nothing on the fan-out path touches them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the round-trip histogram, in microseconds. A loopback Redis answers in
/// tens of microseconds; a remote one in a few milliseconds; past a second the link is in
/// trouble (its reply timeout is 10 s).
pub const ROUND_TRIP_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// One of the link's two Redis connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// The command thread's: scripts, heartbeats, the API's questions.
    Commands,
    /// The inbox thread's: the node's stream.
    Inbox,
}

impl Connection {
    /// Both, in the order the metrics show them.
    pub const ALL: [Connection; 2] = [Connection::Commands, Connection::Inbox];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Connection::Commands => "commands",
            Connection::Inbox => "inbox",
        }
    }
}

/// The figures of one connection.
#[derive(Debug, Default)]
struct Side {
    up: AtomicBool,
    /// Times the connection was lost (an I/O error or a timeout) since start.
    lost: AtomicU64,
}

/// The link's figures, shared by its threads and the metrics thread.
#[derive(Debug, Default)]
pub struct Health {
    commands: Side,
    inbox: Side,
    /// The last heartbeat's round trip, in microseconds (0 before the first).
    last_heartbeat_us: AtomicU64,
    /// Round trips of the command connection (pipelines and heartbeats), per bucket of
    /// [`ROUND_TRIP_BUCKETS_US`], then above the last bound.
    round_trips: [AtomicU64; ROUND_TRIP_BUCKETS_US.len() + 1],
    round_trip_sum_us: AtomicU64,
    /// Commands that did not run: Redis was unreachable or their script failed.
    failed: AtomicU64,
}

/// A copy of [`Health`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthReport {
    /// Whether each connection of [`Connection::ALL`] is up.
    pub up: [bool; 2],
    /// Times each connection of [`Connection::ALL`] was lost.
    pub lost: [u64; 2],
    pub last_heartbeat_us: u64,
    /// Per bucket, not cumulative; the last is above every bound.
    pub round_trips: Vec<u64>,
    pub round_trip_sum_us: u64,
    pub failed: u64,
}

impl Health {
    fn side(&self, c: Connection) -> &Side {
        match c {
            Connection::Commands => &self.commands,
            Connection::Inbox => &self.inbox,
        }
    }

    /// Records that connection `c` is up (connected and answering).
    pub fn up(&self, c: Connection) {
        self.side(c).up.store(true, Ordering::Relaxed);
    }

    /// Records that connection `c` was lost, counting it once however often it is retried.
    pub fn lost(&self, c: Connection) {
        let side = self.side(c);
        if side.up.swap(false, Ordering::Relaxed) {
            side.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one round trip of the command connection.
    pub fn round_trip(&self, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let bucket = ROUND_TRIP_BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(ROUND_TRIP_BUCKETS_US.len());
        self.round_trips[bucket].fetch_add(1, Ordering::Relaxed);
        self.round_trip_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Records a heartbeat's round trip (also counted by [`Health::round_trip`]).
    pub fn heartbeat(&self, took: Duration) {
        self.round_trip(took);
        let us = took.as_micros().clamp(1, u64::MAX as u128) as u64;
        self.last_heartbeat_us.store(us, Ordering::Relaxed);
    }

    /// Counts `n` commands that did not run.
    pub fn failed(&self, n: usize) {
        self.failed.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The figures now.
    pub fn report(&self) -> HealthReport {
        HealthReport {
            up: Connection::ALL.map(|c| self.side(c).up.load(Ordering::Relaxed)),
            lost: Connection::ALL.map(|c| self.side(c).lost.load(Ordering::Relaxed)),
            last_heartbeat_us: self.last_heartbeat_us.load(Ordering::Relaxed),
            round_trips: self
                .round_trips
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            round_trip_sum_us: self.round_trip_sum_us.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_counts_once_until_the_connection_is_up_again() {
        let h = Health::default();
        h.up(Connection::Inbox);
        h.lost(Connection::Inbox);
        h.lost(Connection::Inbox);
        assert_eq!(h.report().lost, [0, 1]);
        assert_eq!(h.report().up, [false, false]);
        h.up(Connection::Inbox);
        h.lost(Connection::Inbox);
        assert_eq!(h.report().lost, [0, 2]);
    }

    #[test]
    fn round_trips_fall_in_their_bucket() {
        let h = Health::default();
        h.round_trip(Duration::from_micros(50));
        h.round_trip(Duration::from_micros(51));
        h.heartbeat(Duration::from_millis(3));
        h.round_trip(Duration::from_secs(2));
        let r = h.report();
        assert_eq!(r.round_trips[0], 1, "50 us is at most the first bound");
        assert_eq!(r.round_trips[1], 1);
        assert_eq!(r.round_trips[6], 1, "3 ms is in the 5 ms bucket");
        assert_eq!(r.round_trips[ROUND_TRIP_BUCKETS_US.len()], 1, "above 1 s");
        assert_eq!(r.round_trip_sum_us, 50 + 51 + 3_000 + 2_000_000);
        assert_eq!(r.last_heartbeat_us, 3_000);
    }
}
