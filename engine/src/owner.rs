//! Cluster-wide facts and the worker that owns each of them.
//!
//! The Pusher API needs answers about the whole server, not one worker: a presence channel's
//! members counted per user across every tab on every worker, a channel's subscription count,
//! the last event of a cache channel, whether a signed-in user is online. Each such fact has
//! exactly one owner, so it never needs a lock and never disagrees with itself:
//!
//! | fact | owner |
//! |---|---|
//! | a channel's subscription count, presence members, cached last event | the channel's owner: `fnv1a(app, channel) % workers` ([`channel_owner`]) |
//! | a user's online status and who watches it | the app's user owner: `app % workers` ([`user_owner`]) |
//! | connections per app | the app's atomic counter (`crate::app`) |
//! | which local connections are subscribed, or signed in as a user | each worker, for its own connections |
//!
//! Workers tell an owner what changed with [`ChannelOp`] and [`UserOp`] messages over the
//! mesh and ask it with [`Question`]s; an owner publishes member and count events itself, so
//! every member event is decided in one place, in one order. The owner is a function of the
//! channel name only, which is what lets a future shared store (Redis, as Reverb and Soketi
//! scale out) replace it: the messages and answers stay, the owner moves behind them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringcast_protocol::pusher::channel::{ChannelKind, is_cache_name, kind_of};
use ringcast_protocol::pusher::event::ServerEvent;
use ringcast_protocol::pusher::socket_id::SocketId;

use crate::ids::{AppIdx, ConnKey, ShardId};
use crate::mesh::MeshMsg;
use crate::worker::Worker;

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

/// A change a channel's owner must know about.
#[derive(Debug)]
pub enum ChannelOp {
    /// A connection subscribes.
    Join(Join),
    /// A connection unsubscribed or went away.
    Leave {
        app: AppIdx,
        channel: Arc<str>,
        /// The presence user id it had joined as.
        user: Option<Arc<str>>,
    },
    /// A server event was published on a cache channel.
    Cache {
        app: AppIdx,
        channel: Arc<str>,
        data: String,
        frame: Bytes,
    },
}

/// A subscription, as its owner sees it.
#[derive(Debug)]
pub struct Join {
    pub app: AppIdx,
    pub channel: Arc<str>,
    pub from: ShardId,
    pub conn: ConnKey,
    pub socket_id: SocketId,
    /// Presence channels: the member's user id and `user_info` JSON.
    pub member: Option<(Arc<str>, String)>,
    /// Whether the subscriber waits for a [`JoinAnswer`] before it is subscribed (presence and
    /// cache channels, whose first frames come from the owner).
    pub reply: bool,
}

/// The owner's answer to a join that waited for it.
#[derive(Debug)]
pub struct JoinAnswer {
    pub conn: ConnKey,
    pub app: AppIdx,
    pub channel: Arc<str>,
    /// The presence user id, repeated for the subscriber's records.
    pub user: Option<Arc<str>>,
    /// Whether the join was counted (a refusal leaves nothing to undo).
    pub accepted: bool,
    /// What the connection is sent: `subscription_succeeded` and the cached event or
    /// `cache_miss`, or a `subscription_error`.
    pub frames: Vec<Bytes>,
}

/// A change of a user's sign-in state, for the app's user owner.
#[derive(Debug)]
pub enum UserOp {
    Signin {
        app: AppIdx,
        user: Arc<str>,
        watchlist: Vec<Arc<str>>,
        from: ShardId,
        conn: ConnKey,
    },
    Signout {
        app: AppIdx,
        user: Arc<str>,
        watchlist: Vec<Arc<str>>,
    },
}

/// A question about owned facts.
#[derive(Debug)]
pub enum Question {
    /// One channel's counts and cache.
    Channel { app: AppIdx, channel: Arc<str> },
    /// Every occupied channel this worker owns whose name starts with `prefix`.
    Channels { app: AppIdx, prefix: String },
    /// A presence channel's user ids.
    Users { app: AppIdx, channel: Arc<str> },
}

/// An owner's answer.
#[derive(Debug)]
pub enum Answer {
    Channel(ChannelInfo),
    Channels(Vec<(Arc<str>, ChannelInfo)>),
    Users(Vec<Arc<str>>),
}

/// What is known about one channel across the server.
#[derive(Clone, Debug, Default)]
pub struct ChannelInfo {
    /// Subscriptions (connections) on every worker.
    pub subscriptions: u64,
    /// Distinct presence users.
    pub users: u64,
    /// The cached event's data and its remaining seconds.
    pub cache: Option<(String, u64)>,
}

