//! The owner of cluster-wide facts, as a state machine.
//!
//! The Pusher API needs answers about the whole server, not one worker: a presence channel's
//! members counted per user across every tab on every worker, a channel's subscription count,
//! the last event of a cache channel, whether a signed-in user is online. Each such fact has
//! exactly one owner, so it never needs a lock and never disagrees with itself. An [`Owner`]
//! holds the facts of the channels and apps addressed to it (the worker shell decides which,
//! see `crate::worker`): it is told what changed with [`OwnerMsg`]s and answers with effects,
//! and every member event of a channel is decided here, in the order the messages arrive.
//!
//! The same decisions give the app's webhooks (`crate::webhook`) their events, as
//! [`Effect::Hook`]s: `channel_occupied` with a channel's first subscription, `member_added`
//! with a user's first connection, `subscription_count` with each count (under the count
//! event's throttle, whether or not the app sends that event to its subscribers), `cache_miss`
//! with a join that misses the cache (once a [`CACHE_MISS_EVERY`] per channel). `channel_vacated`
//! and `member_removed` are kept for [`DELAY`](crate::webhook::DELAY) and sent by [`Owner::tick`] once it has passed,
//! unless a join brought the channel or the user back meanwhile: the pending event is then
//! forgotten and the join's `channel_occupied` or `member_added` is not sent either.
//!
//! Time enters as an argument: cache expiry, the throttle of `subscription_count` and the
//! webhooks' delay are computed from the `now` of each call.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringcast_protocol::pusher::event::ServerEvent;

use super::Effect;
use super::delays::Delays;
use super::msg::{
    Answer, Channel, ChannelInfo, Join, JoinAnswer, OwnerMsg, Question, ShardMsg, UserId,
};
use crate::app::Apps;
use crate::ids::AppIdx;
use crate::webhook::{CACHE_MISS_EVERY, EventKind, Hook, wants_members, wants_occupancy};

/// Channels with more subscribers than this get `subscription_count` at most every
/// [`COUNT_INTERVAL`], as hosted Pusher does.
pub const COUNT_THROTTLE_ABOVE: u64 = 100;
/// The throttle interval of `subscription_count` on large channels.
pub const COUNT_INTERVAL: Duration = Duration::from_secs(5);

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
    members: BTreeMap<UserId, Member>,
    cache: Option<Cached>,
    count_sent_at: Option<Instant>,
    count_dirty: bool,
    /// When the last `cache_miss` webhook of this channel was decided.
    cache_miss_at: Option<Instant>,
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

    /// Whether nothing is left worth keeping: no subscriber, no live cache, no pending count.
    fn is_idle(&self) -> bool {
        self.subscriptions == 0 && self.cache.is_none() && !self.count_dirty
    }
}

#[derive(Debug, Default)]
struct UserFacts {
    online: HashMap<UserId, u32>,
    /// watched id -> watcher id -> number of the watcher's signed-in connections watching.
    watchers: HashMap<UserId, HashMap<UserId, u32>>,
}

/// The facts one owner holds, and the effects its inputs caused.
#[derive(Debug)]
pub struct Owner {
    apps: Arc<Apps>,
    max_members: usize,
    channels: Vec<HashMap<Channel, ChannelFacts>>,
    users: Vec<UserFacts>,
    dirty_counts: Vec<(AppIdx, Channel)>,
    /// `channel_vacated` and `member_removed` webhooks waiting for their delay.
    delays: Delays,
    effects: VecDeque<Effect>,
}

impl Owner {
    /// An owner of nothing yet, for every app of `apps`, admitting at most `max_members`
    /// distinct users per presence channel.
    pub fn new(apps: Arc<Apps>, max_members: usize) -> Owner {
        let n = apps.len();
        Owner {
            apps,
            max_members,
            channels: (0..n).map(|_| HashMap::new()).collect(),
            users: (0..n).map(|_| UserFacts::default()).collect(),
            dirty_counts: Vec::new(),
            delays: Delays::default(),
            effects: VecDeque::new(),
        }
    }

    fn hook(&mut self, app: AppIdx, kind: EventKind, hook: Hook) {
        if self.apps.get(app).wants(kind) {
            self.effects.push_back(Effect::Hook(app, hook));
        }
    }

    /// A channel's first subscription (`user` `None`) or a user's first connection in it:
    /// cancels the pending `channel_vacated` or `member_removed` of a return within [`DELAY`](crate::webhook::DELAY),
    /// and otherwise sends `channel_occupied` or `member_added`.
    fn arrived(&mut self, app: AppIdx, channel: &Channel, user: Option<&UserId>) {
        let mask = self.apps.get(app).hooks();
        let pair = match user {
            None => wants_occupancy(mask),
            Some(_) => wants_members(mask),
        };
        if !pair {
            return;
        }
        if !self.delays.arrived(&(app, channel.clone(), user.cloned())) {
            return;
        }
        match user {
            None => self.hook(
                app,
                EventKind::ChannelOccupied,
                Hook::ChannelOccupied {
                    channel: channel.clone(),
                },
            ),
            Some(u) => self.hook(
                app,
                EventKind::MemberAdded,
                Hook::MemberAdded {
                    channel: channel.clone(),
                    user_id: u.clone(),
                },
            ),
        }
    }

