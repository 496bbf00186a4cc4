//! Pusher protocol messages from clients: subscriptions, client events, sign-in, pings.
//!
//! A message that cannot be understood is answered with a `pusher:error` and the connection
//! stays open, as hosted Pusher and Reverb do: one bad frame from a buggy client must not cost
//! it its other subscriptions. A refused subscription is answered with
//! `pusher:subscription_error` on that channel, which pusher-js hands to the channel and
//! Laravel Echo to its `.error()` callback.
//!
//! Presence and cache subscriptions wait for the channel's owner (see `crate::owner`): the
//! owner decides membership and holds the cached event, and its answer carries the frames the
//! subscriber is sent first. Other subscriptions are confirmed at once and only counted by the
//! owner.

use std::sync::Arc;

use ringcast_protocol::pusher::auth;
use ringcast_protocol::pusher::channel::{ChannelKind, ChannelName};
use ringcast_protocol::pusher::event::ServerEvent;
use ringcast_protocol::pusher::member::{parse_channel_data, parse_user_data};
use ringcast_protocol::pusher::message::{ClientMessage, parse_client_message};

use crate::config::ClientEvents;
use crate::ids::{AppIdx, ConnKey};
use crate::mesh::MeshMsg;
use crate::owner::{ChannelOp, Join, JoinAnswer, UserOp, user_owner};
use crate::worker::{Closing, Worker};

