//! Per-subscriber checking of one stream of sequence numbers: lost, duplicated and reordered
//! messages.
//!
//! A publisher numbers each channel's messages 0, 1, 2, ... and Pusher servers deliver one
//! channel's messages to a subscriber in publish order, so a subscriber expects exactly that
//! sequence. The tracker keeps the highest number seen and a 64-bit window of which of the 64
//! numbers below it arrived: a number below the highest is a duplicate if its bit is set and a
//! reordered (late) message otherwise. Loss is counted at the end against the number of
//! messages the publisher had accepted, so a message that is late but arrives is not lost.

/// The state for one subscriber; 40 bytes, kept for every client socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqTracker {
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Messages received again.
    pub duplicates: u64,
    /// Messages that arrived after a higher number.
    pub reordered: u64,
    /// First number received.
    pub first: u64,
    /// Highest number received plus one (0: nothing yet).
    pub next: u64,
    /// Bit `i`: number `next - 1 - i` was received.
    window: u64,
}

/// What one received number was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// In order, or ahead after a gap.
    New,
    /// Received before.
    Duplicate,
    /// Below the highest received, first time.
    Late,
}

impl SeqTracker {
    /// Records `seq`.
    pub fn record(&mut self, seq: u64) -> Seen {
        if self.next == 0 && self.unique == 0 {
            self.first = seq;
            self.next = seq + 1;
            self.window = 1;
            self.unique = 1;
            return Seen::New;
        }
        if seq >= self.next {
            let shift = seq - self.next + 1;
            self.window = if shift >= 64 { 0 } else { self.window << shift };
            self.window |= 1;
            self.next = seq + 1;
            self.unique += 1;
            return Seen::New;
        }
        let back = self.next - 1 - seq;
        if back < 64 && self.window & (1 << back) != 0 {
            self.duplicates += 1;
            return Seen::Duplicate;
        }
        if back < 64 {
            self.window |= 1 << back;
        }
        self.reordered += 1;
        self.unique += 1;
        Seen::Late
    }

    /// Messages missing when `published` messages (numbers `0..published`) were accepted by the
    /// server for this subscriber's stream.
    pub fn lost(&self, published: u64) -> u64 {
        published.saturating_sub(self.unique)
    }

    /// Messages missing between the first and the highest received (for subscribers that
    /// joined a stream part-way).
    pub fn gaps(&self) -> u64 {
        if self.unique == 0 {
            0
        } else {
            (self.next - self.first).saturating_sub(self.unique)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_clean() {
        let mut t = SeqTracker::default();
        for s in 0..1000 {
            assert_eq!(t.record(s), Seen::New);
        }
        assert_eq!((t.unique, t.duplicates, t.reordered), (1000, 0, 0));
        assert_eq!(t.lost(1000), 0);
        assert_eq!(t.lost(1003), 3);
        assert_eq!(t.gaps(), 0);
    }

    #[test]
    fn duplicates_late_and_lost_are_told_apart() {
        let mut t = SeqTracker::default();
        for s in [0, 1, 3, 3, 2, 1, 10, 5, 200, 100] {
            t.record(s);
        }
        // unique: 0 1 3 2 10 5 200 100 = 8; duplicates: 3, 1; late: 2, 5, 100.
        assert_eq!(t.unique, 8);
        assert_eq!(t.duplicates, 2);
        assert_eq!(t.reordered, 3);
        assert_eq!(t.lost(201), 201 - 8);
        assert_eq!(t.gaps(), 201 - 8);
    }

    #[test]
    fn a_stream_joined_part_way_counts_gaps_from_its_first_number() {
        let mut t = SeqTracker::default();
        for s in [50, 51, 53] {
            t.record(s);
        }
        assert_eq!(t.first, 50);
        assert_eq!(t.gaps(), 1);
    }

    #[test]
    fn reference_model_agrees_on_random_streams() {
        use std::collections::HashSet;
        let mut x = 88172645463325252u64;
        for _ in 0..200 {
            let mut t = SeqTracker::default();
            let mut seen = HashSet::new();
            let (mut dup, mut late, mut max) = (0, 0, None::<u64>);
            for _ in 0..300 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly increasing numbers with occasional repeats and short steps back.
                let base = max.map_or(0, |m| m + 1);
                let s = match x % 10 {
                    0 => base.saturating_sub(1 + (x >> 8) % 40),
                    1 => base.saturating_sub(1),
                    _ => base + (x >> 8) % 2,
                };
                if !seen.insert(s) {
                    dup += 1;
                } else if max.is_some_and(|m| s < m) {
                    late += 1;
                }
                max = Some(max.map_or(s, |m| m.max(s)));
                t.record(s);
            }
            assert_eq!(t.unique, seen.len() as u64);
            assert_eq!(t.duplicates, dup);
            assert_eq!(t.reordered, late);
        }
    }
}
