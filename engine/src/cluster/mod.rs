//! Scale-out: several ringcast nodes on one Redis behave, to every client, like one big node.
//!
//! # The two rules
//!
//! 1. **Every cluster-wide fact is decided in one atomic Redis step**: a Lua script
//!    ([`scripts`]). A user's first connection anywhere, their last one, a channel's first and
//!    last subscriber, a presence channel that is full, a user coming online: each is one
//!    script run, which Redis runs alone, so two nodes can never both decide it or both miss
//!    it, and the Pusher events that follow are written by the same step that decided them.
//!    No node ever asks the other nodes anything (no scatter-gather): a join or a leave is one
//!    round trip to Redis, whatever the size of the cluster.
//! 2. **Every event that must be ordered relative to a subscriber's join travels through one
//!    ordered log per node**: the Redis stream `{P}:inbox:{node}` ([`inbox`]). Publishes from
//!    other nodes, member events, `subscription_count` events, frames for a user,
//!    terminations, and *this node's own join answers*. A script takes the member snapshot and
//!    appends the answer in the same atomic step, so every member event decided after the
//!    snapshot comes after the answer in the joiner's log and every one decided before comes
//!    before: no member event missed, none twice. Since every subscription in a cluster is
//!    confirmed this way (the shard's `confirm_through_owner`), a publish made after a client
//!    saw `subscription_succeeded` always reaches it: the script that answered the join
//!    recorded the node's interest first.
//!
//! A publish made on this node (the HTTP API, a client event) is written to this node's
//! subscribers at once, as on a lone node, and sent through Redis only to the *other* nodes
//! that have subscribers for its channel; it crosses Redis once, as the frame bytes encoded
//! here, with its app, channel and excluded socket id, so `toOthers()` works on every node and
//! no node delivers it twice. A cache channel's event is the exception: it goes through the log
//! of every interested node including this one, because the cache and the live event must
//! reach a joiner in one order (as the lone node sends it through the channel's owner).
//!
//! # Threads
//!
//! Workers never touch Redis and never wait for it. In cluster mode `crate::owner::route`
//! sends every owner message (join, leave, cache event, sign-in, sign-out) and every question
//! to the [`Cluster`] link instead of a worker. The link is a queue bounded in bytes like the
//! mesh, with the same answer when full ([`link`]), in front of a command thread that owns one
//! Redis connection and pipelines whatever is queued; the inbox thread owns a second
//! connection and pushes what it reads into the workers' mesh inboxes. Both are plain OS
//! threads with redis-rs's synchronous client: redis-rs because it is the most used Rust Redis
//! client, maintained with Redis itself, and its sync API needs no async runtime beside monoio
//! (fred would bring tokio for what two blocking loops do).
//!
//! # Keys
//!
//! `{P}` is the prefix (`REVERB_SCALING_CHANNEL`, default `reverb`), `{app}` the app id,
//! `{ch}` a channel name, `{node}` a node id (64 random bits in hex, new at every start). Every
//! fact a node contributes is also recorded under its own id (the `n*` keys), so what a node
//! that vanished contributed can be found and subtracted.
//!
//! | key | type | holds | expiry |
//! |---|---|---|---|
//! | `{P}:node:{node}` | string | the node's lease | `PX` 30 s, renewed every second |
//! | `{P}:nodes` | set | node ids | removed on a clean stop |
//! | `{P}:inbox:{node}` | stream | the node's ordered log | `MAXLEN ~ 100000`; read entries trimmed every second; deleted on a clean stop |
//! | `{P}:int:{app}:{ch}` | set | nodes with local subscribers (interest routing) | removed with the last |
//! | `{P}:nsubs:{node}` | hash | `{app}\0{ch}` -> this node's subscriptions | fields removed at 0 |
//! | `{P}:subs:{app}:{ch}` | hash | node -> subscriptions; the cluster total is the sum | fields removed at 0 |
//! | `{P}:chans:{app}` | set | occupied channels, for `GET /channels` | removed with the last subscriber |
//! | `{P}:pres:{app}:{ch}` | hash | user -> `user_info` JSON: the member list | fields removed with the user |
//! | `{P}:pcnt:{app}:{ch}` | hash | user -> number of nodes that have the user in the channel | fields removed at 0 |
//! | `{P}:npc:{node}` | hash | `{app}\0{ch}\0{user}` -> the user's connections in the channel on this node | fields removed at 0 |
//! | `{P}:cache:{app}:{ch}` | hash | `f` the last event's frame, `d` its data | `PX` the app's `cache_ttl` |
//! | `{P}:uon:{app}` | hash | user -> signed-in connections, cluster-wide | fields removed at 0 |
//! | `{P}:nuon:{node}` | hash | `{app}\0{user}` -> this node's signed-in connections | fields removed at 0 |
//! | `{P}:watch:{app}:{user}` | hash | watcher -> that watcher's connections watching `user` | fields removed at 0 |
//! | `{P}:conns:{app}` | hash | node -> open connections, refreshed every second | field removed on a clean stop |
//! | `{P}:cthr:{app}:{ch}` | string | a throttled `subscription_count` was sent (channels over 100 subscriptions) | `PX` 5 s |
//! | `{P}:cdirty` | hash | `{app}\0{ch}` -> the count frame's JSON around the number, for a count due after its window | fields removed when sent |
//! | `{P}:whv` | hash | `{app}\0{ch}` -> due time (ms): a `channel_vacated` webhook waiting its 3 s | removed when fired, or by the join that cancels it |
//! | `{P}:whr` | hash | `{app}\0{ch}\0{user}` -> due time (ms): a `member_removed` webhook waiting its 3 s | as `whv` |
//! | `{P}:whcd` | hash | `{app}\0{ch}` -> 1: a throttled `subscription_count` webhook, fired 5 s later | removed when fired |
//! | `{P}:whcm:{app}:{ch}` | string | a `cache_miss` webhook was sent (one for simultaneous misses) | `PX` 1 s |
//!
//! # Round trips
//!
//! Each is one `EVALSHA`, pipelined with whatever else is queued:
//!
//! - **join** (every subscribe): 1. JOIN counts the subscription (node, channel, interest),
//!   decides membership and the presence limit, appends the answer to this node's inbox
//!   (the member list, or the cached event), then `member_added` and `subscription_count` to
//!   every interested node's inbox.
//! - **leave**: 1. LEAVE undoes it; `member_removed` after the user's last connection anywhere.
//! - **publish**: 1 per API request (every event and channel of a batch in one PUBLISH, which
//!   writes one inbox entry per other interested node and nothing for the rest); 1 per client
//!   event.
//! - **sign-in / sign-out**: 1 each; **terminate**: 1; **a question** of the HTTP API: 1.
//! - **heartbeat**: 1 per second per node (lease, node set, connection counts).
//! - **webhooks**: none of their own for arrivals (JOIN and LEAVE return the webhook codes of
//!   what they decided, and the calling node sends them); 1 HOOKFIRE per 3 s delay that ends,
//!   for every departure due by then.
//!
//! # Webhooks
//!
//! The script that decides a fact also decides its webhook, and the node that ran it sends it
//! (`crate::webhook`), so each goes out once per cluster. A departure (`channel_vacated`,
//! `member_removed`) is recorded in `{P}:whv` / `{P}:whr` with its due time; the deciding
//! node's link thread keeps a timer and after 3 s runs HOOKFIRE, which sends it only if the
//! entry is still there. A JOIN that brings the channel or the user back removes the entry,
//! so neither webhook is sent; one that comes after the due time but before the fire sends
//! both, the departure first. Webhooks of different nodes are not ordered against each other.
//!
//! # Not in this version
//!
//! A node that vanishes without stopping (SIGKILL, power loss) leaves its contributions in
//! Redis: its members stay in presence lists and its subscriptions in the counts until the
//! keys are cleared (its connection count stops counting once its lease expires). Reaping by a
//! survivor is what the per-node keys are for. When Redis is unreachable, cluster commands are
//! dropped (a waiting join is refused with 503 so the client can retry), and a Redis that comes
//! back empty does not get the nodes' subscriptions back until clients reconnect. A node that
//! vanishes within 3 s of a departure it decided leaves that webhook pending in Redis: it is
//! sent, with its arrival, by the next join of that channel or user, and not before.

