//! What shards and owners tell each other.
//!
//! A shard (the connection side of a worker) reaches the owner of a fact only with an
//! [`OwnerMsg`], and an owner answers only with [`ShardMsg`]s and publishes. Nothing else
//! crosses: no shared state, no call into the other side. That is what lets the owner be a
//! worker of this process today, reached over the mesh, or a store shared by several nodes,
//! reached over the network: the messages stay, the transport changes.
//!
//! Every channel travels as a [`Channel`]: the name was validated once where it entered, and
//! every later step asks it what it is instead of testing prefixes again.

use std::sync::Arc;

use bytes::Bytes;
use ringcast_protocol::pusher::channel::ChannelName;
use ringcast_protocol::pusher::socket_id::SocketId;

use crate::ids::{AppIdx, ConnKey, ShardId};

/// A validated channel name, shared by reference count between messages and tables.
pub type Channel = Arc<ChannelName>;

/// A user id, shared by reference count.
pub type UserId = Arc<str>;

/// A message for the owner of a fact: a channel's owner for [`OwnerMsg::Join`],
/// [`OwnerMsg::Leave`] and [`OwnerMsg::Cache`], the app's user owner for
/// [`OwnerMsg::Signin`] and [`OwnerMsg::Signout`].
#[derive(Debug)]
pub enum OwnerMsg {
    /// A connection subscribes.
    Join(Join),
    /// A connection's subscription ended (unsubscribe, close, or a join answered after the
    /// connection no longer wanted it).
    Leave {
        app: AppIdx,
        channel: Channel,
        /// The presence user id it had joined as.
        user: Option<UserId>,
    },
    /// A server event for a cache channel: its owner keeps it for new subscribers and then
    /// publishes it. Both go one way, so a subscriber joining meanwhile gets it exactly once:
    /// as the replay if the owner answers its join after this, live if before.
    Cache {
        app: AppIdx,
        channel: Channel,
        data: String,
        frame: Bytes,
        except: Option<SocketId>,
    },
    /// A connection signed in.
    Signin {
        app: AppIdx,
        user: UserId,
        watchlist: Vec<UserId>,
        from: ShardId,
        conn: ConnKey,
    },
    /// A signed-in connection left.
    Signout {
        app: AppIdx,
        user: UserId,
        watchlist: Vec<UserId>,
    },
}

impl OwnerMsg {
    /// What decides the owner: the channel for channel facts, the app alone for user facts.
    pub fn address(&self) -> OwnerAddress<'_> {
        match self {
            OwnerMsg::Join(j) => OwnerAddress::Channel(j.app, &j.channel),
            OwnerMsg::Leave { app, channel, .. } | OwnerMsg::Cache { app, channel, .. } => {
                OwnerAddress::Channel(*app, channel)
            }
            OwnerMsg::Signin { app, .. } | OwnerMsg::Signout { app, .. } => {
                OwnerAddress::Users(*app)
            }
        }
    }
}

/// Which owner a message is for.
#[derive(Clone, Copy, Debug)]
pub enum OwnerAddress<'a> {
    /// The owner of one channel's facts.
    Channel(AppIdx, &'a ChannelName),
    /// The owner of an app's user facts.
    Users(AppIdx),
}

/// A subscription, as its owner sees it.
#[derive(Debug)]
pub struct Join {
    pub app: AppIdx,
    pub channel: Channel,
    /// The shard of the subscribing connection, where the answer goes.
    pub from: ShardId,
    pub conn: ConnKey,
    /// The join's number on its shard, repeated in the answer: the answer is for the pending
    /// join with this number and no other (an answer that finds none undoes the join).
    pub seq: u32,
    pub socket_id: SocketId,
    /// Presence channels: the member's user id and `user_info` JSON.
    pub member: Option<(UserId, String)>,
    /// Whether the subscriber waits for a [`JoinAnswer`] before it is subscribed (presence and
    /// cache channels, whose first frames come from the owner).
    pub reply: bool,
}