#[derive(Debug)]
struct Member {
    sockets: u32,
    info: String,
}

#[derive(Debug)]
struct Cached {
    data: String,
    frame: Bytes,
    expires: Instant,
}

#[derive(Debug, Default)]
struct ChannelFacts {
    subscriptions: u64,
    members: BTreeMap<Arc<str>, Member>,
    cache: Option<Cached>,
    count_sent_at: Option<Instant>,
    count_dirty: bool,
}

impl ChannelFacts {
    fn live_cache(&self, now: Instant) -> Option<&Cached> {
        self.cache.as_ref().filter(|c| c.expires > now)
    }

    fn info(&self, now: Instant) -> ChannelInfo {
        ChannelInfo {
            subscriptions: self.subscriptions,
            users: self.members.len() as u64,
            cache: self.live_cache(now).map(|c| {
                (
                    c.data.clone(),
                    c.expires.saturating_duration_since(now).as_secs(),
                )
            }),
        }
    }
}

#[derive(Debug, Default)]
struct UserFacts {
    online: HashMap<Arc<str>, u32>,
    /// watched id -> watcher id -> number of the watcher's signed-in connections watching.
    watchers: HashMap<Arc<str>, HashMap<Arc<str>, u32>>,
}

/// The facts one worker owns.
#[derive(Debug, Default)]
pub struct Owned {
    channels: Vec<HashMap<Arc<str>, ChannelFacts>>,
    users: Vec<UserFacts>,
    dirty_counts: Vec<(AppIdx, Arc<str>)>,
}

/// Channels with more subscribers than this get `subscription_count` at most every
/// [`COUNT_INTERVAL`], as hosted Pusher does.
const COUNT_THROTTLE_ABOVE: u64 = 100;
const COUNT_INTERVAL: Duration = Duration::from_secs(5);

impl Owned {
    /// Empty facts for `apps` apps.
    pub fn new(apps: usize) -> Owned {
        Owned {
            channels: (0..apps).map(|_| HashMap::new()).collect(),
            users: (0..apps).map(|_| UserFacts::default()).collect(),
            dirty_counts: Vec::new(),
        }
    }
}

impl Worker {
    /// Sends `msg` to worker `to`, or acts on it at once when `to` is this worker.
    pub fn to_worker(&mut self, to: ShardId, msg: MeshMsg) {
        if to == self.id {
            self.on_mesh(msg);
        } else {
            self.shared.mesh.send(to, msg);
        }
    }

    /// The owner of a channel of `app`.
    pub fn owner_of(&self, app: AppIdx, channel: &str) -> ShardId {
        channel_owner(app, channel, self.shared.mesh.len())
    }

    /// Acts, as owner, on a channel change.
    pub fn on_channel_op(&mut self, op: ChannelOp) {
        match op {
            ChannelOp::Join(join) => self.owner_join(join),
            ChannelOp::Leave { app, channel, user } => self.owner_leave(app, channel, user),
            ChannelOp::Cache {
                app,
                channel,
                data,
                frame,
            } => {
                let ttl = Duration::from_secs(self.shared.apps.get(app).cfg.cache_ttl);
                let facts = self.owned.channels[app.0 as usize]
                    .entry(channel)
                    .or_default();
                facts.cache = Some(Cached {
                    data,
                    frame,
                    expires: Instant::now() + ttl,
                });
            }
        }
    }

