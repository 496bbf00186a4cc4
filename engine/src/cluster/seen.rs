//! Which publishes this node delivered: per origin node, the last operation and item.
//!
//! A publish of an API request or a client event carries its origin node, its number there
//! and the place of the event in its request (`super::scripts::PUBLISH`: a batch, or an event
//! triggered on several channels, is one operation of several items), and each origin numbers
//! its operations in the order it runs them, so every inbox holds an origin's publishes in
//! rising numbers, and the items of one in rising places. A node delivers an item only if it
//! comes after the last one it delivered from that origin: a publish that reaches it twice
//! (one sent again after a Redis that restarted empty lost the entries nobody had read yet,
//! or one this node wrote to its own subscribers while Redis was unreachable and whose copy
//! then came back through its inbox) is delivered once, and so is each item of a request that
//! was half read when Redis lost it.
//!
//! Two threads deliver through it: the inbox thread (everything from Redis, item by item) and
//! the command thread (this node's own publishes while Redis cannot carry them back, a request
//! at a time). Each takes the lock for the check and the hand-over to the workers together, so
//! what one delivered the other skips, and the workers get an origin's publishes in rising
//! order from both.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An origin not heard from for this long is forgotten (node ids are new at every start, so
/// a table that kept every one would grow with every restart in the cluster).
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The item place that stands for "every item of the operation".
const WHOLE: u32 = u32::MAX;

/// The last publish of one origin delivered here.
#[derive(Debug)]
struct Last {
    op: u64,
    /// The place of its last item delivered, or [`WHOLE`] once its last item for this node
    /// was.
    item: u32,
    at: Instant,
}

/// The table, shared by the inbox and command threads.
#[derive(Debug, Default)]
pub struct Seen {
    table: Mutex<HashMap<String, Last>>,
}

/// The locked table.
pub struct Guard<'a>(MutexGuard<'a, HashMap<String, Last>>);

impl Seen {
    /// Locks the table for a check and the deliveries it allows.
    pub fn lock(&self) -> Guard<'_> {
        // A thread that panicked while holding it aborts the process (ringcast panics abort),
        // so a poisoned lock is never seen; take it anyway rather than stop delivering.
        Guard(self.table.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Guard<'_> {
    /// Whether item `item` of publish `op` of `origin` is new here; records it if it is
    /// (`end`: it is the last item of the publish for this node).
    pub fn admit(&mut self, origin: &str, op: u64, item: u32, end: bool) -> bool {
        let now = Instant::now();
        let item_now = if end { WHOLE } else { item.min(WHOLE - 1) };
        match self.0.get_mut(origin) {
            Some(last) => {
                last.at = now;
                if (op, item) <= (last.op, last.item) {
                    return false;
                }
                last.op = op;
                last.item = item_now;
                true
            }
            None => {
                self.0.insert(
                    origin.to_string(),
                    Last {
                        op,
                        item: item_now,
                        at: now,
                    },
                );
                true
            }
        }
    }

    /// Records every item of publish `op` of `origin` as delivered, and says from which place
    /// on its items are new here (`None`: none is).
    pub fn admit_rest(&mut self, origin: &str, op: u64) -> Option<usize> {
        let now = Instant::now();
        let from = match self.0.get(origin) {
            Some(last) if op < last.op || (op == last.op && last.item == WHOLE) => None,
            Some(last) if op == last.op => Some(last.item as usize + 1),
            _ => Some(0),
        };
        let last = self.0.entry(origin.to_string()).or_insert(Last {
            op,
            item: WHOLE,
            at: now,
        });
        last.at = now;
        if from.is_some() {
            last.op = op;
            last.item = WHOLE;
        }
        from
    }

    /// The last publish of `origin` of which every item for this node was delivered here,
    /// if any.
    pub fn last(&self, origin: &str) -> Option<u64> {
        self.0.get(origin).and_then(|l| match l.item {
            WHOLE => Some(l.op),
            _ => l.op.checked_sub(1),
        })
    }

    /// Forgets the origins not heard from for [`FORGET_AFTER`], except `keep`.
    pub fn forget_idle(&mut self, keep: &str) {
        self.0
            .retain(|origin, last| origin == keep || last.at.elapsed() < FORGET_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_admitted_in_rising_order_only() {
        let seen = Seen::default();
        let mut g = seen.lock();
        assert!(g.admit("a", 5, 0, true));
        assert!(!g.admit("a", 5, 0, true), "the same publish twice");
        assert!(!g.admit("a", 3, 0, true), "an older one");
        assert!(g.admit("a", 9, 0, true));
        assert!(g.admit("b", 1, 0, true), "origins are apart");
        assert_eq!(g.last("a"), Some(9));
        assert_eq!(g.last("c"), None);
    }

    #[test]
    fn the_items_of_one_publish_are_each_admitted_once() {
        let seen = Seen::default();
        let mut g = seen.lock();
        assert!(g.admit("a", 7, 0, false));
        assert!(
            g.admit("a", 7, 2, false),
            "a later item of the same request"
        );
        assert_eq!(g.last("a"), Some(6), "publish 7 is not whole here yet");
        assert!(!g.admit("a", 7, 2, false), "the same item twice");
        assert!(!g.admit("a", 7, 1, false), "an earlier item");
        assert!(g.admit("a", 7, 4, true));
        assert_eq!(g.last("a"), Some(7));
        assert!(!g.admit("a", 7, 4, true), "its last item twice");
        assert_eq!(g.admit_rest("a", 7), None, "nothing of it is new");
        assert!(
            g.admit("a", 8, 1, false),
            "the next publish, from a later item"
        );
    }

    #[test]
    fn the_rest_of_a_publish_starts_after_what_was_delivered() {
        let seen = Seen::default();
        let mut g = seen.lock();
        assert_eq!(g.admit_rest("a", 3), Some(0), "unknown origin: every item");
        assert_eq!(g.last("a"), Some(3));
        assert!(g.admit("a", 4, 0, false));
        assert!(g.admit("a", 4, 1, false));
        assert_eq!(
            g.admit_rest("a", 4),
            Some(2),
            "items 0 and 1 were delivered"
        );
        assert_eq!(g.last("a"), Some(4));
        assert!(!g.admit("a", 4, 2, false), "delivered with the rest");
        assert_eq!(g.admit_rest("a", 2), None, "an older one");
        assert_eq!(g.admit_rest("a", 5), Some(0));
    }
}