/// The owner's answer to a join that waited for it.
#[derive(Clone, Debug)]
pub struct JoinAnswer {
    pub conn: ConnKey,
    /// The [`Join::seq`] it answers.
    pub seq: u32,
    pub app: AppIdx,
    pub channel: Channel,
    /// The presence user id, repeated for the subscriber's records.
    pub user: Option<UserId>,
    /// Whether the join was counted (a refusal leaves nothing to undo).
    pub accepted: bool,
    /// What the connection is sent: `subscription_succeeded`, the cached event or
    /// `cache_miss`, and the channel's `subscription_count` when the app enables it; or a
    /// `subscription_error`.
    pub frames: Vec<Bytes>,
}

/// A message for a shard, from an owner or from another shard.
#[derive(Clone, Debug)]
pub enum ShardMsg {
    /// Deliver an already-encoded channel frame to the local subscribers of `channel`.
    Publish {
        app: AppIdx,
        channel: Channel,
        frame: Bytes,
        except: Option<SocketId>,
    },
    /// Deliver a frame to every local connection signed in as `user`.
    ToUser {
        app: AppIdx,
        user: UserId,
        frame: Bytes,
    },
    /// Deliver frames to one connection of the receiving shard.
    ToConn { conn: ConnKey, frames: Vec<Bytes> },
    /// The answer to a join that waited for the owner.
    JoinAnswer(JoinAnswer),
    /// Close every local connection signed in as `user` (the API's `terminate_connections`).
    Terminate { app: AppIdx, user: UserId },
}

/// A presence member: its user id and `user_info` JSON.
pub type Member = (UserId, Arc<str>);

/// What one shard's connections hold, as a cluster node re-asserts it in a Redis that lost it
/// (`crate::cluster::rebuild`): the truth the node's share of the cluster-wide facts is
/// rebuilt from.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// One entry per confirmed subscription: the channel and, on a presence channel, the
    /// member's user id and `user_info` JSON.
    pub subs: Vec<(AppIdx, Channel, Option<Member>)>,
    /// One entry per signed-in connection: its user and the user ids it watches.
    pub signins: Vec<(AppIdx, UserId, Vec<UserId>)>,
    /// The [`Join::seq`] of every join still waiting for its answer.
    pub pending: Vec<u32>,
}

impl Snapshot {
    /// Bytes it is counted as in the cluster link's queue.
    pub fn cost(&self) -> usize {
        let member =
            |m: &Option<(UserId, Arc<str>)>| m.as_ref().map_or(0, |(u, i)| u.len() + i.len());
        self.subs
            .iter()
            .map(|(_, c, m)| 32 + c.as_str().len() + member(m))
            .sum::<usize>()
            + self
                .signins
                .iter()
                .map(|(_, u, w)| 32 + u.len() + w.iter().map(|x| 16 + x.len()).sum::<usize>())
                .sum::<usize>()
            + self.pending.len() * 4
    }
}

/// A question about owned facts.
#[derive(Debug)]
pub enum Question {
    /// One channel's counts and cache.
    Channel { app: AppIdx, channel: Channel },
    /// Every occupied channel the owner owns whose name starts with `prefix`.
    Channels { app: AppIdx, prefix: String },
    /// A presence channel's user ids.
    Users { app: AppIdx, channel: Channel },
    /// The nodes serving `app`, with their connections to it and their leases.
    Nodes { app: AppIdx },
}

/// An owner's answer.
#[derive(Debug)]
pub enum Answer {
    Channel(ChannelInfo),
    Channels(Vec<(Channel, ChannelInfo)>),
    Users(Vec<UserId>),
    Nodes(Vec<NodeInfo>),
}

/// One node of the server, as [`Question::Nodes`] is answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's id in the cluster (`crate::cluster::Cluster::node`); empty for a lone node.
    pub id: String,
    /// Its open connections to the app: in a cluster, as its last heartbeat counted them.
    pub connections: u64,
    /// Milliseconds left on its lease; `None` for a lone node, or a lease that has expired.
    pub lease_ms_left: Option<u64>,
}

/// What is known about one channel across the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Subscriptions (connections) on every shard.
    pub subscriptions: u64,
    /// Distinct presence users.
    pub users: u64,
    /// The cached event's data and its remaining seconds.
    pub cache: Option<(String, u64)>,
}
