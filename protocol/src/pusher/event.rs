//! Events the server sends, in their exact wire shape.
//!
//! Pusher sends every event as `{"event":…,"channel"?:…,"data":…}` where `data` is a JSON
//! *string*: for `pusher:` and `pusher_internal:` events it holds a JSON document encoded a
//! second time, and for an application's event it is the string the publisher posted, passed
//! through unchanged. pusher-js decodes a string `data` when it can, so it would also accept
//! objects, but other client libraries do not; ringcast always sends strings. The one
//! exception is a relayed client event, whose `data` is the JSON value the sending client
//! wrote (an object from pusher-js), as Pusher relays it.
//!
//! Each event is one variant with exactly its fields, and is written by hand in one pass: the
//! shape is fixed, and a broadcast is encoded once and its bytes shared by every subscriber.

use std::io::Write as _;

use bytes::Bytes;

use super::json::{escape_bytes, push_str};
use super::socket_id::SocketId;

/// An event from the server to a client.
///
/// Fields named `*_json`, `user_info` and `members`' second elements are JSON text that the
/// caller produced (from [`super::member`] or [`super::message`]) and are written as they are;
/// an empty string is written as `null`. Every other string is escaped.
#[derive(Clone, Copy, Debug)]
pub enum ServerEvent<'a> {
    /// `pusher:connection_established`: the first event on every connection.
    ConnectionEstablished {
        /// The connection's id.
        socket_id: &'a SocketId,
        /// Seconds of silence after which the client should send `pusher:ping`; pusher-js
        /// refuses a handshake without it.
        activity_timeout: u32,
    },
    /// `pusher:error`. `code: None` is sent as `null`, as Pusher does for signature failures.
    Error {
        /// Pusher error code.
        code: Option<u16>,
        /// Human-readable text.
        message: &'a str,
    },
    /// `pusher:ping`: the server checks that the client is alive.
    Ping,
    /// `pusher:pong`: the answer to a client's `pusher:ping`.
    Pong,
    /// `pusher_internal:subscription_succeeded` for a non-presence channel.
    SubscriptionSucceeded {
        /// The channel.
        channel: &'a str,
    },
    /// `pusher_internal:subscription_succeeded` for a presence channel, with its members.
    PresenceSubscriptionSucceeded {
        /// The channel.
        channel: &'a str,
        /// `(user_id, user_info JSON)` for each distinct user, the subscriber included.
        members: &'a [(&'a str, &'a str)],
    },
    /// `pusher:subscription_error`, which Laravel Echo reports through a channel's `error()`
    /// callback.
    SubscriptionError {
        /// The channel.
        channel: &'a str,
        /// The error type, such as `AuthError`.
        error_type: &'a str,
        /// Human-readable text.
        error: &'a str,
        /// HTTP-style status, such as 401.
        status: u16,
    },
    /// `pusher_internal:member_added`: a user's first connection joined a presence channel.
    MemberAdded {
        /// The channel.
        channel: &'a str,
        /// The user.
        user_id: &'a str,
        /// The user's info, JSON.
        user_info: &'a str,
    },
    /// `pusher_internal:member_removed`: a user's last connection left a presence channel.
    MemberRemoved {
        /// The channel.
        channel: &'a str,
        /// The user.
        user_id: &'a str,
    },
    /// `pusher_internal:subscription_count`.
    SubscriptionCount {
        /// The channel.
        channel: &'a str,
        /// Subscribed connections.
        count: u64,
    },
    /// `pusher:cache_miss`: a cache channel has no event to replay. It carries no `data`.
    CacheMiss {
        /// The channel.
        channel: &'a str,
    },
    /// `pusher:signin_success`, echoing the signed `user_data` string.
    SigninSuccess {
        /// The `user_data` string exactly as the client sent it.
        user_data: &'a str,
    },
    /// `pusher_internal:watchlist_events`; a group with no ids is left out.
    WatchlistEvents {
        /// Watched users who are now online.
        online: &'a [&'a str],
        /// Watched users who are now offline.
        offline: &'a [&'a str],
    },
    /// An application's event on a channel. `data` is the string the publisher posted and is
    /// sent as a JSON string.
    ChannelEvent {
        /// The event name.
        event: &'a str,
        /// The channel.
        channel: &'a str,
        /// The published data.
        data: &'a str,
    },
    /// A client event relayed to the channel's other subscribers. On presence channels the
    /// server adds the sender's `user_id` (Pusher: taken from the sender's `channel_data`,
    /// never from the client).
    ClientEvent {
        /// The `client-` event name.
        event: &'a str,
        /// The channel.
        channel: &'a str,
        /// The client's `data`, as JSON.
        data_json: &'a str,
        /// The sender's user id on presence channels.
        user_id: Option<&'a str>,
    },
}