pub mod health;
pub mod inbox;
pub mod link;
pub mod scripts;
pub mod wire;

pub use link::Cluster;
pub use wire::{Command, Item};

use crate::mesh::MESSAGE_COST;
use crate::state::Effect;
use crate::state::msg::{OwnerMsg, ShardMsg};

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach Redis at {redis}: {reason}")]
    Unreachable { redis: String, reason: String },
    #[error("cannot start the cluster threads: {0}")]
    Thread(String),
}

impl Cluster {
    /// Sends to the cluster what the other nodes need of a message for every worker, and says
    /// whether this node delivers it itself now: a publish is delivered here at once and sent
    /// to the other interested nodes; a termination reaches every node, this one included,
    /// through the logs; the rest stays on this node.
    pub fn forward(&self, msg: &ShardMsg) -> bool {
        match msg {
            ShardMsg::Publish {
                app,
                channel,
                frame,
                except,
            } => {
                self.send(Command::Publish(vec![Item {
                    app: *app,
                    channel: channel.clone(),
                    frame: frame.clone(),
                    except: *except,
                    cache: None,
                }]));
                true
            }
            ShardMsg::Terminate { app, user } => {
                self.send(Command::Terminate {
                    app: *app,
                    user: user.clone(),
                });
                false
            }
            _ => true,
        }
    }
}

/// The one PUBLISH of an API request's effects (its publishes and cache events, in order), if
/// it has any.
pub fn request(effects: &[Effect]) -> Option<Command> {
    let items: Vec<Item> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::ToAll(ShardMsg::Publish {
                app,
                channel,
                frame,
                except,
            }) => Some(Item {
                app: *app,
                channel: channel.clone(),
                frame: frame.clone(),
                except: *except,
                cache: None,
            }),
            Effect::ToOwner(OwnerMsg::Cache {
                app,
                channel,
                data,
                frame,
                except,
            }) => Some(Item {
                app: *app,
                channel: channel.clone(),
                frame: frame.clone(),
                except: *except,
                cache: Some(data.clone()),
            }),
            _ => None,
        })
        .collect();
    (!items.is_empty()).then_some(Command::Publish(items))
}

/// Bytes [`request`] takes in the link's queue, to reserve before the request is accepted.
pub fn request_cost(effects: &[Effect]) -> usize {
    effects
        .iter()
        .map(|e| match e {
            Effect::ToAll(ShardMsg::Publish { frame, .. }) => MESSAGE_COST + frame.len(),
            Effect::ToOwner(OwnerMsg::Cache { frame, data, .. }) => {
                MESSAGE_COST + frame.len() + data.len()
            }
            _ => 0,
        })
        .sum()
}
