//! The 3-second delay of `channel_vacated` and `member_removed`, as plain data.
//!
//! Hosted Pusher holds these two webhooks for [`DELAY`] and drops them when the channel is
//! occupied again, or the user joins again, in that time; the `channel_occupied` or
//! `member_added` of that return is then dropped too, so a page reload sends nothing. The
//! owner of a channel keeps one [`Delays`]: a departure goes in with the time it is due, an
//! arrival takes its departure out (and says whether the arrival is news), and the owner's
//! tick takes what is due. Time is an argument, as everywhere in the state core.

use std::collections::HashMap;
use std::time::Instant;

use super::msg::{Channel, UserId};
use crate::ids::AppIdx;
use crate::webhook::DELAY;

/// A departure waiting for its delay: a channel's (no user) or a user's in a channel.
pub type Departure = (AppIdx, Channel, Option<UserId>);

/// Departures waiting for their delay.
#[derive(Debug, Default)]
pub struct Delays {
    /// Each with when it is due and its place in the order they were decided.
    pending: HashMap<Departure, (Instant, u64)>,
    seq: u64,
}

impl Delays {
    /// A departure at `now`: due [`DELAY`] later.
    pub fn departed(&mut self, d: Departure, now: Instant) {
        self.seq += 1;
        self.pending.insert(d, (now + DELAY, self.seq));
    }

    /// An arrival: `true` when it is news (no departure of the same was pending); `false`
    /// when it cancelled one, and neither webhook is to be sent.
    pub fn arrived(&mut self, d: &Departure) -> bool {
        self.pending.remove(d).is_none()
    }

    /// The departures due at `now` (every one with `None`), in the order they were decided;
    /// they are no longer pending.
    pub fn take_due(&mut self, now: Option<Instant>) -> Vec<Departure> {
        let mut due: Vec<(u64, Departure)> = Vec::new();
        self.pending.retain(|d, (at, seq)| {
            let fire = now.is_none_or(|now| *at <= now);
            if fire {
                due.push((*seq, d.clone()));
            }
            !fire
        });
        due.sort_by_key(|(seq, _)| *seq);
        due.into_iter().map(|(_, d)| d).collect()
    }

    /// Departures pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use ringcast_protocol::Limits;
    use ringcast_protocol::pusher::channel::ChannelName;

    use super::*;

    fn dep(ch: &str, user: Option<&str>) -> Departure {
        let name = ChannelName::parse(ch, &Limits::default()).unwrap();
        (AppIdx(0), Arc::new(name), user.map(UserId::from))
    }

    #[test]
    fn a_return_within_the_delay_cancels_and_the_rest_fire_in_order() {
        let t0 = Instant::now();
        let mut d = Delays::default();
        d.departed(dep("presence-a", Some("u")), t0);
        d.departed(dep("presence-a", None), t0);
        d.departed(dep("b", None), t0 + Duration::from_secs(1));
        assert!(d.arrived(&dep("c", None)), "nothing pending: news");
        assert!(
            !d.arrived(&dep("b", None)),
            "b came back: no webhook either way"
        );
        assert!(
            d.take_due(Some(t0 + Duration::from_millis(2999)))
                .is_empty()
        );
        assert_eq!(
            d.take_due(Some(t0 + DELAY)),
            [dep("presence-a", Some("u")), dep("presence-a", None)]
        );
        assert!(d.is_empty());
        d.departed(dep("x", None), t0);
        assert_eq!(d.take_due(None), [dep("x", None)], "all of them at a stop");
    }
}