impl Worker {
    /// Acts on one text message from an app connection.
    pub fn on_pusher_message(&mut self, key: ConnKey, app: AppIdx, mut text: Vec<u8>) {
        let msg = match parse_client_message(&mut text, &self.shared.config.limits) {
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
            } => self.on_subscribe(key, app, &channel, auth.as_deref(), channel_data),
            ClientMessage::Unsubscribe { channel } => {
                if let Some(u) = self.get_mut(key).and_then(|c| c.user.as_mut()) {
                    u.pending.retain(|p| **p != *channel);
                }
                self.unsubscribe(key, app, &channel);
            }
            ClientMessage::Signin { auth, user_data } => self.on_signin(key, app, &auth, user_data),
            ClientMessage::ClientEvent {
                event,
                channel,
                data,
            } => self.on_client_event(key, app, &event, &channel, &data),
        }
    }

    fn pusher_error(&mut self, key: ConnKey, code: Option<u16>, message: &str) {
        self.send_event(key, &ServerEvent::Error { code, message });
    }

    fn subscription_error(
        &mut self,
        key: ConnKey,
        channel: &str,
        kind: &str,
        error: &str,
        status: u16,
    ) {
        self.send_event(
            key,
            &ServerEvent::SubscriptionError {
                channel,
                error_type: kind,
                error,
                status,
            },
        );
    }

    fn on_subscribe(
        &mut self,
        key: ConnKey,
        app: AppIdx,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<String>,
    ) {
        let name = match ChannelName::parse(channel, &self.shared.config.limits) {
            Ok(name) => name,
            Err(e) => {
                let msg = e.to_string();
                return self.subscription_error(key, channel, "InvalidChannel", &msg, 400);
            }
        };
        let Some(conn) = self.get(key) else { return };
        let socket_id = conn.socket_id;
        let sid = socket_id.to_string();
        let subscribed = conn.subs.len();
        let signed_in = conn.user.as_ref().and_then(|u| u.signed_in.clone());
        let pending = conn
            .user
            .as_ref()
            .is_some_and(|u| u.pending.iter().any(|p| **p == *channel));
        let already = self
            .registry
            .find(app, channel)
            .is_some_and(|ci| conn.subs.iter().any(|s| s.chan == ci));
        let shared = self.shared.clone();
        let cfg = &shared.apps.get(app).cfg;
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
                            parse_channel_data(data, &shared.config.limits)
                                .map(|m| (Arc::<str>::from(m.user_id), m.user_info))
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
        let max = shared.config.limits.max_channels_per_connection;
        if subscribed >= max {
            let msg = format!("A connection may subscribe to at most {max} channels");
            return self.subscription_error(key, channel, "LimitReached", &msg, 429);
        }
        let channel: Arc<str> = Arc::from(name.as_str());
        let reply = member.is_some() || name.is_cache();
        if reply {
            if let Some(c) = self.get_mut(key) {
                c.user_mut().pending.push(channel.clone());
            }
        } else {
            self.subscribe(key, app, &channel);
            self.send_event(
                key,
                &ServerEvent::SubscriptionSucceeded { channel: &channel },
            );
        }
        let owner = self.owner_of(app, &channel);
        let join = Join {
            app,
            channel,
            from: self.id,
            conn: key,
            socket_id,
            member,
            reply,
        };
        self.to_worker(owner, MeshMsg::Channel(ChannelOp::Join(join)));
    }

    /// Completes a join that waited for the channel's owner, or undoes it when the connection
    /// left or unsubscribed meanwhile.
    pub fn on_join_answer(&mut self, a: JoinAnswer) {
        let still_wanted = self.get_mut(a.conn).is_some_and(|c| {
            !c.is_closing()
                && c.user.as_mut().is_some_and(|u| {
                    let before = u.pending.len();
                    u.pending.retain(|p| *p != a.channel);
                    u.pending.len() != before
                })
        });
        if !still_wanted {
            if a.accepted {
                let owner = self.owner_of(a.app, &a.channel);
                let op = ChannelOp::Leave {
                    app: a.app,
                    channel: a.channel,
                    user: a.user,
                };
                self.to_worker(owner, MeshMsg::Channel(op));
            }
            return;
        }
        if a.accepted {
            self.subscribe(a.conn, a.app, &a.channel);
            if let (Some(user), Some(c)) = (a.user, self.get_mut(a.conn)) {
                c.user_mut().presence.push((a.channel.clone(), user));
            }
        }
        for f in a.frames {
            self.send(a.conn, f);
        }
    }

    fn on_client_event(
        &mut self,
        key: ConnKey,
        app: AppIdx,
        event: &str,
        channel: &str,
        data: &str,
    ) {
        let shared = self.shared.clone();
        let cfg = &shared.apps.get(app).cfg;
        if cfg.accept_client_events_from == ClientEvents::None {
            return self.pusher_error(key, Some(4301), "Client events are disabled for this app");
        }
        let name = match ChannelName::parse(channel, &shared.config.limits) {
            Ok(n) => n,
            Err(e) => return self.pusher_error(key, Some(4301), &e.to_string()),
        };
        // Pusher docs: client events are only supported on private and presence channels
        // (encrypted channels refuse them: the server could not read what it relays).
        let presence = match name.kind() {
            ChannelKind::Private => false,
            ChannelKind::Presence => true,
            _ => {
                return self.pusher_error(
                    key,
                    Some(4301),
                    "Client events are only supported on private and presence channels",
                );
            }
        };
        let subscribed = self
            .registry
            .find(app, channel)
            .zip(self.get(key))
            .is_some_and(|(ci, c)| c.subs.iter().any(|s| s.chan == ci));
        if !subscribed && cfg.accept_client_events_from == ClientEvents::Members {
            let msg = format!("Client event rejected: not subscribed to {channel}");
            return self.pusher_error(key, Some(4009), &msg);
        }
        let now = self.now();
        let limit = shared.config.limits.client_events_per_second;
        let Some(c) = self.get_mut(key) else { return };
        if c.client_events.0 != now {
            c.client_events = (now, 0);
        }
        c.client_events.1 += 1;
        if c.client_events.1 > limit {
            let msg = format!("Client event rejected due to rate limit ({limit} per second)");
            return self.pusher_error(key, Some(4301), &msg);
        }
        let socket_id = c.socket_id;
        let user_id = if presence {
            c.user.as_ref().and_then(|u| {
                u.presence
                    .iter()
                    .find(|(ch, _)| &**ch == channel)
                    .map(|(_, user)| user.clone())
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
        self.publish(app, channel, frame, Some(socket_id));
    }

    fn on_signin(&mut self, key: ConnKey, app: AppIdx, auth_value: &str, user_data: String) {
        let shared = self.shared.clone();
        let cfg = &shared.apps.get(app).cfg;
        let Some(c) = self.get(key) else { return };
        let sid = c.socket_id.to_string();
        if let Err(e) = auth::verify_signin(&cfg.key, &cfg.secret, &sid, &user_data, auth_value) {
            return self.pusher_error(key, Some(e.pusher_code()), &e.to_string());
        }
        let data = match parse_user_data(&user_data, &shared.config.limits) {
            Ok(d) => d,
            Err(e) => return self.pusher_error(key, Some(e.pusher_code()), &e.to_string()),
        };
        if let Some(current) = c.signed_in() {
            if **current != *data.id {
                let msg = format!("Already signed in as user {current}");
                return self.pusher_error(key, Some(4009), &msg);
            }
            return self.send_event(
                key,
                &ServerEvent::SigninSuccess {
                    user_data: &user_data,
                },
            );
        }
        let user: Arc<str> = Arc::from(data.id.as_str());
        let watchlist: Vec<Arc<str>> = if cfg.watchlist_events {
            data.watchlist
                .iter()
                .map(|w| Arc::from(w.as_str()))
                .collect()
        } else {
            Vec::new()
        };
        let c = self.get_mut(key).expect("checked above");
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
            let msg = format!(
                "Watchlist limit exceeded: only the first {} ids are watched",
                shared.config.limits.max_watchlist
            );
            self.pusher_error(key, Some(4302), &msg);
        }
        let owner = user_owner(app, self.shared.mesh.len());
        self.to_worker(
            owner,
            MeshMsg::User(UserOp::Signin {
                app,
                user,
                watchlist,
                from: self.id,
                conn: key,
            }),
        );
    }

    /// Closes every local connection signed in as `user` (the API's terminate_connections).
    pub fn terminate_user(&mut self, app: AppIdx, user: &Arc<str>) {
        let keys = self
            .signed_in
            .get(&(app, user.clone()))
            .cloned()
            .unwrap_or_default();
        for key in keys {
            self.close(
                key,
                Closing {
                    code: 4009,
                    reason: "Connection terminated by the application",
                    pusher_error: true,
                    drop_queue: false,
                },
            );
        }
    }
}
