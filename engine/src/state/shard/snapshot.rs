//! A shard's snapshot: what its connections hold, for a cluster node that re-asserts its share
//! of the cluster-wide facts in a Redis that lost them (a restart without persistence) or
//! dropped them (the node's lease expired and the other nodes reaped it).
//!
//! It is taken from the same tables the rules run on, so it is the truth by construction:
//! every confirmed subscription (with its presence member), every signed-in connection with
//! its watchlist, and the numbers of the joins still waiting for an answer, which tell the
//! cluster link which of the joins it holds must still be sent.

use super::{Entry, Shard};
use crate::state::msg::{Member, Snapshot};

impl<T> Shard<T> {
    /// What this shard's connections hold now.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        for (_, e) in self.conns.iter() {
            let Some(app) = e.app else { continue };
            if e.left {
                continue;
            }
            for sub in &e.subs {
                let ch = &self.registry.get(sub.chan).name;
                let member = member_of(e, ch.as_str());
                snap.subs.push((app, ch.clone(), member));
            }
            if let Some(u) = &e.user {
                if let Some((user, _)) = &u.signed_in {
                    snap.signins.push((app, user.clone(), u.watchlist.clone()));
                }
                snap.pending.extend(u.pending.iter().map(|p| p.seq));
            }
        }
        snap
    }
}

/// The presence member a connection joined `channel` as, with its `user_info` (`null` when
/// it was not kept, which only a lone node does, and a lone node takes no snapshots).
fn member_of<T>(e: &Entry<T>, channel: &str) -> Option<Member> {
    let u = e.user.as_ref()?;
    let (_, user, info) = u.presence.iter().find(|(c, ..)| c.as_str() == channel)?;
    Some((user.clone(), info.clone().unwrap_or_else(|| "null".into())))
}