    fn owner_join(&mut self, join: Join) {
        let now = Instant::now();
        let max_members = self.shared.config.limits.max_presence_members;
        let facts = self.owned.channels[join.app.0 as usize]
            .entry(join.channel.clone())
            .or_default();
        let mut new_member = None;
        if let Some((user, info)) = &join.member {
            let full = facts.members.len() >= max_members;
            match facts.members.get_mut(user) {
                Some(m) => m.sockets += 1,
                None if full => {
                    let msg = format!("Presence channel is full ({max_members} members)");
                    let frame = ServerEvent::SubscriptionError {
                        channel: &join.channel,
                        error_type: "LimitReached",
                        error: &msg,
                        status: 403,
                    }
                    .to_frame();
                    if facts.subscriptions == 0 && facts.cache.is_none() {
                        self.owned.channels[join.app.0 as usize].remove(&join.channel);
                    }
                    let answer = JoinAnswer {
                        conn: join.conn,
                        app: join.app,
                        channel: join.channel,
                        user: None,
                        accepted: false,
                        frames: vec![frame],
                    };
                    return self.to_worker(join.from, MeshMsg::JoinAnswer(answer));
                }
                None => {
                    facts.members.insert(
                        user.clone(),
                        Member {
                            sockets: 1,
                            info: info.clone(),
                        },
                    );
                    new_member = Some((user.clone(), info.clone()));
                }
            }
        }
        facts.subscriptions += 1;
        if join.reply {
            let mut frames = Vec::with_capacity(2);
            if join.member.is_some() {
                let members: Vec<(&str, &str)> = facts
                    .members
                    .iter()
                    .map(|(id, m)| (&**id, m.info.as_str()))
                    .collect();
                frames.push(
                    ServerEvent::PresenceSubscriptionSucceeded {
                        channel: &join.channel,
                        members: &members,
                    }
                    .to_frame(),
                );
            } else {
                frames.push(
                    ServerEvent::SubscriptionSucceeded {
                        channel: &join.channel,
                    }
                    .to_frame(),
                );
            }
            if is_cache_name(&join.channel) {
                frames.push(match facts.live_cache(now) {
                    Some(c) => c.frame.clone(),
                    None => ServerEvent::CacheMiss {
                        channel: &join.channel,
                    }
                    .to_frame(),
                });
            }
            let answer = JoinAnswer {
                conn: join.conn,
                app: join.app,
                channel: join.channel.clone(),
                user: join.member.as_ref().map(|(u, _)| u.clone()),
                accepted: true,
                frames,
            };
            self.to_worker(join.from, MeshMsg::JoinAnswer(answer));
        }
        if let Some((user, info)) = new_member {
            // Pusher docs: member_added goes to the other members, not the joiner.
            let frame = ServerEvent::MemberAdded {
                channel: &join.channel,
                user_id: &user,
                user_info: &info,
            }
            .to_frame();
            self.publish(join.app, &join.channel, frame, Some(join.socket_id));
        }
        if join.member.is_none() {
            self.count_changed(join.app, &join.channel);
        }
    }

    fn owner_leave(&mut self, app: AppIdx, channel: Arc<str>, user: Option<Arc<str>>) {
        let map = &mut self.owned.channels[app.0 as usize];
        let Some(facts) = map.get_mut(&channel) else {
            return;
        };
        facts.subscriptions = facts.subscriptions.saturating_sub(1);
        let mut removed = None;
        if let Some(user) = user
            && let Some(m) = facts.members.get_mut(&user)
        {
            m.sockets -= 1;
            if m.sockets == 0 {
                facts.members.remove(&user);
                removed = Some(user);
            }
        }
        let presence = kind_of(&channel) == ChannelKind::Presence;
        if facts.subscriptions == 0 && facts.cache.is_none() && !facts.count_dirty {
            map.remove(&channel);
        }
        if let Some(user) = removed {
            let frame = ServerEvent::MemberRemoved {
                channel: &channel,
                user_id: &user,
            }
            .to_frame();
            self.publish(app, &channel, frame, None);
        }
        if !presence {
            self.count_changed(app, &channel);
        }
    }

    /// Publishes `pusher_internal:subscription_count` for a changed channel when the app
    /// enables it, throttled on large channels.
    fn count_changed(&mut self, app: AppIdx, channel: &Arc<str>) {
        if !self.shared.apps.get(app).cfg.subscription_count {
            return;
        }
        let now = Instant::now();
        let Some(facts) = self.owned.channels[app.0 as usize].get_mut(channel) else {
            return;
        };
        let throttled = facts.subscriptions > COUNT_THROTTLE_ABOVE
            && facts
                .count_sent_at
                .is_some_and(|t| now.duration_since(t) < COUNT_INTERVAL);
        if throttled {
            if !facts.count_dirty {
                facts.count_dirty = true;
                self.owned.dirty_counts.push((app, channel.clone()));
            }
            return;
        }
        facts.count_sent_at = Some(now);
        facts.count_dirty = false;
        let count = facts.subscriptions;
        if count == 0 {
            return;
        }
        let frame = ServerEvent::SubscriptionCount { channel, count }.to_frame();
        self.publish(app, channel, frame, None);
    }

