//! The connection side of one worker, as a state machine.
//!
//! A [`Shard`] keeps, for the connections of one worker, everything the Pusher rules need:
//! which channels each connection is subscribed to (and, per channel, which connections are:
//! the [`Registry`]), which joins wait for a channel's owner, who each connection signed in
//! as and whom it watches. It checks every client message against those rules (signatures,
//! channel limits, client-event permissions and rates) and says what follows as [`Effect`]s.
//!
//! It is generic over `T`, what the shell keeps of each connection for I/O (its socket and
//! outbound queue in the worker; a recorder in the tests). The shard stores `T` beside the
//! connection's state, in the same slab slot, so that a fan-out looks each subscriber up once,
//! and never looks inside it.
//!
//! A client event that passed every rule is also a `client_event` webhook ([`Effect::Hook`])
//! when the app asks for them: it is decided here, on the sender's shard, the one place that
//! sees it once.
//!
//! Presence and cache subscriptions wait for the channel's owner: the owner decides membership
//! and holds the cached event, and its [`JoinAnswer`] carries the frames the subscriber is sent
//! first. Other subscriptions are confirmed at once and only counted by the owner, unless the
//! shard confirms every subscription through the owner ([`Shard::confirm_through_owner`], as
//! in a cluster, where the answer travels in the same ordered log as the channel's events, so
//! a publish made after the confirmation always reaches the subscriber). Pending
//! joins (abandoned ones too, until their answer) count against `max_channels_per_connection`
//! like confirmed ones, which also bounds how many a connection can have.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ringcast_protocol::Limits;
use ringcast_protocol::api::body::TriggerEvent;
use ringcast_protocol::pusher::auth;
use ringcast_protocol::pusher::channel::{ChannelKind, ChannelName};
use ringcast_protocol::pusher::error::PusherCode;
use ringcast_protocol::pusher::event::ServerEvent;
use ringcast_protocol::pusher::member::{parse_channel_data, parse_user_data};
use ringcast_protocol::pusher::message::{ClientMessage, parse_client_message};
use ringcast_protocol::pusher::socket_id::SocketId;
use slab::Slab;

mod snapshot;

use super::msg::{Channel, Join, JoinAnswer, OwnerMsg, ShardMsg, UserId};
use super::registry::Registry;
use super::{Closing, Effect};
use crate::app::Apps;
use crate::config::ClientEvents;
use crate::ids::{AppIdx, ChanIdx, ConnKey, ShardId};
use crate::webhook::{EventKind, Hook};

/// One subscription: the channel and this connection's position in the channel's list.
#[derive(Clone, Copy, Debug)]
struct Sub {
    chan: ChanIdx,
    pos: u32,
}

/// What only signed-in or presence connections need, boxed so that other connections pay one
/// pointer for it.
#[derive(Debug, Default)]
struct ConnUser {
    /// The user id it signed in as, and that user's `user_info` JSON.
    signed_in: Option<(UserId, Option<String>)>,
    /// The user ids it watches.
    watchlist: Vec<UserId>,
    /// Presence channels it is a member of, with the user id it joined as and, when every
    /// join goes through the owner (a cluster), its `user_info`: what the node re-asserts in a
    /// Redis that lost it.
    presence: Vec<(Channel, UserId, Option<Arc<str>>)>,
    /// Joins that wait for the owner's answer, oldest first. An answer is for the join with
    /// its number ([`Join::seq`]): a join abandoned and made again has two entries, and an
    /// answer given twice (a cluster repeating a join whose outcome it could not know) finds
    /// its join gone the second time and is undone.
    pending: Vec<Pending>,
}

/// A join waiting for its owner's answer.
#[derive(Debug)]
struct Pending {
    channel: Channel,
    seq: u32,
    /// Still wanted: an unsubscribe abandons it, and its answer then undoes it.
    wanted: bool,
    /// The member's `user_info`, kept for [`ConnUser::presence`] in a cluster.
    info: Option<Arc<str>>,
}

/// One connection's rules state, beside the shell's `T`.
struct Entry<T> {
    generation: u32,
    /// The app of a Pusher connection; `None` for the conformance echo endpoint.
    app: Option<AppIdx>,
    socket_id: SocketId,
    subs: Vec<Sub>,
    /// Client events: the second of the current window and the count within it.
    client_events: (u32, u32),
    user: Option<Box<ConnUser>>,
    /// Set once the connection started closing: it has left every channel and receives
    /// nothing more.
    left: bool,
    io: T,
}

