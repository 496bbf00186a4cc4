//! Pusher protocol messages from clients: subscriptions, pings and their answers.
//!
//! A message that cannot be understood is answered with a `pusher:error` and the connection
//! stays open, as hosted Pusher and Reverb do: one bad frame from a buggy client must not cost
//! it its other subscriptions. A refused subscription is answered with
//! `pusher:subscription_error` on that channel, which pusher-js hands to the channel and
//! Laravel Echo to its `.error()` callback.

use ringcast_protocol::pusher::auth;
use ringcast_protocol::pusher::channel::{ChannelKind, ChannelName};
use ringcast_protocol::pusher::event::ServerEvent;
use ringcast_protocol::pusher::message::{ClientMessage, parse_client_message};

use crate::ids::{AppIdx, ConnKey};
use crate::worker::Worker;

impl Worker {
    /// Acts on one text message from an app connection.
    pub fn on_pusher_message(&mut self, key: ConnKey, app: AppIdx, mut text: Vec<u8>) {
        let msg = match parse_client_message(&mut text, &self.shared.config.limits) {
            Ok(msg) => msg,
            Err(e) => {
                let message = e.to_string();
                self.send_event(
                    key,
                    &ServerEvent::Error {
                        code: Some(e.pusher_code()),
                        message: &message,
                    },
                );
                return;
            }
        };
        match msg {
            ClientMessage::Ping => self.send_event(key, &ServerEvent::Pong),
            ClientMessage::Pong => {}
            ClientMessage::Subscribe {
                channel,
                auth,
                channel_data,
            } => self.on_subscribe(key, app, &channel, auth.as_deref(), channel_data.as_deref()),
            ClientMessage::Unsubscribe { channel } => {
                self.unsubscribe(key, app, &channel);
            }
            ClientMessage::Signin { .. } => self.send_event(
                key,
                &ServerEvent::Error {
                    code: None,
                    message: "User authentication is not enabled for this app",
                },
            ),
            ClientMessage::ClientEvent { channel, .. } => {
                let message = format!("Client events are not enabled on channel {channel}");
                self.send_event(
                    key,
                    &ServerEvent::Error {
                        code: None,
                        message: &message,
                    },
                );
            }
        }
    }

    fn subscription_error(&mut self, key: ConnKey, channel: &str, kind: &str, error: &str, status: u16) {
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
        channel_data: Option<&str>,
    ) {
        let name = match ChannelName::parse(channel, &self.shared.config.limits) {
            Ok(name) => name,
            Err(e) => {
                let msg = e.to_string();
                return self.subscription_error(key, channel, "InvalidChannel", &msg, 400);
            }
        };
        let Some(conn) = self.get(key) else { return };
        let socket_id = conn.socket_id.to_string();
        let subscribed = conn.subs.len();
        let shared = self.shared.clone();
        let cfg = &shared.apps.get(app).cfg;
        match name.kind() {
            ChannelKind::Public => {}
            ChannelKind::Private | ChannelKind::EncryptedPrivate => {
                if let Err(e) = auth::verify_channel(
                    &cfg.key,
                    &cfg.secret,
                    &socket_id,
                    name.as_str(),
                    None,
                    auth.unwrap_or(""),
                ) {
                    let msg = e.to_string();
                    return self.subscription_error(key, channel, "AuthError", &msg, 401);
                }
            }
            ChannelKind::Presence | ChannelKind::ServerToUser => {
                let _ = channel_data;
                return self.subscription_error(
                    key,
                    channel,
                    "UnsupportedChannel",
                    "Presence and user channels are not enabled",
                    400,
                );
            }
        }
        if subscribed >= shared.config.limits.max_channels_per_connection {
            let msg = format!(
                "A connection may subscribe to at most {} channels",
                shared.config.limits.max_channels_per_connection
            );
            return self.subscription_error(key, channel, "LimitReached", &msg, 429);
        }
        self.subscribe(key, app, name.as_str());
        self.send_event(
            key,
            &ServerEvent::SubscriptionSucceeded {
                channel: name.as_str(),
            },
        );
    }
}
