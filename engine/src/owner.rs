//! Where each cluster-wide fact lives, and how a message reaches its owner.
//!
//! The Pusher API needs answers about the whole server, not one worker. Each such fact has
//! exactly one owner, an [`Owner`](crate::state::Owner) state machine, so it never needs a lock
//! and never disagrees with itself:
//!
//! | fact | owner |
//! |---|---|
//! | a channel's subscription count, presence members, cached last event | the channel's owner: `fnv1a(app, channel) % workers` ([`channel_owner`]) |
//! | a user's online status and who watches it | the app's user owner: `app % workers` ([`user_owner`]) |
//! | connections per app | the app's atomic counter (`crate::app`) |
//! | which local connections are subscribed, or signed in as a user | each worker's shard, for its own connections |
//! | the webhooks of these facts (`crate::webhook`) | the owner of the fact; `client_event` the sender's shard |
//!
//! Shards reach an owner only with [`OwnerMsg`](crate::state::msg::OwnerMsg)s and hear back
//! only through [`ShardMsg`](crate::state::msg::ShardMsg)s and publishes; [`route`] is the one
//! place that decides where an owner message goes. On a lone node every owner is a worker of
//! this process, reached over the mesh (or, for the worker's own facts, its loopback queue,
//! never a direct call). In a cluster the owner of every one of these facts is Redis, reached
//! through the cluster link (`crate::cluster`), behind the same messages; the connection count
//! stays the app's counter, which adds the other nodes' counts as last refreshed.

use crate::ids::{AppIdx, ShardId};
use crate::state::msg::OwnerAddress;

/// The worker that owns the facts of channel `name` of `app`: the same on every worker.
pub fn channel_owner(app: AppIdx, name: &str, workers: usize) -> ShardId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in app.0.to_le_bytes().iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ShardId((h % workers.max(1) as u64) as u16)
}

/// The worker that owns the user facts (online status, watchlists) of `app`.
pub fn user_owner(app: AppIdx, workers: usize) -> ShardId {
    ShardId((app.0 as usize % workers.max(1)) as u16)
}

/// Where an owner message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerRoute {
    /// To the owner of this worker.
    Worker(ShardId),
    /// To the cluster link: the facts are the cluster's.
    Cluster,
}

/// Where a message for `address` goes: in a cluster, always to the cluster link; otherwise to
/// its owner among `workers`.
pub fn route(address: OwnerAddress<'_>, workers: usize, clustered: bool) -> OwnerRoute {
    if clustered {
        return OwnerRoute::Cluster;
    }
    OwnerRoute::Worker(match address {
        OwnerAddress::Channel(app, name) => channel_owner(app, name.as_str(), workers),
        OwnerAddress::Users(app) => user_owner(app, workers),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_stable_and_spread() {
        let a = channel_owner(AppIdx(0), "presence-room", 4);
        assert_eq!(a, channel_owner(AppIdx(0), "presence-room", 4));
        let mut seen = [0usize; 4];
        for i in 0..1000 {
            seen[channel_owner(AppIdx(0), &format!("c{i}"), 4).0 as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 150), "{seen:?}");
        assert_eq!(channel_owner(AppIdx(3), "x", 1), ShardId(0));
        assert_eq!(user_owner(AppIdx(3), 2), ShardId(1));
    }
}