impl<T> Entry<T> {
    fn user_mut(&mut self) -> &mut ConnUser {
        self.user.get_or_insert_with(Box::default)
    }

    fn signed_in(&self) -> Option<&UserId> {
        self.user.as_ref()?.signed_in.as_ref().map(|(id, _)| id)
    }

    fn pending(&self) -> usize {
        self.user.as_ref().map_or(0, |u| u.pending.len())
    }

    fn is_pending(&self, channel: &str) -> bool {
        self.user.as_ref().is_some_and(|u| {
            u.pending
                .iter()
                .any(|p| p.wanted && p.channel.as_str() == channel)
        })
    }
}

/// The connection-side state of one worker.
pub struct Shard<T> {
    id: ShardId,
    apps: Arc<Apps>,
    limits: Limits,
    epoch: Instant,
    generation: u32,
    conns: Slab<Entry<T>>,
    registry: Registry,
    /// Local connections signed in as each user.
    signed_in: HashMap<(AppIdx, UserId), Vec<ConnKey>>,
    /// Whether every subscription waits for its owner's answer.
    confirm_all: bool,
    /// The number of the last join sent to an owner ([`Join::seq`]).
    join_seq: u32,
    effects: VecDeque<Effect>,
}

impl<T> Shard<T> {
    /// An empty shard `id`; `epoch` is the instant its client-event clock counts from.
    pub fn new(id: ShardId, apps: Arc<Apps>, limits: Limits, epoch: Instant) -> Shard<T> {
        let registry = Registry::new(apps.len());
        Shard {
            id,
            apps,
            limits,
            epoch,
            generation: 0,
            conns: Slab::new(),
            registry,
            signed_in: HashMap::new(),
            confirm_all: false,
            join_seq: 0,
            effects: VecDeque::new(),
        }
    }

    /// Makes every subscription wait for its owner's answer, not only presence and cache ones.
    pub fn confirm_through_owner(&mut self) {
        self.confirm_all = true;
    }

    /// Takes the app table of a configuration reload (`crate::app::Apps::reload`: the same
    /// indices, and new apps after them). Subscriptions and sign-ins stay; the new settings
    /// apply to the messages that follow. The shell closes the connections of removed and
    /// disabled apps.
    pub fn set_apps(&mut self, apps: Arc<Apps>) {
        self.registry.grow(apps.len());
        self.apps = apps;
    }

    /// This shard's id.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// The next effect to carry out.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    // ---- connections -------------------------------------------------------------------

    /// Adds a connection (of `app`, or of the echo endpoint when `None`) and returns its key.
    pub fn connect(&mut self, app: Option<AppIdx>, socket_id: SocketId, io: T) -> ConnKey {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let slot = self.conns.insert(Entry {
            generation,
            app,
            socket_id,
            subs: Vec::new(),
            client_events: (0, 0),
            user: None,
            left: false,
            io,
        });
        ConnKey {
            slot: slot as u32,
            generation,
        }
    }

    fn entry(&self, key: ConnKey) -> Option<&Entry<T>> {
        self.conns
            .get(key.slot as usize)
            .filter(|c| c.generation == key.generation)
    }

    fn entry_mut(&mut self, key: ConnKey) -> Option<&mut Entry<T>> {
        self.conns
            .get_mut(key.slot as usize)
            .filter(|c| c.generation == key.generation)
    }

    /// The shell's part of a connection, unless it has been removed.
    pub fn io(&self, key: ConnKey) -> Option<&T> {
        self.entry(key).map(|e| &e.io)
    }

    /// The shell's part of a connection, mutably.
    pub fn io_mut(&mut self, key: ConnKey) -> Option<&mut T> {
        self.entry_mut(key).map(|e| &mut e.io)
    }

    /// A connection's app (`None` for echo connections) and socket id.
    pub fn identity(&self, key: ConnKey) -> Option<(Option<AppIdx>, SocketId)> {
        self.entry(key).map(|e| (e.app, e.socket_id))
    }