    /// Sends the throttled subscription counts that are due (from the sweep).
    pub fn flush_counts(&mut self) {
        let now = Instant::now();
        let dirty = std::mem::take(&mut self.owned.dirty_counts);
        for (app, channel) in dirty {
            let due = self.owned.channels[app.0 as usize]
                .get(&channel)
                .is_some_and(|f| {
                    f.count_sent_at
                        .is_none_or(|t| now.duration_since(t) >= COUNT_INTERVAL)
                });
            if due {
                if let Some(f) = self.owned.channels[app.0 as usize].get_mut(&channel) {
                    f.count_dirty = false;
                    f.count_sent_at = None;
                }
                self.count_changed(app, &channel);
                let map = &mut self.owned.channels[app.0 as usize];
                if map
                    .get(&channel)
                    .is_some_and(|f| f.subscriptions == 0 && f.cache.is_none() && !f.count_dirty)
                {
                    map.remove(&channel);
                }
            } else {
                self.owned.dirty_counts.push((app, channel));
            }
        }
        // Expired caches of empty channels are dropped here too.
        for map in &mut self.owned.channels {
            map.retain(|_, f| {
                if f.cache.as_ref().is_some_and(|c| c.expires <= now) {
                    f.cache = None;
                }
                f.subscriptions > 0 || f.cache.is_some() || f.count_dirty
            });
        }
    }

    /// Answers a question about the facts this worker owns.
    pub fn answer(&self, q: &Question) -> Answer {
        let now = Instant::now();
        match q {
            Question::Channel { app, channel } => Answer::Channel(
                self.owned.channels[app.0 as usize]
                    .get(channel)
                    .map(|f| f.info(now))
                    .unwrap_or_default(),
            ),
            Question::Channels { app, prefix } => Answer::Channels(
                self.owned.channels[app.0 as usize]
                    .iter()
                    .filter(|(name, f)| f.subscriptions > 0 && name.starts_with(prefix.as_str()))
                    .map(|(name, f)| (name.clone(), f.info(now)))
                    .collect(),
            ),
            Question::Users { app, channel } => Answer::Users(
                self.owned.channels[app.0 as usize]
                    .get(channel)
                    .map(|f| f.members.keys().cloned().collect())
                    .unwrap_or_default(),
            ),
        }
    }

    /// Acts, as the app's user owner, on a sign-in or sign-out.
    pub fn on_user_op(&mut self, op: UserOp) {
        match op {
            UserOp::Signin {
                app,
                user,
                watchlist,
                from,
                conn,
            } => {
                let facts = &mut self.owned.users[app.0 as usize];
                let count = facts.online.entry(user.clone()).or_insert(0);
                *count += 1;
                let came_online = *count == 1;
                for id in &watchlist {
                    *facts
                        .watchers
                        .entry(id.clone())
                        .or_default()
                        .entry(user.clone())
                        .or_insert(0) += 1;
                }
                if !watchlist.is_empty() {
                    let (online, offline): (Vec<&str>, Vec<&str>) = watchlist
                        .iter()
                        .map(|id| &**id)
                        .partition(|id| facts.online.contains_key(*id));
                    let frame = ServerEvent::WatchlistEvents {
                        online: &online,
                        offline: &offline,
                    }
                    .to_frame();
                    self.to_worker(
                        from,
                        MeshMsg::ToConn {
                            conn,
                            frames: vec![frame],
                        },
                    );
                }
                if came_online {
                    self.notify_watchers(app, &user, true);
                }
            }
            UserOp::Signout {
                app,
                user,
                watchlist,
            } => {
                let facts = &mut self.owned.users[app.0 as usize];
                for id in &watchlist {
                    if let Some(w) = facts.watchers.get_mut(id) {
                        if let Some(n) = w.get_mut(&user) {
                            *n -= 1;
                            if *n == 0 {
                                w.remove(&user);
                            }
                        }
                        if w.is_empty() {
                            facts.watchers.remove(id);
                        }
                    }
                }
                let went_offline = match facts.online.get_mut(&user) {
                    Some(n) if *n > 1 => {
                        *n -= 1;
                        false
                    }
                    Some(_) => {
                        facts.online.remove(&user);
                        true
                    }
                    None => false,
                };
                if went_offline {
                    self.notify_watchers(app, &user, false);
                }
            }
        }
    }

    fn notify_watchers(&mut self, app: AppIdx, user: &Arc<str>, online: bool) {
        let watchers: Vec<Arc<str>> = self.owned.users[app.0 as usize]
            .watchers
            .get(user)
            .map(|w| w.keys().cloned().collect())
            .unwrap_or_default();
        if watchers.is_empty() {
            return;
        }
        let ids = [&**user];
        let frame = if online {
            ServerEvent::WatchlistEvents {
                online: &ids,
                offline: &[],
            }
        } else {
            ServerEvent::WatchlistEvents {
                online: &[],
                offline: &ids,
            }
        }
        .to_frame();
        for w in watchers {
            for i in 0..self.shared.mesh.len() {
                self.to_worker(
                    ShardId(i as u16),
                    MeshMsg::ToUser {
                        app,
                        user: w.clone(),
                        frame: frame.clone(),
                    },
                );
            }
        }
    }
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
