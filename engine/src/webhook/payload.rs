//! What a webhook request carries, byte for byte.
//!
//! Pusher's webhook documentation gives the body as `{"time_ms": <unix ms>, "events": [...]}`
//! and each event as an object with a `name` and the fields of its kind; the receiver checks
//! `X-Pusher-Signature`, the hex HMAC-SHA256 of the raw body keyed with the app secret, and
//! finds the app by `X-Pusher-Key` (what the server SDKs' `webhook()` and `validate_webhook`
//! do). The body is encoded once per request and signed as sent, so a retry carries the same
//! bytes and the same signature.

use serde_json::{Map, Value, json};

use super::Hook;

impl Hook {
    /// The event object of this hook, as Pusher's documentation lists it:
    ///
    /// - `channel_occupied` / `channel_vacated`: `channel`
    /// - `member_added` / `member_removed`: `channel`, `user_id`
    /// - `client_event`: `channel`, `event`, `data`, `socket_id`, and `user_id` on presence
    ///   channels
    /// - `cache_miss`: `channel`
    /// - `subscription_count`: `channel`, `subscription_count`
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("name".into(), self.kind().name().into());
        o.insert("channel".into(), self.channel().into());
        match self {
            Hook::ChannelOccupied { .. } | Hook::ChannelVacated { .. } | Hook::CacheMiss { .. } => {
            }
            Hook::MemberAdded { user_id, .. } | Hook::MemberRemoved { user_id, .. } => {
                o.insert("user_id".into(), (&**user_id).into());
            }
            Hook::ClientEvent {
                event,
                data,
                socket_id,
                user_id,
                ..
            } => {
                o.insert("event".into(), event.as_str().into());
                o.insert("data".into(), client_data(data).into());
                o.insert("socket_id".into(), socket_id.to_string().into());
                if let Some(u) = user_id {
                    o.insert("user_id".into(), (&**u).into());
                }
            }
            Hook::SubscriptionCount { count, .. } => {
                o.insert("subscription_count".into(), (*count).into());
            }
        }
        Value::Object(o)
    }
}

/// A client event's `data` as the webhook gives it: a string. pusher-js sends the data of a
/// client event as a JSON value; a string stays that string, anything else is its JSON text
/// (what the receiver's `JSON.parse(event.data)` turns back into the object sent).
fn client_data(json: &str) -> String {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::String(s)) => s,
        _ => json.to_string(),
    }
}

/// The body of one request: `{"time_ms":…,"events":[…]}`.
pub fn body(time_ms: u64, events: &[Value]) -> String {
    json!({ "time_ms": time_ms, "events": events }).to_string()
}

/// `X-Pusher-Signature` of `body`: hex HMAC-SHA256 keyed with the app secret.
pub fn signature(secret: &str, body: &str) -> String {
    ringcast_protocol::pusher::auth::sign_hex(secret, body)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ringcast_protocol::Limits;
    use ringcast_protocol::pusher::channel::ChannelName;
    use ringcast_protocol::pusher::socket_id::SocketId;

    use super::*;

    fn ch(name: &str) -> crate::state::msg::Channel {
        Arc::new(ChannelName::parse(name, &Limits::default()).unwrap())
    }

    #[test]
    fn every_event_has_its_documented_fields() {
        let cases = [
            (
                Hook::ChannelOccupied { channel: ch("a") },
                json!({"name": "channel_occupied", "channel": "a"}),
            ),
            (
                Hook::ChannelVacated { channel: ch("a") },
                json!({"name": "channel_vacated", "channel": "a"}),
            ),
            (
                Hook::MemberAdded {
                    channel: ch("presence-r"),
                    user_id: "7".into(),
                },
                json!({"name": "member_added", "channel": "presence-r", "user_id": "7"}),
            ),
            (
                Hook::MemberRemoved {
                    channel: ch("presence-r"),
                    user_id: "7".into(),
                },
                json!({"name": "member_removed", "channel": "presence-r", "user_id": "7"}),
            ),
            (
                Hook::ClientEvent {
                    channel: ch("private-c"),
                    event: "client-typing".into(),
                    data: r#"{"a":1}"#.into(),
                    socket_id: SocketId::new(1, 2),
                    user_id: None,
                },
                json!({"name": "client_event", "channel": "private-c", "event": "client-typing",
                       "data": "{\"a\":1}", "socket_id": "1.2"}),
            ),
            (
                Hook::ClientEvent {
                    channel: ch("presence-c"),
                    event: "client-x".into(),
                    data: r#""plain""#.into(),
                    socket_id: SocketId::new(3, 4),
                    user_id: Some("u".into()),
                },
                json!({"name": "client_event", "channel": "presence-c", "event": "client-x",
                       "data": "plain", "socket_id": "3.4", "user_id": "u"}),
            ),
            (
                Hook::CacheMiss {
                    channel: ch("cache-c"),
                },
                json!({"name": "cache_miss", "channel": "cache-c"}),
            ),
            (
                Hook::SubscriptionCount {
                    channel: ch("c"),
                    count: 3,
                },
                json!({"name": "subscription_count", "channel": "c", "subscription_count": 3}),
            ),
        ];
        for (hook, want) in cases {
            assert_eq!(hook.to_json(), want);
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_raw_body() {
        let b = body(
            1_700_000_000_000,
            &[json!({"name": "channel_occupied", "channel": "a"})],
        );
        assert_eq!(
            b,
            r#"{"events":[{"channel":"a","name":"channel_occupied"}],"time_ms":1700000000000}"#
        );
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