    /// Every connection with the shell's part, for sweeps.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ConnKey, Option<AppIdx>, &mut T)> {
        self.conns.iter_mut().map(|(slot, e)| {
            (
                ConnKey {
                    slot: slot as u32,
                    generation: e.generation,
                },
                e.app,
                &mut e.io,
            )
        })
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether there are no connections.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The connection starts closing: it leaves every channel (each owner told), its pending
    /// joins are abandoned (undone when their answers arrive), it is signed out, and it
    /// receives nothing more. Idempotent.
    pub fn leave_all(&mut self, key: ConnKey) {
        let Some(e) = self.entry_mut(key) else { return };
        if e.left {
            return;
        }
        e.left = true;
        let subs = std::mem::take(&mut e.subs);
        if let Some(u) = e.user.as_mut() {
            u.pending.clear();
        }
        for sub in subs {
            self.leave(key, sub);
        }
        self.sign_out(key);
    }

    /// Removes a connection whose socket is gone, leaving what it had not left yet, and hands
    /// back the shell's part.
    pub fn remove(&mut self, key: ConnKey) -> Option<T> {
        self.leave_all(key);
        self.entry(key)?;
        Some(self.conns.remove(key.slot as usize).io)
    }

    // ---- fan-out -----------------------------------------------------------------------

    /// Calls `f` for every local subscriber of `channel` that is not closing and is not the
    /// connection with socket id `except`.
    pub fn for_each_subscriber(
        &mut self,
        app: AppIdx,
        channel: &str,
        except: Option<SocketId>,
        mut f: impl FnMut(ConnKey, &mut T),
    ) {
        let Some(ci) = self.registry.find(app, channel) else {
            return;
        };
        for &key in &self.registry.get(ci).subs {
            let Some(e) = self.conns.get_mut(key.slot as usize) else {
                continue;
            };
            if e.generation != key.generation || e.left || except == Some(e.socket_id) {
                continue;
            }
            f(key, &mut e.io);
        }
    }

    /// Calls `f` for every local connection signed in as `user`.
    pub fn for_each_signed_in(
        &mut self,
        app: AppIdx,
        user: &UserId,
        mut f: impl FnMut(ConnKey, &mut T),
    ) {
        let Some(keys) = self.signed_in.get(&(app, user.clone())) else {
            return;
        };
        for &key in keys {
            if let Some(e) = self.conns.get_mut(key.slot as usize)
                && e.generation == key.generation
                && !e.left
            {
                f(key, &mut e.io);
            }
        }
    }

    /// Acts on a message from an owner or another shard. Publishes and frames for users are
    /// handed to `deliver` once per local recipient.
    pub fn handle_shard_msg(
        &mut self,
        msg: ShardMsg,
        mut deliver: impl FnMut(ConnKey, &mut T, &Bytes),
    ) {
        match msg {
            ShardMsg::Publish {
                app,
                channel,
                frame,
                except,
            } => self.for_each_subscriber(app, channel.as_str(), except, |k, io| {
                deliver(k, io, &frame)
            }),
            ShardMsg::ToUser { app, user, frame } => {
                self.for_each_signed_in(app, &user, |k, io| deliver(k, io, &frame))
            }
            ShardMsg::ToConn { conn, frames } => {
                for frame in frames {
                    self.send(conn, frame);
                }
            }
            ShardMsg::JoinAnswer(a) => self.join_answered(a),
            ShardMsg::Terminate { app, user } => {
                let keys = self
                    .signed_in
                    .get(&(app, user))
                    .cloned()
                    .unwrap_or_default();
                for conn in keys {
                    self.effects.push_back(Effect::Close {
                        conn,
                        how: Closing::pusher(PusherCode::Unauthorized, true),
                    });
                }
            }
        }
    }

    // ---- the API's publishes ------------------------------------------------------------

    /// Publishes one API event to each of its channels (encoded once per channel); a cache
    /// channel's event goes to its owner, which keeps it and publishes it.
    pub fn trigger(&mut self, app: AppIdx, ev: &TriggerEvent) {
        for name in &ev.channels {
            let frame = ServerEvent::ChannelEvent {
                event: &ev.name,
                channel: name.as_str(),
                data: &ev.data,
            }
            .to_frame();
            let channel: Channel = Arc::new(name.clone());
            self.effects.push_back(if name.is_cache() {
                Effect::ToOwner(OwnerMsg::Cache {
                    app,
                    channel,
                    data: ev.data.clone(),
                    frame,
                    except: ev.socket_id,
                })
            } else {
                Effect::ToAll(ShardMsg::Publish {
                    app,
                    channel,
                    frame,
                    except: ev.socket_id,
                })
            });
        }
    }