    /// A channel's last subscription gone (`user` `None`) or a user's last connection in it:
    /// the webhook waits for [`DELAY`](crate::webhook::DELAY).
    fn departed(&mut self, app: AppIdx, channel: &Channel, user: Option<UserId>, now: Instant) {
        let mask = self.apps.get(app).hooks();
        let pair = match user {
            None => wants_occupancy(mask),
            Some(_) => wants_members(mask),
        };
        if pair {
            self.delays.departed((app, channel.clone(), user), now);
        }
    }

    /// Sends the delayed webhooks due at `now` (all of them with `None`), in the order they
    /// were decided.
    fn fire_delayed(&mut self, now: Option<Instant>) {
        for (app, channel, user) in self.delays.take_due(now) {
            match user {
                None => self.hook(
                    app,
                    EventKind::ChannelVacated,
                    Hook::ChannelVacated { channel },
                ),
                Some(user_id) => self.hook(
                    app,
                    EventKind::MemberRemoved,
                    Hook::MemberRemoved { channel, user_id },
                ),
            }
        }
    }

    /// Sends every delayed webhook now: the node stops, and nobody can come back to it.
    pub fn flush_delayed(&mut self) {
        self.fire_delayed(None);
    }

    /// The next effect to carry out.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Takes the app table of a configuration reload (the same indices, new apps after them);
    /// the facts held stay.
    pub fn set_apps(&mut self, apps: Arc<Apps>) {
        let n = apps.len();
        if self.channels.len() < n {
            self.channels.resize_with(n, HashMap::new);
            self.users.resize_with(n, UserFacts::default);
        }
        self.apps = apps;
    }