impl ServerEvent<'_> {
    /// The event's JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        let mut envelope = Obj::new(&mut out);
        envelope.str("event", self.name());
        if let Some(channel) = self.channel() {
            envelope.str("channel", channel);
        }
        match *self {
            Self::CacheMiss { .. } => {}
            Self::ChannelEvent { data, .. } => envelope.str("data", data),
            Self::ClientEvent {
                data_json, user_id, ..
            } => {
                envelope.raw("data", data_json);
                if let Some(user_id) = user_id {
                    envelope.str("user_id", user_id);
                }
            }
            _ => {
                // A JSON document, sent as a JSON string.
                let doc = self.data_document();
                let out = envelope.key("data");
                out.push(b'"');
                escape_bytes(out, &doc);
                out.push(b'"');
            }
        }
        envelope.end();
        out
    }

    /// The event as a complete WebSocket text frame.
    pub fn to_frame(&self) -> Bytes {
        crate::ws::encode::text(&self.to_json())
    }

    /// The `event` field.
    pub fn name(&self) -> &str {
        match *self {
            Self::ConnectionEstablished { .. } => "pusher:connection_established",
            Self::Error { .. } => "pusher:error",
            Self::Ping => "pusher:ping",
            Self::Pong => "pusher:pong",
            Self::SubscriptionSucceeded { .. } | Self::PresenceSubscriptionSucceeded { .. } => {
                "pusher_internal:subscription_succeeded"
            }
            Self::SubscriptionError { .. } => "pusher:subscription_error",
            Self::MemberAdded { .. } => "pusher_internal:member_added",
            Self::MemberRemoved { .. } => "pusher_internal:member_removed",
            Self::SubscriptionCount { .. } => "pusher_internal:subscription_count",
            Self::CacheMiss { .. } => "pusher:cache_miss",
            Self::SigninSuccess { .. } => "pusher:signin_success",
            Self::WatchlistEvents { .. } => "pusher_internal:watchlist_events",
            Self::ChannelEvent { event, .. } | Self::ClientEvent { event, .. } => event,
        }
    }

    /// The `channel` field, for the events that have one.
    pub fn channel(&self) -> Option<&str> {
        match *self {
            Self::SubscriptionSucceeded { channel }
            | Self::PresenceSubscriptionSucceeded { channel, .. }
            | Self::SubscriptionError { channel, .. }
            | Self::MemberAdded { channel, .. }
            | Self::MemberRemoved { channel, .. }
            | Self::SubscriptionCount { channel, .. }
            | Self::CacheMiss { channel }
            | Self::ChannelEvent { channel, .. }
            | Self::ClientEvent { channel, .. } => Some(channel),
            Self::ConnectionEstablished { .. }
            | Self::Error { .. }
            | Self::Ping
            | Self::Pong
            | Self::SigninSuccess { .. }
            | Self::WatchlistEvents { .. } => None,
        }
    }

    /// The JSON document that `data` carries as a string, for the protocol's own events.
    fn data_document(&self) -> Vec<u8> {
        let mut doc = Vec::with_capacity(self.size_hint());
        let mut o = Obj::new(&mut doc);
        match *self {
            Self::ConnectionEstablished {
                socket_id,
                activity_timeout,
            } => {
                o.str("socket_id", &socket_id.to_string());
                o.num("activity_timeout", activity_timeout);
            }
            Self::Error { code, message } => {
                match code {
                    Some(code) => o.num("code", code),
                    None => o.raw("code", "null"),
                }
                o.str("message", message);
            }
            Self::PresenceSubscriptionSucceeded { members, .. } => {
                // Pusher: `{"presence":{"ids":[…],"hash":{user_id: user_info, …},"count":n}}`.
                let mut presence = Obj::new(o.key("presence"));
                str_array(presence.key("ids"), members.iter().map(|(id, _)| *id));
                let mut hash = Obj::new(presence.key("hash"));
                for (user_id, user_info) in members {
                    hash.raw(user_id, user_info);
                }
                hash.end();
                presence.num("count", members.len());
                presence.end();
            }
            Self::SubscriptionError {
                error_type,
                error,
                status,
                ..
            } => {
                o.str("type", error_type);
                o.str("error", error);
                o.num("status", status);
            }
            Self::MemberAdded {
                user_id, user_info, ..
            } => {
                o.str("user_id", user_id);
                o.raw("user_info", user_info);
            }
            Self::MemberRemoved { user_id, .. } => o.str("user_id", user_id),
            Self::SubscriptionCount { count, .. } => o.num("subscription_count", count),
            Self::SigninSuccess { user_data } => o.str("user_data", user_data),
            Self::WatchlistEvents { online, offline } => {
                // pusher-js reads `{"events":[{"name":"online"|"offline","user_ids":[…]}]}`.
                let events = o.key("events");
                events.push(b'[');
                let groups = [("online", online), ("offline", offline)];
                for (i, (name, ids)) in groups.into_iter().filter(|g| !g.1.is_empty()).enumerate() {
                    if i > 0 {
                        events.push(b',');
                    }
                    let mut group = Obj::new(events);
                    group.str("name", name);
                    str_array(group.key("user_ids"), ids.iter().copied());
                    group.end();
                }
                events.push(b']');
            }
            // `{}`; the remaining events do not carry a document.
            Self::Ping | Self::Pong | Self::SubscriptionSucceeded { .. } => {}
            Self::CacheMiss { .. } | Self::ChannelEvent { .. } | Self::ClientEvent { .. } => {}
        }
        o.end();
        doc
    }

    /// A capacity that avoids regrowing the output for the events that carry big payloads.
    fn size_hint(&self) -> usize {
        let payload = match *self {
            Self::ChannelEvent { data, .. } => data.len(),
            Self::ClientEvent { data_json, .. } => data_json.len(),
            Self::PresenceSubscriptionSucceeded { members, .. } => members
                .iter()
                .map(|(id, info)| 2 * id.len() + info.len() + 8)
                .sum(),
            _ => 64,
        };
        // Room for the envelope, the names and some escaping.
        payload + payload / 8 + 160
    }
}