    // ---- client messages -----------------------------------------------------------------

    fn send(&mut self, conn: ConnKey, frame: Bytes) {
        self.effects.push_back(Effect::Send { conn, frame });
    }

    fn send_event(&mut self, conn: ConnKey, event: &ServerEvent<'_>) {
        self.send(conn, event.to_frame());
    }

    fn pusher_error(&mut self, conn: ConnKey, code: Option<u16>, message: &str) {
        self.send_event(conn, &ServerEvent::Error { code, message });
    }

    fn subscription_error(
        &mut self,
        conn: ConnKey,
        channel: &str,
        kind: &str,
        error: &str,
        status: u16,
    ) {
        self.send_event(
            conn,
            &ServerEvent::SubscriptionError {
                channel,
                error_type: kind,
                error,
                status,
            },
        );
    }

    /// Acts on one text message from a Pusher connection, at `now`.
    pub fn handle_text(&mut self, key: ConnKey, mut text: Vec<u8>, now: Instant) {
        let Some(app) = self.entry(key).filter(|e| !e.left).and_then(|e| e.app) else {
            return;
        };
        let msg = match parse_client_message(&mut text, &self.limits) {
            Ok(msg) => msg,
            Err(e) => return self.pusher_error(key, Some(e.pusher_code()), &e.to_string()),
        };
        match msg {
            ClientMessage::Ping => self.send_event(key, &ServerEvent::Pong),
            ClientMessage::Pong => {}
            ClientMessage::Subscribe {
                channel,
                auth,
                channel_data,
            } => self.subscribe(key, app, &channel, auth.as_deref(), channel_data),
            ClientMessage::Unsubscribe { channel } => self.unsubscribe(key, app, &channel),
            ClientMessage::Signin { auth, user_data } => self.signin(key, app, &auth, user_data),
            ClientMessage::ClientEvent {
                event,
                channel,
                data,
            } => self.client_event(key, app, &event, &channel, &data, now),
        }
    }

