//! What this node owes Redis: the operations it holds while Redis cannot take them, and the
//! ones Redis took in the last moments, which a Redis that restarts empty may have lost.
//!
//! # Held operations
//!
//! While Redis is unreachable (or the node is re-asserting its share of the facts), every
//! operation the workers queue is held in order ([`Held`]), counted in the link's bytes like a
//! queued one: the bound that makes the API answer 503 covers what is held, so a long outage
//! costs at most that much memory. A held publish is written to this node's own subscribers
//! at once (they are served as by a lone node), and reaches the other nodes when Redis is
//! back; a held join waits, and its subscriber gets its answer then.
//!
//! # The recent ring
//!
//! A publish Redis ran is in the inboxes of the nodes it is for, which read it within
//! milliseconds. A Redis that restarts without persistence loses what they had not read yet,
//! and a node that was reaped lost its whole inbox. So every publish Redis ran stays here for
//! [`RECENT_KEEP`] (and until this node's own inbox delivered it), as do presence leaves and
//! sign-outs: after a restart the publishes are sent again (the receivers drop those they
//! already have, `super::seen`) and the leaves checked again (`super::rebuild`). The ring is
//! bounded by the same number of bytes as the held operations; past it, the oldest go first.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::wire::{Command, Item};
use crate::ids::AppIdx;
use crate::state::msg::{Channel, UserId};

/// How long an operation Redis ran stays in the ring.
pub const RECENT_KEEP: Duration = Duration::from_secs(2);

/// An operation waiting for Redis.
#[derive(Debug)]
pub struct Held {
    /// Its number on this node.
    pub op: u64,
    pub cmd: Command,
    /// This node's own workers already have what it publishes.
    pub local_done: bool,
    /// Bytes it holds of the link's bound (0 for one sent again from the ring).
    pub cost: usize,
}

/// One operation Redis ran.
#[derive(Debug)]
pub enum Recent {
    /// A publish, and whether Redis wrote a copy to this node's own inbox (it has
    /// subscribers of the channel).
    Publish(Vec<Item>, bool),
    /// A presence member's connection left.
    Departed(AppIdx, Channel, UserId),
    /// A signed-in connection left.
    Offline(AppIdx, UserId),
}

/// The recent ring.
#[derive(Debug)]
pub struct Ring {
    entries: VecDeque<(u64, Instant, Recent)>,
    bytes: usize,
    max_bytes: usize,
}

fn size(r: &Recent) -> usize {
    match r {
        Recent::Publish(items, _) => super::wire::items_cost(items),
        Recent::Departed(_, c, u) => 64 + c.as_str().len() + u.len(),
        Recent::Offline(_, u) => 64 + u.len(),
    }
}

impl Ring {
    /// An empty ring of at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Ring {
        Ring {
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Records operation `op`.
    pub fn push(&mut self, op: u64, r: Recent) {
        self.bytes += size(&r);
        self.entries.push_back((op, Instant::now(), r));
        while self.bytes > self.max_bytes {
            match self.entries.pop_front() {
                Some((_, _, old)) => self.bytes -= size(&old),
                None => break,
            }
        }
    }

    /// Forgets what is older than [`RECENT_KEEP`], except publishes whose copy for this
    /// node's own subscribers its inbox has not delivered yet (numbers above
    /// `delivered_here`).
    pub fn trim(&mut self, delivered_here: Option<u64>) {
        while let Some((op, at, r)) = self.entries.front() {
            let local_pending =
                matches!(r, Recent::Publish(_, true)) && delivered_here.is_none_or(|d| *op > d);
            if at.elapsed() < RECENT_KEEP || local_pending {
                break;
            }
            let size = size(r);
            self.entries.pop_front();
            self.bytes -= size;
        }
    }

    /// The number of the oldest operation kept.
    pub fn oldest(&self) -> Option<u64> {
        self.entries.front().map(|(op, ..)| *op)
    }

    /// The publishes kept, oldest first.
    pub fn publishes(&self) -> impl Iterator<Item = (u64, &[Item])> {
        self.entries.iter().filter_map(|(op, _, r)| match r {
            Recent::Publish(items, _) => Some((*op, items.as_slice())),
            _ => None,
        })
    }

    /// Takes the leaves and sign-outs out of the ring, oldest first.
    pub fn take_departures(&mut self) -> Vec<(u64, Recent)> {
        let mut out = Vec::new();
        let mut keep = VecDeque::with_capacity(self.entries.len());
        for (op, at, r) in self.entries.drain(..) {
            if matches!(r, Recent::Publish(..)) {
                keep.push_back((op, at, r));
            } else {
                self.bytes -= size(&r);
                out.push((op, r));
            }
        }
        self.entries = keep;
        out
    }

    /// Empties the ring, handing back what it held, oldest first.
    pub fn take(&mut self) -> Vec<(u64, Recent)> {
        self.bytes = 0;
        self.entries.drain(..).map(|(op, _, r)| (op, r)).collect()
    }
}
