//! Scale-out: several ringcast nodes on one Redis behave, to every client, like one big node.
//!
//! # The three rules
//!
//! 1. **Every cluster-wide fact is decided in one atomic Redis step**: a Lua script
//!    ([`scripts`]). A user's first connection anywhere, their last one, a channel's first and
//!    last subscriber, a presence channel that is full, a user coming online, a dead node's
//!    removal: each is one script run, which Redis runs alone, so two nodes can never both
//!    decide it or both miss it, and the Pusher events that follow are written by the same
//!    step that decided them. No node ever asks the other nodes anything (no scatter-gather):
//!    a join or a leave is one round trip to Redis, whatever the size of the cluster.
//! 2. **Every event a node delivers travels through one ordered log per node**: the Redis
//!    stream `{P}:inbox:{node}` ([`inbox`]). Publishes (this node's own included), member
//!    events, `subscription_count` events, frames for a user, terminations, and this node's
//!    join answers. A script takes the member snapshot and appends the answer in the same
//!    atomic step, so every member event decided after the snapshot comes after the answer in
//!    the joiner's log and every one decided before comes before: no member event missed, none
//!    twice. Since every subscription in a cluster is confirmed this way (the shard's
//!    `confirm_through_owner`), a publish made after a client saw `subscription_succeeded`
//!    always reaches it. And since a publish reaches every node, its own too, in the order
//!    Redis ran it, two publishes made one after the other (the second sent once the API
//!    answered the first) arrive in that order on every node, whichever nodes took them.
//! 3. **What a node contributes is recorded under its id and lives with its lease**: a node
//!    that vanishes is reaped by a survivor in one script, with the events (and webhooks) that
//!    follow, and a node that Redis forgot (reaped, or a Redis that lost its data) puts its
//!    share back from what its connections hold ([`rebuild`]), never from what it remembers
//!    sending.
//!
//! A publish crosses Redis once, as the frame bytes encoded on the publishing node, with its
//! app, channel and excluded socket id (so `toOthers()` works on every node), and only to the
//! nodes that have subscribers for its channel. The API answers once Redis has run it.
//!
//! # Threads
//!
//! Workers never touch Redis and never wait for it. In cluster mode `crate::owner::route`
//! sends every owner message (join, leave, cache event, sign-in, sign-out) and every question
//! to the [`Cluster`] link instead of a worker. The link is a queue bounded in bytes like the
//! mesh, with the same answer when full ([`link`]), in front of a command thread that owns one
//! Redis connection and pipelines whatever is queued ([`command`]); the inbox thread owns a
//! second connection and pushes what it reads into the workers' mesh inboxes. Both are plain
//! OS threads with redis-rs's synchronous client: redis-rs because it is the most used Rust
//! Redis client, maintained with Redis itself, and its sync API needs no async runtime beside
//! monoio (fred would bring tokio for what two blocking loops do).
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
//! | `{P}:epoch` | string | the data set's id, written by the first node to register in it | none; missing after a restart without persistence |
//! | `{P}:node:{node}` | string | the node's lease | `PX` the node timeout less 1 s, renewed every second |
//! | `{P}:nop:{node}` | string | the node's registration: the highest operation number applied | deleted when the node is reaped or leaves |
//! | `{P}:nodes` | set | registered node ids | a node leaves it when reaped or on a clean stop |
//! | `{P}:rebuilding` | set | nodes registered again that have not re-asserted their share yet | a node leaves it once it has |
//! | `{P}:dead` | set | nodes whose lease expired, being reaped | a node leaves it once nothing of it is left |
//! | `{P}:inbox:{node}` | stream | the node's ordered log | `MAXLEN ~ 100000`; read entries trimmed every second; deleted with the node |
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
//! | `{P}:nwatch:{node}` | hash | `{app}\0["{user}","{watcher}"]` -> this node's share of the above | fields removed at 0 |
//! | `{P}:conns:{app}` | hash | node -> open connections, refreshed every second | field removed with the node |
//! | `{P}:cthr:{app}:{ch}` | string | a throttled `subscription_count` was sent (channels over 100 subscriptions) | `PX` 5 s |
//! | `{P}:cdirty` | hash | `{app}\0{ch}` -> the count frame's JSON around the number, for a count due after its window | fields removed when sent |
//! | `{P}:whv` | hash | `{app}\0{ch}` -> due time (ms): a `channel_vacated` webhook waiting its 3 s (of a leave, or of a reaped node) | removed when fired, or by the join that cancels it |
//! | `{P}:whr` | hash | `{app}\0{ch}\0{user}` -> due time (ms): a `member_removed` webhook waiting its 3 s | as `whv` |
//! | `{P}:whcd` | hash | `{app}\0{ch}` -> 1: a throttled `subscription_count` webhook, fired 5 s later | removed when fired |
//! | `{P}:whcm:{app}:{ch}` | string | a `cache_miss` webhook was sent (one for simultaneous misses) | `PX` 1 s |
//!
//! # Round trips
//!
//! Each is one `EVALSHA`, pipelined with whatever else is queued:
//!
//! - **join** (every subscribe, presence included, whatever the number of nodes): 1. JOIN
//!   counts the subscription (node, channel, interest), decides membership and the presence
//!   limit, appends the answer to this node's inbox (the member list, or the cached event),
//!   then `member_added` and `subscription_count` to every interested node's inbox.
//! - **leave** (presence included): 1. LEAVE undoes it; `member_removed` after the user's last
//!   connection anywhere, written by the same call.
//! - **publish**: 1 per API request (every event and channel of a batch in one PUBLISH, which
//!   writes, in the request's order, one inbox entry per event and channel to each node
//!   interested in that channel, and nothing for the rest); 1 per client event.
//! - **sign-in / sign-out**: 1 each; **terminate**: 1; **a question** of the HTTP API: 1.
//! - **heartbeat**: 1 per second per node (lease, node set, connection counts, and the reaping
//!   of any node whose lease expired).
//! - **webhooks**: none of their own for arrivals (JOIN and LEAVE return the webhook codes of
//!   what they decided, and the calling node sends them; the reaper's come back with the
//!   heartbeat that reaped); 1 HOOKFIRE per 3 s delay that ends, for every departure due by
//!   then.
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
//! The reaper decides the webhooks of a dead node's departures the same way: a member it
//! alone had is a pending `member_removed`, a channel it empties a pending `channel_vacated`,
//! a count it changes a `subscription_count`, and the survivor whose heartbeat reaped sends
//! them (for the apps that want them) and fires the pending ones after their 3 s, unless a
//! join on any node brought the channel or user back meanwhile (a client of the dead node
//! that reconnected elsewhere in time). A pending departure waits while Redis is away and
//! is fired once it is back (not sent if Redis came back without its entry). Operations
//! whose reply was lost with a connection and that Redis had already run (answered
//! `ALREADY` when sent again) carry no webhooks, and a node re-asserted with events after
//! it was reaped sends the `member_added` and counts of new joins to its clients, but not
//! their webhooks.
//!
//! # When a node dies
//!
//! A node renews its lease every second; its lease lasts the node timeout
//! ([`crate::config::Scaling::node_timeout`], 30 s by default) less one second. The first
//! survivor's heartbeat after the lease expired reaps it: its presence members leave the lists
//! (`member_removed` to the other nodes' subscribers, for users it alone had), its
//! subscriptions leave the counts (`subscription_count` where the app sends it), its signed-in
//! users go offline for their watchers, its connections stop counting, and its inbox and
//! per-node keys are deleted, and the webhooks a leave would cause are decided with it (see
//! above). Exactly one survivor does it: it is one script. A node that was
//! only stopped or cut off finds itself unregistered at its next heartbeat (every operation
//! script refuses an unregistered node, so nothing it sends resurrects what was reaped), and
//! registers again from scratch: what its connections hold now is asserted anew, with the
//! events of new joins.
//!
//! # When Redis goes away
//!
//! The node keeps serving its clients: no one is disconnected, and a publish made on it
//! reaches its own subscribers at once. What must reach Redis is held, in order, inside the
//! link's bound ([`outbox`]); past the bound the API answers 503. Joins wait for Redis (their
//! subscribers get `subscription_succeeded` when it is back); questions are answered 503.
//! When Redis is back, it says what it kept (REGISTER): everything (a connection that broke,
//! a Redis that was slow), and the held operations go out, each applied once; or nothing (a
//! restart without persistence), and every node re-asserts its share without events, waits up
//! to [`link::SETTLE_WAIT`] for the others to have done so, then sends what changed meanwhile
//! (members who left, counts), the publishes of the last moments before the loss (which the
//! receivers may not have read; they drop those they have) and what it held.

pub mod command;
pub mod decode;
pub mod health;
pub mod inbox;
pub mod link;
pub mod outbox;
pub mod rebuild;
pub mod scripts;
pub mod seen;
pub mod wire;

pub use link::Cluster;
pub use wire::{Command, Item};

use futures_channel::oneshot;

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
    /// Sends to the cluster what the nodes need of a message for every worker, and says
    /// whether this node delivers it itself now: a publish and a termination reach every
    /// node, this one included, through the logs; the rest stays on this node.
    pub fn forward(&self, msg: &ShardMsg) -> bool {
        match msg {
            ShardMsg::Publish {
                app,
                channel,
                frame,
                except,
            } => {
                self.send(Command::Publish(
                    vec![Item {
                        app: *app,
                        channel: channel.clone(),
                        frame: frame.clone(),
                        except: *except,
                        cache: None,
                    }],
                    None,
                ));
                false
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
/// it has any, with the receiver told once Redis has run it.
pub fn request(effects: &[Effect]) -> Option<(Command, oneshot::Receiver<()>)> {
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
    if items.is_empty() {
        return None;
    }
    let (tx, rx) = oneshot::channel();
    Some((Command::Publish(items, Some(tx)), rx))
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