    fn subscribe(
        &mut self,
        key: ConnKey,
        app: AppIdx,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<String>,
    ) {
        let name = match ChannelName::parse(channel, &self.limits) {
            Ok(name) => name,
            Err(e) => {
                let msg = e.to_string();
                return self.subscription_error(key, channel, "InvalidChannel", &msg, 400);
            }
        };
        let Some(conn) = self.entry(key) else { return };
        let socket_id = conn.socket_id;
        let sid = socket_id.to_string();
        let in_use = conn.subs.len() + conn.pending();
        let signed_in = conn.user.as_ref().and_then(|u| u.signed_in.clone());
        let pending = conn.is_pending(channel);
        let already = self
            .registry
            .find(app, channel)
            .is_some_and(|ci| conn.subs.iter().any(|s| s.chan == ci));
        let apps = self.apps.clone();
        let cfg = &apps.get(app).cfg;
        let verify = |data: Option<&str>| {
            auth::verify_channel(
                &cfg.key,
                &cfg.secret,
                &sid,
                name.as_str(),
                data,
                auth.unwrap_or(""),
            )
        };
        let mut member = None;
        match name.kind() {
            ChannelKind::Public => {}
            ChannelKind::Private | ChannelKind::EncryptedPrivate => {
                if let Err(e) = verify(None) {
                    let msg = e.to_string();
                    return self.subscription_error(key, channel, "AuthError", &msg, 401);
                }
            }
            ChannelKind::Presence => {
                // pusher-js also allows a signed-in user to join without channel_data, signed
                // over `socket_id:channel`; the member is then the signed-in user.
                let checked = match (&channel_data, &signed_in) {
                    (Some(data), _) => verify(Some(data))
                        .map_err(|e| (e.to_string(), 401))
                        .and_then(|()| {
                            parse_channel_data(data, &self.limits)
                                .map(|m| (UserId::from(m.user_id), m.user_info))
                                .map_err(|e| (e.to_string(), e.status()))
                        }),
                    (None, Some((id, info))) => verify(None)
                        .map_err(|e| (e.to_string(), 401))
                        .map(|()| (id.clone(), info.clone().unwrap_or_else(|| "null".into()))),
                    (None, None) => Err((
                        "Presence channels need channel_data (or a signed-in user)".into(),
                        401,
                    )),
                };
                match checked {
                    Ok(m) => member = Some(m),
                    Err((msg, status)) => {
                        return self.subscription_error(key, channel, "AuthError", &msg, status);
                    }
                }
            }
            ChannelKind::ServerToUser => {
                let mine = signed_in
                    .as_ref()
                    .is_some_and(|(id, _)| Some(&**id) == name.server_to_user_id());
                if !mine {
                    return self.subscription_error(
                        key,
                        channel,
                        "AuthError",
                        "Only the user signed in on this connection may subscribe to its channel",
                        403,
                    );
                }
            }
        }
        // Subscribing twice is idempotent: a presence join already made (or on its way) is
        // not repeated, another channel is confirmed again.
        if pending || (already && member.is_some()) {
            return;
        }
        if already {
            return self.send_event(
                key,
                &ServerEvent::SubscriptionSucceeded {
                    channel: name.as_str(),
                },
            );
        }
        let max = self.limits.max_channels_per_connection;
        if in_use >= max {
            let msg = format!("A connection may subscribe to at most {max} channels");
            return self.subscription_error(key, channel, "LimitReached", &msg, 429);
        }
        let reply = self.confirm_all || member.is_some() || name.is_cache();
        let channel: Channel = Arc::new(name);
        self.join_seq = self.join_seq.wrapping_add(1);
        let seq = self.join_seq;
        if reply {
            let info = member
                .as_ref()
                .filter(|_| self.confirm_all)
                .map(|(_, i)| Arc::from(i.as_str()));
            if let Some(c) = self.entry_mut(key) {
                c.user_mut().pending.push(Pending {
                    channel: channel.clone(),
                    seq,
                    wanted: true,
                    info,
                });
            }
        } else {
            self.add_sub(key, app, &channel);
            self.send_event(
                key,
                &ServerEvent::SubscriptionSucceeded {
                    channel: channel.as_str(),
                },
            );
        }
        let join = Join {
            app,
            channel,
            from: self.id,
            conn: key,
            seq,
            socket_id,
            member,
            reply,
        };
        self.effects
            .push_back(Effect::ToOwner(OwnerMsg::Join(join)));
    }

    /// Completes a join that waited for the channel's owner, or undoes it when the connection
    /// left or unsubscribed meanwhile.
    fn join_answered(&mut self, a: JoinAnswer) {
        let mut info = None;
        let still_wanted = self.entry_mut(a.conn).is_some_and(|c| {
            !c.left
                && c.user.as_mut().is_some_and(|u| {
                    match u.pending.iter().position(|p| p.seq == a.seq) {
                        Some(i) => {
                            let p = u.pending.remove(i);
                            info = p.info;
                            p.wanted
                        }
                        None => false,
                    }
                })
        });
        if !still_wanted {
            if a.accepted {
                self.effects.push_back(Effect::ToOwner(OwnerMsg::Leave {
                    app: a.app,
                    channel: a.channel,
                    user: a.user,
                }));
            }
            return;
        }
        if a.accepted {
            self.add_sub(a.conn, a.app, &a.channel);
            if let (Some(user), Some(c)) = (a.user, self.entry_mut(a.conn)) {
                c.user_mut().presence.push((a.channel.clone(), user, info));
            }
        }
        for f in a.frames {
            self.send(a.conn, f);
        }
    }

    fn unsubscribe(&mut self, key: ConnKey, app: AppIdx, channel: &str) {
        let Some(c) = self.entry_mut(key) else { return };
        if let Some(u) = c.user.as_mut() {
            // A join still waiting is abandoned; its answer undoes it.
            for p in &mut u.pending {
                if p.channel.as_str() == channel {
                    p.wanted = false;
                }
            }
        }
        let Some(ci) = self.registry.find(app, channel) else {
            return;
        };
        let Some(c) = self.entry_mut(key) else { return };
        let Some(i) = c.subs.iter().position(|s| s.chan == ci) else {
            return;
        };
        let sub = c.subs.swap_remove(i);
        self.leave(key, sub);
    }

