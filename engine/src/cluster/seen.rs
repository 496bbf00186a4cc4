//! Which publishes this node delivered: the highest operation number per origin node.
//!
//! A publish of an API request or a client event carries its origin node and its number
//! there (`super::scripts::PUBLISH`), and each origin numbers its operations in the order it
//! runs them, so every inbox holds an origin's publishes in rising numbers. A node delivers a
//! publish only if its number is above the last one it delivered from that origin: a publish
//! that reaches it twice (one sent again after a Redis that restarted empty lost the entries
//! nobody had read yet, or one this node wrote to its own subscribers while Redis was
//! unreachable and whose copy then came back through its inbox) is delivered once.
//!
//! Two threads deliver through it: the inbox thread (everything from Redis) and the command
//! thread (this node's own publishes while Redis cannot carry them back). Each takes the lock
//! for the check and the hand-over to the workers together, so what one delivered the other
//! skips, and the workers get an origin's publishes in rising order from both.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An origin not heard from for this long is forgotten (node ids are new at every start, so
/// a table that kept every one would grow with every restart in the cluster).
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The table, shared by the inbox and command threads.
#[derive(Debug, Default)]
pub struct Seen {
    table: Mutex<HashMap<String, (u64, Instant)>>,
}

/// The locked table.
pub struct Guard<'a>(MutexGuard<'a, HashMap<String, (u64, Instant)>>);

impl Seen {
    /// Locks the table for a check and the deliveries it allows.
    pub fn lock(&self) -> Guard<'_> {
        // A thread that panicked while holding it aborts the process (ringcast panics abort),
        // so a poisoned lock is never seen; take it anyway rather than stop delivering.
        Guard(self.table.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Guard<'_> {
    /// Whether publish `op` of `origin` is new here; records it if it is.
    pub fn admit(&mut self, origin: &str, op: u64) -> bool {
        let now = Instant::now();
        match self.0.get_mut(origin) {
            Some((last, at)) => {
                *at = now;
                if op <= *last {
                    return false;
                }
                *last = op;
                true
            }
            None => {
                self.0.insert(origin.to_string(), (op, now));
                true
            }
        }
    }

    /// The last publish of `origin` delivered here, if any.
    pub fn last(&self, origin: &str) -> Option<u64> {
        self.0.get(origin).map(|(op, _)| *op)
    }

    /// Forgets the origins not heard from for [`FORGET_AFTER`], except `keep`.
    pub fn forget_idle(&mut self, keep: &str) {
        self.0
            .retain(|origin, (_, at)| origin == keep || at.elapsed() < FORGET_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_admitted_in_rising_order_only() {
        let seen = Seen::default();
        let mut g = seen.lock();
        assert!(g.admit("a", 5));
        assert!(!g.admit("a", 5), "the same publish twice");
        assert!(!g.admit("a", 3), "an older one");
        assert!(g.admit("a", 9));
        assert!(g.admit("b", 1), "origins are apart");
        assert_eq!(g.last("a"), Some(9));
        assert_eq!(g.last("c"), None);
    }
}