    /// Acts on a message addressed to this owner.
    pub fn handle(&mut self, msg: OwnerMsg, now: Instant) {
        match msg {
            OwnerMsg::Join(join) => self.join(join, now),
            OwnerMsg::Leave { app, channel, user } => self.leave(app, channel, user, now),
            OwnerMsg::Cache {
                app,
                channel,
                data,
                frame,
                except,
            } => {
                let ttl = Duration::from_secs(self.apps.get(app).cfg.cache_ttl);
                let facts = self.channels[app.0 as usize]
                    .entry(channel.clone())
                    .or_default();
                facts.cache = Some(Cached {
                    data,
                    frame: frame.clone(),
                    expires: now + ttl,
                });
                self.publish(app, &channel, frame, except);
            }
            OwnerMsg::Signin {
                app,
                user,
                watchlist,
                from,
                conn,
            } => {
                let facts = &mut self.users[app.0 as usize];
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
                    self.effects.push_back(Effect::ToShard(
                        from,
                        ShardMsg::ToConn {
                            conn,
                            frames: vec![frame],
                        },
                    ));
                }
                if came_online {
                    self.notify_watchers(app, &user, true);
                }
            }
            OwnerMsg::Signout {
                app,
                user,
                watchlist,
            } => {
                let facts = &mut self.users[app.0 as usize];
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

    fn join(&mut self, join: Join, now: Instant) {
        let max_members = self.max_members;
        let facts = self.channels[join.app.0 as usize]
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
                        channel: join.channel.as_str(),
                        error_type: "LimitReached",
                        error: &msg,
                        status: 403,
                    }
                    .to_frame();
                    if facts.is_idle() {
                        self.channels[join.app.0 as usize].remove(&join.channel);
                    }
                    let answer = JoinAnswer {
                        conn: join.conn,
                        seq: join.seq,
                        app: join.app,
                        channel: join.channel,
                        user: None,
                        accepted: false,
                        frames: vec![frame],
                    };
                    self.effects
                        .push_back(Effect::ToShard(join.from, ShardMsg::JoinAnswer(answer)));
                    return;
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
        let first = facts.subscriptions == 1;
        let mut missed = false;
        let mut answer = None;
        if join.reply {
            let mut frames = Vec::with_capacity(3);
            let name = join.channel.as_str();
            if join.member.is_some() {
                let members: Vec<(&str, &str)> = facts
                    .members
                    .iter()
                    .map(|(id, m)| (&**id, m.info.as_str()))
                    .collect();
                frames.push(
                    ServerEvent::PresenceSubscriptionSucceeded {
                        channel: name,
                        members: &members,
                    }
                    .to_frame(),
                );
            } else {
                frames.push(ServerEvent::SubscriptionSucceeded { channel: name }.to_frame());
            }
            if join.channel.is_cache() {
                frames.push(match facts.live_cache(now) {
                    Some(c) => c.frame.clone(),
                    None => {
                        // Subscribers that miss together cause one webhook.
                        missed = facts
                            .cache_miss_at
                            .is_none_or(|t| now.duration_since(t) >= CACHE_MISS_EVERY);
                        if missed {
                            facts.cache_miss_at = Some(now);
                        }
                        ServerEvent::CacheMiss { channel: name }.to_frame()
                    }
                });
            }
            answer = Some(JoinAnswer {
                conn: join.conn,
                seq: join.seq,
                app: join.app,
                channel: join.channel.clone(),
                user: join.member.as_ref().map(|(u, _)| u.clone()),
                accepted: true,
                frames,
            });
        }
        // A joiner that waits for its answer is not a subscriber on its shard yet, and a
        // publish can get there first (on the owner's own worker a publish is written at once,
        // while the answer waits in the loopback queue): its count goes in its answer.
        // The webhooks in the order a receiver expects: the channel, the member, then the rest.
        if first {
            self.arrived(join.app, &join.channel, None);
        }
        if let Some((user, _)) = &new_member {
            self.arrived(join.app, &join.channel, Some(user));
        }
        if missed {
            let channel = join.channel.clone();
            self.hook(join.app, EventKind::CacheMiss, Hook::CacheMiss { channel });
        }
        let count = match join.member {
            None => self.count_frame(join.app, &join.channel, now),
            Some(_) => None,
        };
        if let Some(mut answer) = answer {
            answer.frames.extend(count.clone());
            self.effects
                .push_back(Effect::ToShard(join.from, ShardMsg::JoinAnswer(answer)));
        }
        if let Some((user, info)) = new_member {
            // Pusher docs: member_added goes to the other members, not the joiner.
            let frame = ServerEvent::MemberAdded {
                channel: join.channel.as_str(),
                user_id: &user,
                user_info: &info,
            }
            .to_frame();
            self.publish(join.app, &join.channel, frame, Some(join.socket_id));
        }
        if let Some(frame) = count {
            let except = join.reply.then_some(join.socket_id);
            self.publish(join.app, &join.channel, frame, except);
        }
    }

    fn leave(&mut self, app: AppIdx, channel: Channel, user: Option<UserId>, now: Instant) {
        let map = &mut self.channels[app.0 as usize];
        let Some(facts) = map.get_mut(&channel) else {
            return;
        };
        let had = facts.subscriptions;
        facts.subscriptions = facts.subscriptions.saturating_sub(1);
        let vacated = had == 1;
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
        if facts.is_idle() {
            map.remove(&channel);
        }
        if let Some(user) = removed {
            let frame = ServerEvent::MemberRemoved {
                channel: channel.as_str(),
                user_id: &user,
            }
            .to_frame();
            self.publish(app, &channel, frame, None);
            self.departed(app, &channel, Some(user), now);
        }
        if vacated {
            self.departed(app, &channel, None, now);
        }
        if !channel.is_presence() {
            self.count_changed(app, &channel, now);
        }
    }

    fn publish(
        &mut self,
        app: AppIdx,
        channel: &Channel,
        frame: Bytes,
        except: Option<ringcast_protocol::pusher::socket_id::SocketId>,
    ) {
        self.effects.push_back(Effect::ToAll(ShardMsg::Publish {
            app,
            channel: channel.clone(),
            frame,
            except,
        }));
    }

    /// Publishes `pusher_internal:subscription_count` for a changed channel when the app
    /// enables it, and decides its `subscription_count` webhook when the app's webhooks want
    /// it; throttled on large channels.
    fn count_changed(&mut self, app: AppIdx, channel: &Channel, now: Instant) {
        if let Some(frame) = self.count_frame(app, channel, now) {
            self.publish(app, channel, frame, None);
        }
    }

    /// The count of a changed channel, unless it is throttled (it then counts as sent): the
    /// `subscription_count` webhook when the app's webhooks want it, and the
    /// `pusher_internal:subscription_count` frame returned when the app sends those to its
    /// subscribers. Either goes without the other, under the one throttle.
    fn count_frame(&mut self, app: AppIdx, channel: &Channel, now: Instant) -> Option<Bytes> {
        let a = self.apps.get(app);
        let frames = a.cfg.subscription_count;
        let hook = a.wants(EventKind::SubscriptionCount);
        if !frames && !hook {
            return None;
        }
        let facts = self.channels[app.0 as usize].get_mut(channel)?;
        let throttled = facts.subscriptions > COUNT_THROTTLE_ABOVE
            && facts
                .count_sent_at
                .is_some_and(|t| now.duration_since(t) < COUNT_INTERVAL);
        if throttled {
            if !facts.count_dirty {
                facts.count_dirty = true;
                self.dirty_counts.push((app, channel.clone()));
            }
            return None;
        }
        facts.count_sent_at = Some(now);
        facts.count_dirty = false;
        let count = facts.subscriptions;
        if count == 0 {
            return None;
        }
        if hook {
            let channel = channel.clone();
            self.hook(
                app,
                EventKind::SubscriptionCount,
                Hook::SubscriptionCount { channel, count },
            );
        }
        frames.then(|| {
            ServerEvent::SubscriptionCount {
                channel: channel.as_str(),
                count,
            }
            .to_frame()
        })
    }

    /// The periodic step: sends the throttled subscription counts and the delayed webhooks
    /// that are due, and forgets expired caches of empty channels.
    pub fn tick(&mut self, now: Instant) {
        self.fire_delayed(Some(now));
        let dirty = std::mem::take(&mut self.dirty_counts);
        for (app, channel) in dirty {
            let map = &mut self.channels[app.0 as usize];
            let due = map.get(&channel).is_some_and(|f| {
                f.count_sent_at
                    .is_none_or(|t| now.duration_since(t) >= COUNT_INTERVAL)
            });
            if !due {
                self.dirty_counts.push((app, channel));
                continue;
            }
            if let Some(f) = map.get_mut(&channel) {
                f.count_dirty = false;
                f.count_sent_at = None;
            }
            self.count_changed(app, &channel, now);
            let map = &mut self.channels[app.0 as usize];
            if map.get(&channel).is_some_and(ChannelFacts::is_idle) {
                map.remove(&channel);
            }
        }
        for map in &mut self.channels {
            map.retain(|_, f| {
                if f.cache.as_ref().is_some_and(|c| c.expires <= now) {
                    f.cache = None;
                }
                !f.is_idle()
            });
        }
    }

    /// Answers a question about the facts this owner holds.
    pub fn answer(&self, q: &Question, now: Instant) -> Answer {
        match q {
            Question::Channel { app, channel } => Answer::Channel(
                self.channels[app.0 as usize]
                    .get(channel)
                    .map(|f| f.info(now))
                    .unwrap_or_default(),
            ),
            Question::Channels { app, prefix } => Answer::Channels(
                self.channels[app.0 as usize]
                    .iter()
                    .filter(|(name, f)| {
                        f.subscriptions > 0 && name.as_str().starts_with(prefix.as_str())
                    })
                    .map(|(name, f)| (name.clone(), f.info(now)))
                    .collect(),
            ),
            Question::Users { app, channel } => Answer::Users(
                self.channels[app.0 as usize]
                    .get(channel)
                    .map(|f| f.members.keys().cloned().collect())
                    .unwrap_or_default(),
            ),
            // Nodes are not an owner's fact: the worker answers for its process.
            Question::Nodes { .. } => Answer::Nodes(Vec::new()),
        }
    }

    fn notify_watchers(&mut self, app: AppIdx, user: &UserId, online: bool) {
        let watchers: Vec<UserId> = self.users[app.0 as usize]
            .watchers
            .get(user)
            .map(|w| w.keys().cloned().collect())
            .unwrap_or_default();
        if watchers.is_empty() {
            return;
        }
        let ids = [&**user];
        let (on, off): (&[&str], &[&str]) = if online { (&ids, &[]) } else { (&[], &ids) };
        let frame = ServerEvent::WatchlistEvents {
            online: on,
            offline: off,
        }
        .to_frame();
        for w in watchers {
            self.effects.push_back(Effect::ToAll(ShardMsg::ToUser {
                app,
                user: w,
                frame: frame.clone(),
            }));
        }
    }

    /// The channels of `app` this owner holds that have subscribers, each with its
    /// subscription count and its number of presence members: what a metrics scrape counts.
    pub fn occupied(&self, app: AppIdx) -> impl Iterator<Item = (&Channel, u64, usize)> + '_ {
        self.channels[app.0 as usize]
            .iter()
            .filter(|(_, f)| f.subscriptions > 0)
            .map(|(name, f)| (name, f.subscriptions, f.members.len()))
    }

    /// Users of `app` signed in on any worker, as this owner counts them (only the app's user
    /// owner counts any).
    pub fn users_online(&self, app: AppIdx) -> usize {
        self.users[app.0 as usize].online.len()
    }

    /// Presence members of a channel with the number of connections each has in it: what the
    /// harness checks its invariants against.
    pub fn members(&self, app: AppIdx, channel: &Channel) -> Vec<(UserId, u32)> {
        self.channels[app.0 as usize]
            .get(channel)
            .map(|f| {
                f.members
                    .iter()
                    .map(|(id, m)| (id.clone(), m.sockets))
                    .collect()
            })
            .unwrap_or_default()
    }
}