    fn add_sub(&mut self, key: ConnKey, app: AppIdx, channel: &Channel) {
        let (chan, pos) = self.registry.add(app, channel, key);
        if let Some(c) = self.entry_mut(key) {
            c.subs.push(Sub { chan, pos });
        }
    }

    /// Removes one subscription (already taken out of the connection's list) and tells the
    /// channel's owner.
    fn leave(&mut self, key: ConnKey, sub: Sub) {
        let ch = self.registry.get(sub.chan);
        let (app, channel) = (ch.app, ch.name.clone());
        let user = self.entry_mut(key).and_then(|c| {
            let u = c.user.as_mut()?;
            let i = u.presence.iter().position(|(ch, ..)| *ch == channel)?;
            Some(u.presence.swap_remove(i).1)
        });
        if let Some(moved) = self.registry.remove(sub.chan, sub.pos)
            && let Some(m) = self.entry_mut(moved)
            && let Some(s) = m.subs.iter_mut().find(|s| s.chan == sub.chan)
        {
            s.pos = sub.pos;
        }
        self.effects
            .push_back(Effect::ToOwner(OwnerMsg::Leave { app, channel, user }));
    }

    fn sign_out(&mut self, key: ConnKey) {
        let Some(c) = self.entry_mut(key) else { return };
        let Some(app) = c.app else { return };
        let Some(u) = c.user.as_mut() else { return };
        let Some((user, _)) = u.signed_in.take() else {
            return;
        };
        let watchlist = std::mem::take(&mut u.watchlist);
        let index_key = (app, user.clone());
        if let Some(keys) = self.signed_in.get_mut(&index_key) {
            keys.retain(|k| *k != key);
            if keys.is_empty() {
                self.signed_in.remove(&index_key);
            }
        }
        self.effects.push_back(Effect::ToOwner(OwnerMsg::Signout {
            app,
            user,
            watchlist,
        }));
    }

    fn client_event(
        &mut self,
        key: ConnKey,
        app: AppIdx,
        event: &str,
        channel: &str,
        data: &str,
        now: Instant,
    ) {
        let apps = self.apps.clone();
        let cfg = &apps.get(app).cfg;
        let rejected = PusherCode::ClientEventRateLimit;
        if cfg.accept_client_events_from == ClientEvents::None {
            let msg = format!(
                "{}: client events are disabled for this app",
                rejected.message()
            );
            return self.pusher_error(key, Some(rejected.code()), &msg);
        }
        let name = match ChannelName::parse(channel, &self.limits) {
            Ok(n) => n,
            Err(e) => {
                let msg = format!("{}: {e}", rejected.message());
                return self.pusher_error(key, Some(rejected.code()), &msg);
            }
        };
        // Pusher docs: client events are only supported on private and presence channels
        // (encrypted channels refuse them: the server could not read what it relays).
        let presence = match name.kind() {
            ChannelKind::Private => false,
            ChannelKind::Presence => true,
            _ => {
                let msg = format!(
                    "{}: client events are only supported on private and presence channels",
                    rejected.message()
                );
                return self.pusher_error(key, Some(rejected.code()), &msg);
            }
        };
        let subscribed = self
            .registry
            .find(app, channel)
            .zip(self.entry(key))
            .is_some_and(|(ci, c)| c.subs.iter().any(|s| s.chan == ci));
        if !subscribed && cfg.accept_client_events_from == ClientEvents::Members {
            let code = PusherCode::Unauthorized;
            let msg = format!("{}: not subscribed to {channel}", code.message());
            return self.pusher_error(key, Some(code.code()), &msg);
        }
        let second = now.saturating_duration_since(self.epoch).as_secs() as u32;
        let limit = self.limits.client_events_per_second;
        let Some(c) = self.entry_mut(key) else { return };
        if c.client_events.0 != second {
            c.client_events = (second, 0);
        }
        c.client_events.1 += 1;
        if c.client_events.1 > limit {
            let msg = format!("{} ({limit} per second)", rejected.message());
            return self.pusher_error(key, Some(rejected.code()), &msg);
        }
        let socket_id = c.socket_id;
        let user_id = if presence {
            c.user.as_ref().and_then(|u| {
                u.presence
                    .iter()
                    .find(|(ch, ..)| ch.as_str() == channel)
                    .map(|(_, user, _)| user.clone())
            })
        } else {
            None
        };
        let frame = ServerEvent::ClientEvent {
            event,
            channel,
            data_json: data,
            user_id: user_id.as_deref(),
        }
        .to_frame();
        let channel: Channel = Arc::new(name);
        if apps.get(app).wants(EventKind::ClientEvent) {
            self.effects.push_back(Effect::Hook(
                app,
                Hook::ClientEvent {
                    channel: channel.clone(),
                    event: event.to_string(),
                    data: data.to_string(),
                    socket_id,
                    user_id: user_id.clone(),
                },
            ));
        }
        self.effects.push_back(Effect::ToAll(ShardMsg::Publish {
            app,
            channel,
            frame,
            except: Some(socket_id),
        }));
    }