/// Writes the members of a JSON object one at a time.
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Obj<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// Writes `"key":` and returns the output for the value.
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        push_str(self.out, key);
        self.out.push(b':');
        self.out
    }

    fn str(&mut self, key: &str, value: &str) {
        push_str(self.key(key), value);
    }

    fn num(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = write!(self.key(key), "{value}");
    }

    /// JSON text written as it is; empty text is written as `null` so the output stays JSON.
    fn raw(&mut self, key: &str, json: &str) {
        let json = if json.is_empty() { "null" } else { json };
        self.key(key).extend_from_slice(json.as_bytes());
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// `["a","b",…]`
fn str_array<'s>(out: &mut Vec<u8>, items: impl Iterator<Item = &'s str>) {
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, item);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn wire(e: &ServerEvent<'_>) -> String {
        String::from_utf8(e.to_json()).unwrap()
    }

    fn envelope(e: &ServerEvent<'_>) -> Value {
        let v: Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["event"], e.name());
        assert_eq!(v.get("channel").and_then(Value::as_str), e.channel());
        v
    }

    /// Every event whose `data` is a JSON document: its exact bytes, and the document that a
    /// client gets by parsing the envelope and then the `data` string.
    #[test]
    fn protocol_events_exact_bytes_and_double_encoding() {
        use ServerEvent as E;
        let id = SocketId::new(1234, 5678);
        let members = [("1", r#"{"name":"Ann"}"#), ("2", "null")];
        let cases = [
            (
                E::ConnectionEstablished {
                    socket_id: &id,
                    activity_timeout: 120,
                },
                r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1234.5678\",\"activity_timeout\":120}"}"#,
                json!({"socket_id": "1234.5678", "activity_timeout": 120}),
            ),
            (
                E::Error {
                    code: Some(4001),
                    message: "Application does not exist",
                },
                r#"{"event":"pusher:error","data":"{\"code\":4001,\"message\":\"Application does not exist\"}"}"#,
                json!({"code": 4001, "message": "Application does not exist"}),
            ),
            (
                E::Error {
                    code: None,
                    message: "a \"b\"\n",
                },
                r#"{"event":"pusher:error","data":"{\"code\":null,\"message\":\"a \\\"b\\\"\\n\"}"}"#,
                json!({"code": null, "message": "a \"b\"\n"}),
            ),
            (E::Ping, r#"{"event":"pusher:ping","data":"{}"}"#, json!({})),
            (E::Pong, r#"{"event":"pusher:pong","data":"{}"}"#, json!({})),
            (
                E::SubscriptionSucceeded {
                    channel: "my-channel",
                },
                r#"{"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"}"#,
                json!({}),
            ),
            (
                E::PresenceSubscriptionSucceeded {
                    channel: "presence-x",
                    members: &members,
                },
                r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-x","data":"{\"presence\":{\"ids\":[\"1\",\"2\"],\"hash\":{\"1\":{\"name\":\"Ann\"},\"2\":null},\"count\":2}}"}"#,
                json!({"presence": {"ids": ["1", "2"], "hash": {"1": {"name": "Ann"}, "2": null}, "count": 2}}),
            ),
            (
                E::PresenceSubscriptionSucceeded {
                    channel: "presence-x",
                    members: &[],
                },
                r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-x","data":"{\"presence\":{\"ids\":[],\"hash\":{},\"count\":0}}"}"#,
                json!({"presence": {"ids": [], "hash": {}, "count": 0}}),
            ),
            (
                E::SubscriptionError {
                    channel: "private-x",
                    error_type: "AuthError",
                    error: "Invalid signature",
                    status: 401,
                },
                r#"{"event":"pusher:subscription_error","channel":"private-x","data":"{\"type\":\"AuthError\",\"error\":\"Invalid signature\",\"status\":401}"}"#,
                json!({"type": "AuthError", "error": "Invalid signature", "status": 401}),
            ),
            (
                E::MemberAdded {
                    channel: "presence-x",
                    user_id: "7",
                    user_info: r#"{"n":"é"}"#,
                },
                r#"{"event":"pusher_internal:member_added","channel":"presence-x","data":"{\"user_id\":\"7\",\"user_info\":{\"n\":\"é\"}}"}"#,
                json!({"user_id": "7", "user_info": {"n": "é"}}),
            ),
            (
                E::MemberAdded {
                    channel: "presence-x",
                    user_id: "7",
                    user_info: "",
                },
                r#"{"event":"pusher_internal:member_added","channel":"presence-x","data":"{\"user_id\":\"7\",\"user_info\":null}"}"#,
                json!({"user_id": "7", "user_info": null}),
            ),
            (
                E::MemberRemoved {
                    channel: "presence-x",
                    user_id: "7",
                },
                r#"{"event":"pusher_internal:member_removed","channel":"presence-x","data":"{\"user_id\":\"7\"}"}"#,
                json!({"user_id": "7"}),
            ),
            (
                E::SubscriptionCount {
                    channel: "x",
                    count: 3,
                },
                r#"{"event":"pusher_internal:subscription_count","channel":"x","data":"{\"subscription_count\":3}"}"#,
                json!({"subscription_count": 3}),
            ),
            (
                E::SigninSuccess {
                    user_data: r#"{"id":"1"}"#,
                },
                r#"{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"1\\\"}\"}"}"#,
                json!({"user_data": r#"{"id":"1"}"#}),
            ),
            (
                E::WatchlistEvents {
                    online: &["1"],
                    offline: &["2", "3"],
                },
                r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"1\"]},{\"name\":\"offline\",\"user_ids\":[\"2\",\"3\"]}]}"}"#,
                json!({"events": [{"name": "online", "user_ids": ["1"]}, {"name": "offline", "user_ids": ["2", "3"]}]}),
            ),
            (
                E::WatchlistEvents {
                    online: &[],
                    offline: &["2"],
                },
                r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"offline\",\"user_ids\":[\"2\"]}]}"}"#,
                json!({"events": [{"name": "offline", "user_ids": ["2"]}]}),
            ),
            (
                E::WatchlistEvents {
                    online: &["1"],
                    offline: &[],
                },
                r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"1\"]}]}"}"#,
                json!({"events": [{"name": "online", "user_ids": ["1"]}]}),
            ),
        ];
        for (event, bytes, data) in cases {
            assert_eq!(wire(&event), bytes);
            let env = envelope(&event);
            let text = env["data"].as_str().expect("data is a JSON string");
            let doc: Value = serde_json::from_str(text).expect("data holds a JSON document");
            assert_eq!(doc, data, "{bytes}");
        }
    }

    #[test]
    fn cache_miss_has_no_data() {
        let e = ServerEvent::CacheMiss { channel: "cache-x" };
        assert_eq!(
            wire(&e),
            r#"{"event":"pusher:cache_miss","channel":"cache-x"}"#
        );
        assert!(envelope(&e).get("data").is_none());
    }

    #[test]
    fn channel_event_data_is_the_published_string() {
        let data = r#"{"order":{"id":1,"note":"line\nbreak \u2028"}}"#;
        let event = "App\\Events\\OrderShipped";
        let e = ServerEvent::ChannelEvent {
            event,
            channel: "orders",
            data,
        };
        assert_eq!(
            wire(&e),
            r#"{"event":"App\\Events\\OrderShipped","channel":"orders","data":"{\"order\":{\"id\":1,\"note\":\"line\\nbreak \\u2028\"}}"}"#
        );
        assert_eq!(envelope(&e)["data"], data);
        let e = ServerEvent::ChannelEvent {
            event: "e",
            channel: "c",
            data: "not json",
        };
        assert_eq!(wire(&e), r#"{"event":"e","channel":"c","data":"not json"}"#);
        assert_eq!(envelope(&e)["data"], "not json");
    }

    #[test]
    fn client_event_keeps_the_clients_json() {
        let e = ServerEvent::ClientEvent {
            event: "client-typing",
            channel: "presence-x",
            data_json: r#"{"typing":true}"#,
            user_id: Some("7"),
        };
        assert_eq!(
            wire(&e),
            r#"{"event":"client-typing","channel":"presence-x","data":{"typing":true},"user_id":"7"}"#
        );
        assert_eq!(envelope(&e)["data"], json!({"typing": true}));
        let e = ServerEvent::ClientEvent {
            event: "client-x",
            channel: "private-x",
            data_json: r#""s""#,
            user_id: None,
        };
        assert_eq!(
            wire(&e),
            r#"{"event":"client-x","channel":"private-x","data":"s"}"#
        );
        assert!(envelope(&e).get("user_id").is_none());
    }

    #[test]
    fn frames_wrap_the_json() {
        let e = ServerEvent::Pong;
        let (frame, json) = (e.to_frame(), e.to_json());
        assert_eq!((frame[0], frame[1] as usize), (0x81, json.len()));
        assert_eq!(&frame[2..], &json[..]);
        let big = "x".repeat(70_000);
        let e = ServerEvent::ChannelEvent {
            event: "e",
            channel: "c",
            data: &big,
        };
        assert_eq!(e.to_frame(), crate::ws::encode::text(&e.to_json()));
    }
}