    fn signin(&mut self, key: ConnKey, app: AppIdx, auth_value: &str, user_data: String) {
        let apps = self.apps.clone();
        let cfg = &apps.get(app).cfg;
        let Some(c) = self.entry(key) else { return };
        let sid = c.socket_id.to_string();
        if let Err(e) = auth::verify_signin(&cfg.key, &cfg.secret, &sid, &user_data, auth_value) {
            return self.pusher_error(key, Some(e.pusher_code()), &e.to_string());
        }
        let data = match parse_user_data(&user_data, &self.limits) {
            Ok(d) => d,
            Err(e) => return self.pusher_error(key, Some(e.pusher_code()), &e.to_string()),
        };
        if let Some(current) = c.signed_in() {
            if **current != *data.id {
                let code = PusherCode::Unauthorized;
                let msg = format!("{}: already signed in as user {current}", code.message());
                return self.pusher_error(key, Some(code.code()), &msg);
            }
            return self.send_event(
                key,
                &ServerEvent::SigninSuccess {
                    user_data: &user_data,
                },
            );
        }
        let user: UserId = UserId::from(data.id.as_str());
        let watchlist: Vec<UserId> = if cfg.watchlist_events {
            data.watchlist
                .iter()
                .map(|w| UserId::from(w.as_str()))
                .collect()
        } else {
            Vec::new()
        };
        let Some(c) = self.entry_mut(key) else { return };
        let u = c.user_mut();
        u.signed_in = Some((user.clone(), data.user_info.clone()));
        u.watchlist = watchlist.clone();
        self.signed_in
            .entry((app, user.clone()))
            .or_default()
            .push(key);
        self.send_event(
            key,
            &ServerEvent::SigninSuccess {
                user_data: &user_data,
            },
        );
        if data.watchlist_truncated {
            let code = PusherCode::WatchlistLimit;
            let msg = format!(
                "{}: only the first {} ids are watched",
                code.message(),
                self.limits.max_watchlist
            );
            self.pusher_error(key, Some(code.code()), &msg);
        }
        self.effects.push_back(Effect::ToOwner(OwnerMsg::Signin {
            app,
            user,
            watchlist,
            from: self.id,
            conn: key,
        }));
    }

    // ---- what the harness checks ----------------------------------------------------------

    /// The channels a connection is subscribed to, in no particular order.
    pub fn subscriptions(&self, key: ConnKey) -> Vec<Channel> {
        self.entry(key)
            .map(|e| {
                e.subs
                    .iter()
                    .map(|s| self.registry.get(s.chan).name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Subscriptions of this shard's connections to the channels of `app`.
    pub fn app_subscriptions(&self, app: AppIdx) -> u64 {
        self.registry.subscriptions(app)
    }

    /// This shard's subscribers of `channel`.
    pub fn local_subscribers(&self, app: AppIdx, channel: &str) -> usize {
        self.registry
            .find(app, channel)
            .map_or(0, |ci| self.registry.get(ci).subs.len())
    }

    /// Joins of a connection that wait for their owner.
    pub fn pending_joins(&self, key: ConnKey) -> usize {
        self.entry(key).map_or(0, Entry::pending)
    }

    /// The presence user a connection joined `channel` as.
    pub fn presence_user(&self, key: ConnKey, channel: &str) -> Option<UserId> {
        let u = self.entry(key)?.user.as_ref()?;
        u.presence
            .iter()
            .find(|(c, ..)| c.as_str() == channel)
            .map(|(_, id, _)| id.clone())
    }
}
