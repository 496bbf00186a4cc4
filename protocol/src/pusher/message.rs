//! Messages a client sends over its WebSocket.
//!
//! Every Pusher message is one JSON object with an `event` name and, depending on the event, a
//! `data` and a `channel`. A client sends a handful of `pusher:` events and its own `client-`
//! events; anything else is refused with a [`MessageError`] that the engine answers with a
//! `pusher:error`, leaving the connection open (as Reverb does for unparsable frames).
//!
//! What real clients send, and what is therefore accepted:
//! - pusher-js sends `data` as an object: `{"event":"pusher:subscribe","data":{"auth":"",
//!   "channel":"x"}}`. Some other clients encode `data` a second time, as a string holding the
//!   object; for `pusher:subscribe`, `pusher:unsubscribe` and `pusher:signin` both forms are
//!   read the same.
//! - A public subscribe from pusher-js carries `"auth":""`. An empty (or `null`) `auth` is read
//!   as no `auth`: a public channel needs none, and a private channel without one fails its
//!   signature check either way.
//! - `channel_data` and `user_data` are strings, kept exactly as received because signatures
//!   cover those exact bytes.
//! - `pusher:ping` and `pusher:pong` come with `"data":{}` or with no `data`; `data` is ignored.
//! - A client event's `data` is whatever the app passed (pusher-js: an object); it is passed on
//!   re-serialized compactly, and a string stays a JSON string literal.
//!
//! The parser never panics, whatever the input: it is a fuzz target.

use simd_json::Node;

use super::json;
use crate::Limits;

/// A message from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// `pusher:subscribe`. The channel name is not validated yet: the engine validates it and
    /// answers a bad one with a subscription error for that channel.
    Subscribe {
        /// The channel name as sent.
        channel: String,
        /// `<app_key>:<signature>`; `None` when absent, `null` or empty.
        auth: Option<String>,
        /// Presence member data, exactly as sent.
        channel_data: Option<String>,
    },
    /// `pusher:unsubscribe`.
    Unsubscribe {
        /// The channel name as sent.
        channel: String,
    },
    /// `pusher:ping`: the server answers `pusher:pong`.
    Ping,
    /// `pusher:pong`: the answer to a server's `pusher:ping`.
    Pong,
    /// `pusher:signin`.
    Signin {
        /// `<app_key>:<signature>`.
        auth: String,
        /// The signed user data, exactly as sent.
        user_data: String,
    },
    /// A `client-` event for the other subscribers of a channel.
    ClientEvent {
        /// The event name, starting with `client-`.
        event: String,
        /// The channel name as sent (not validated yet).
        channel: String,
        /// Compact JSON text of `data` (`null` when absent).
        data: String,
    },
}

/// Why a client message was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// Not valid JSON (or not UTF-8).
    #[error("Invalid message format")]
    InvalidJson,
    /// Valid JSON, but not an object.
    #[error("Invalid message format: expected a JSON object")]
    NotAnObject,
    /// No `event`.
    #[error("Invalid message format: missing \"event\"")]
    MissingEvent,
    /// An event a client may not send: an unknown `pusher:` or `pusher_internal:` event, or a
    /// name without the `client-` prefix. The name is cut to `limits.max_event_name_len` bytes.
    #[error("Unsupported event received on socket: {0}")]
    UnknownEvent(String),
    /// A required field is absent.
    #[error("Invalid message format: missing \"{0}\"")]
    MissingField(&'static str),
    /// A field has the wrong type.
    #[error("Invalid message format: \"{0}\" has the wrong type")]
    InvalidField(&'static str),
    /// A client event name longer than `limits.max_event_name_len`.
    #[error("Event name is too long: {len} characters, at most {max} allowed")]
    EventNameTooLong {
        /// Characters in the name.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl MessageError {
    /// The code of the `pusher:error` the engine answers with, without closing.
    ///
    /// - 4200 for a message that cannot be read or is not a known event (Reverb answers an
    ///   unparsable message with 4200 "Invalid message format"). After the handshake pusher-js
    ///   only reports a `pusher:error`, so the code does not make it reconnect.
    /// - 4301 for a client event whose name is too long: the 4300 range is where Pusher puts
    ///   rejected client events (4301 is "client event rejected due to rate limit"), so a
    ///   client that logs codes sees the whisper itself was refused.
    pub fn pusher_code(&self) -> u16 {
        use super::error::PusherCode;
        match self {
            Self::InvalidJson
            | Self::NotAnObject
            | Self::MissingEvent
            | Self::UnknownEvent(_)
            | Self::MissingField(_)
            | Self::InvalidField(_) => PusherCode::Reconnect.code(),
            Self::EventNameTooLong { .. } => PusherCode::ClientEventRateLimit.code(),
        }
    }
}

/// Parses one client message. `buf` is parsed in place (simd-json) and left scrambled.
pub fn parse_client_message(
    buf: &mut [u8],
    limits: &Limits,
) -> Result<ClientMessage, MessageError> {
    let tape = simd_json::to_tape(buf).map_err(|_| MessageError::InvalidJson)?;
    let root: &[Node<'_>] = &tape.0;
    if !matches!(root.first(), Some(Node::Object { .. })) {
        return Err(MessageError::NotAnObject);
    }
    let event = match json::object_get(root, "event").and_then(<[_]>::first) {
        None => return Err(MessageError::MissingEvent),
        Some(Node::String(s)) => *s,
        Some(_) => return Err(MessageError::InvalidField("event")),
    };
    match event {
        "pusher:subscribe" => with_data(root, |data| {
            Ok(ClientMessage::Subscribe {
                channel: required_str(data, "channel")?.to_owned(),
                auth: optional_str(data, "auth")?
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned),
                channel_data: optional_str(data, "channel_data")?.map(str::to_owned),
            })
        }),
        "pusher:unsubscribe" => with_data(root, |data| {
            Ok(ClientMessage::Unsubscribe {
                channel: required_str(data, "channel")?.to_owned(),
            })
        }),
        "pusher:ping" => Ok(ClientMessage::Ping),
        "pusher:pong" => Ok(ClientMessage::Pong),
        "pusher:signin" => with_data(root, |data| {
            Ok(ClientMessage::Signin {
                auth: required_str(data, "auth")?.to_owned(),
                user_data: required_str(data, "user_data")?.to_owned(),
            })
        }),
        // Pusher support: "Client events must have a client- prefix (note the hyphen)"; any
        // other name is an "Unsupported event received on socket". Event names are limited to
        // 200 characters by the Pusher SDKs (`limits.max_event_name_len`).
        _ if event.starts_with("client-") => {
            let len = event.chars().count();
            if len > limits.max_event_name_len {
                return Err(MessageError::EventNameTooLong {
                    len,
                    max: limits.max_event_name_len,
                });
            }
            let channel = required_str(root, "channel")?.to_owned();
            let data = match json::object_get(root, "data") {
                Some(value) => json::value_to_string(value),
                None => "null".to_owned(),
            };
            Ok(ClientMessage::ClientEvent {
                event: event.to_owned(),
                channel,
                data,
            })
        }
        _ => Err(MessageError::UnknownEvent(truncate(
            event,
            limits.max_event_name_len,
        ))),
    }
}

/// Runs `f` on the `data` object of `root`, decoding it first when it arrives as a string.
fn with_data<T>(
    root: &[Node<'_>],
    f: impl FnOnce(&[Node<'_>]) -> Result<T, MessageError>,
) -> Result<T, MessageError> {
    let data = json::object_get(root, "data").ok_or(MessageError::MissingField("data"))?;
    match data.first() {
        Some(Node::Object { .. }) => f(data),
        Some(Node::String(text)) => json::with_parsed(text, |inner| match inner.first() {
            Some(Node::Object { .. }) => f(inner),
            _ => Err(MessageError::InvalidField("data")),
        })
        .unwrap_or(Err(MessageError::InvalidField("data"))),
        _ => Err(MessageError::InvalidField("data")),
    }
}

/// A string field that may be absent or `null`.
fn optional_str<'t>(obj: &[Node<'t>], key: &'static str) -> Result<Option<&'t str>, MessageError> {
    match json::object_get(obj, key).and_then(<[_]>::first) {
        None => Ok(None),
        Some(Node::String(s)) => Ok(Some(*s)),
        Some(Node::Static(n)) if simd_json::prelude::ValueAsScalar::as_null(n).is_some() => {
            Ok(None)
        }
        Some(_) => Err(MessageError::InvalidField(key)),
    }
}

/// A string field that must be present.
fn required_str<'t>(obj: &[Node<'t>], key: &'static str) -> Result<&'t str, MessageError> {
    optional_str(obj, key)?.ok_or(MessageError::MissingField(key))
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ClientMessage, MessageError> {
        parse_client_message(&mut s.as_bytes().to_vec(), &Limits::default())
    }

    fn subscribe(channel: &str, auth: Option<&str>, data: Option<&str>) -> ClientMessage {
        ClientMessage::Subscribe {
            channel: channel.into(),
            auth: auth.map(Into::into),
            channel_data: data.map(Into::into),
        }
    }

    #[test]
    fn subscribe_as_pusher_js_sends_it() {
        let m = parse(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"x"}}"#);
        assert_eq!(m, Ok(subscribe("x", None, None)));
        let m = parse(r#"{"event":"pusher:subscribe","data":{"channel":"x"}}"#);
        assert_eq!(m, Ok(subscribe("x", None, None)));
        let m = parse(r#"{"event":"pusher:subscribe","data":{"channel":"x","auth":null}}"#);
        assert_eq!(m, Ok(subscribe("x", None, None)));
        let m =
            parse(r#"{"event":"pusher:subscribe","data":{"auth":"k:abc","channel":"private-x"}}"#);
        assert_eq!(m, Ok(subscribe("private-x", Some("k:abc"), None)));
        // channel_data is kept byte for byte, spacing and escapes included.
        let raw = r#"{"event":"pusher:subscribe","data":{"auth":"k:s","channel_data":"{\"user_id\": 1, \"user_info\":{\"n\":\"\\u00e9\"}}","channel":"presence-x"}}"#;
        let want = r#"{"user_id": 1, "user_info":{"n":"\u00e9"}}"#;
        assert_eq!(
            parse(raw),
            Ok(subscribe("presence-x", Some("k:s"), Some(want)))
        );
    }

    #[test]
    fn subscribe_with_string_encoded_data() {
        let raw = r#"{"event":"pusher:subscribe","data":"{\"channel\":\"private-x\",\"auth\":\"k:s\",\"channel_data\":\"{\\\"user_id\\\":1}\"}"}"#;
        assert_eq!(
            parse(raw),
            Ok(subscribe(
                "private-x",
                Some("k:s"),
                Some(r#"{"user_id":1}"#)
            ))
        );
        let raw = r#"{"event":"pusher:unsubscribe","data":"{\"channel\":\"a\"}"}"#;
        assert_eq!(
            parse(raw),
            Ok(ClientMessage::Unsubscribe {
                channel: "a".into()
            })
        );
        for data in [r#""nope""#, r#""[1]""#, r#""\"x\"""#, "[]", "1", "null"] {
            let raw = format!(r#"{{"event":"pusher:subscribe","data":{data}}}"#);
            assert_eq!(
                parse(&raw),
                Err(MessageError::InvalidField("data")),
                "{raw}"
            );
        }
    }

    #[test]
    fn other_pusher_events() {
        assert_eq!(
            parse(r#"{"event":"pusher:unsubscribe","data":{"channel":"private-x"}}"#),
            Ok(ClientMessage::Unsubscribe {
                channel: "private-x".into()
            })
        );
        for ping in [
            r#"{"event":"pusher:ping","data":{}}"#,
            r#"{"event":"pusher:ping"}"#,
            r#"{"data":"","event":"pusher:ping"}"#,
        ] {
            assert_eq!(parse(ping), Ok(ClientMessage::Ping), "{ping}");
        }
        assert_eq!(
            parse(r#"{"event":"pusher:pong","data":{}}"#),
            Ok(ClientMessage::Pong)
        );
        let raw =
            r#"{"event":"pusher:signin","data":{"auth":"k:s","user_data":"{\"id\":\"12345\"}"}}"#;
        assert_eq!(
            parse(raw),
            Ok(ClientMessage::Signin {
                auth: "k:s".into(),
                user_data: r#"{"id":"12345"}"#.into()
            })
        );
    }

    #[test]
    fn client_events() {
        let raw =
            r#"{"event":"client-typing","channel":"private-x","data":{"name": "a", "n":[1, 2.5]}}"#;
        assert_eq!(
            parse(raw),
            Ok(ClientMessage::ClientEvent {
                event: "client-typing".into(),
                channel: "private-x".into(),
                data: r#"{"name":"a","n":[1,2.5]}"#.into(),
            })
        );
        let raw = r#"{"event":"client-x","channel":"private-x","data":"a \"quoted\" string"}"#;
        let Ok(ClientMessage::ClientEvent { data, .. }) = parse(raw) else {
            panic!()
        };
        assert_eq!(data, r#""a \"quoted\" string""#);
        let raw = r#"{"event":"client-x","channel":"private-x"}"#;
        let Ok(ClientMessage::ClientEvent { data, .. }) = parse(raw) else {
            panic!()
        };
        assert_eq!(data, "null");
        let raw = r#"{"event":"client-x","data":{}}"#;
        assert_eq!(parse(raw), Err(MessageError::MissingField("channel")));
    }

    #[test]
    fn event_name_limit() {
        let name = format!("client-{}", "a".repeat(193));
        let raw = format!(r#"{{"event":"{name}","channel":"private-x","data":{{}}}}"#);
        assert!(parse(&raw).is_ok());
        let name = format!("client-{}", "é".repeat(194));
        let raw = format!(r#"{{"event":"{name}","channel":"private-x","data":{{}}}}"#);
        let err = parse(&raw).unwrap_err();
        assert_eq!(err, MessageError::EventNameTooLong { len: 201, max: 200 });
        assert_eq!(err.pusher_code(), 4301);
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, MessageError)] = &[
            ("", MessageError::InvalidJson),
            ("{", MessageError::InvalidJson),
            ("{\"event\":\"pusher:ping\"} x", MessageError::InvalidJson),
            ("[]", MessageError::NotAnObject),
            ("\"pusher:ping\"", MessageError::NotAnObject),
            ("null", MessageError::NotAnObject),
            ("{}", MessageError::MissingEvent),
            (r#"{"event":1}"#, MessageError::InvalidField("event")),
            (r#"{"event":null}"#, MessageError::InvalidField("event")),
            (
                r#"{"event":"pusher:subscribe"}"#,
                MessageError::MissingField("data"),
            ),
            (
                r#"{"event":"pusher:subscribe","data":{}}"#,
                MessageError::MissingField("channel"),
            ),
            (
                r#"{"event":"pusher:subscribe","data":{"channel":1}}"#,
                MessageError::InvalidField("channel"),
            ),
            (
                r#"{"event":"pusher:subscribe","data":{"channel":"x","auth":1}}"#,
                MessageError::InvalidField("auth"),
            ),
            (
                r#"{"event":"pusher:subscribe","data":{"channel":"x","channel_data":{}}}"#,
                MessageError::InvalidField("channel_data"),
            ),
            (
                r#"{"event":"pusher:unsubscribe","data":{}}"#,
                MessageError::MissingField("channel"),
            ),
            (
                r#"{"event":"pusher:signin","data":{"auth":"k:s"}}"#,
                MessageError::MissingField("user_data"),
            ),
            (
                r#"{"event":"pusher:signin","data":{"user_data":"{}"}}"#,
                MessageError::MissingField("auth"),
            ),
            (
                r#"{"event":"client-x","channel":["a"]}"#,
                MessageError::InvalidField("channel"),
            ),
            (
                r#"{"event":"pusher:foo"}"#,
                MessageError::UnknownEvent("pusher:foo".into()),
            ),
            (
                r#"{"event":"pusher_internal:subscription_succeeded","channel":"x"}"#,
                MessageError::UnknownEvent("pusher_internal:subscription_succeeded".into()),
            ),
            (
                r#"{"event":"my-event","channel":"x","data":{}}"#,
                MessageError::UnknownEvent("my-event".into()),
            ),
            (
                r#"{"event":"Client-x","channel":"x"}"#,
                MessageError::UnknownEvent("Client-x".into()),
            ),
            (r#"{"event":""}"#, MessageError::UnknownEvent(String::new())),
        ];
        for (raw, want) in cases {
            let got = parse(raw);
            assert_eq!(got.as_ref(), Err(want), "{raw}");
            let code = want.pusher_code();
            assert_eq!(code, 4200, "{raw}");
        }
        let long = format!(r#"{{"event":"{}"}}"#, "é".repeat(300));
        let Err(MessageError::UnknownEvent(name)) = parse(&long) else {
            panic!()
        };
        assert_eq!(name, "é".repeat(100));
        assert!(parse_client_message(&mut [0xff, 0xfe], &Limits::default()).is_err());
        assert_eq!(
            MessageError::InvalidJson.to_string(),
            "Invalid message format"
        );
    }

    #[test]
    fn repeated_keys_take_the_last_value() {
        let raw = r#"{"event":"pusher:ping","event":"pusher:subscribe","data":{"channel":"a","channel":"b"}}"#;
        assert_eq!(parse(raw), Ok(subscribe("b", None, None)));
    }

    #[test]
    fn never_panics_on_prefixes_and_mutations() {
        let samples = [
            r#"{"event":"pusher:subscribe","data":{"auth":"k:s","channel":"presence-x","channel_data":"{\"user_id\":1}"}}"#,
            r#"{"event":"client-typing","channel":"private-x","data":{"a":[1,{"b":null}],"c":"\u2028"}}"#,
            r#"{"event":"pusher:signin","data":"{\"auth\":\"k:s\",\"user_data\":\"{}\"}"}"#,
        ];
        let limits = Limits::default();
        for sample in samples {
            let bytes = sample.as_bytes();
            for end in 0..=bytes.len() {
                let _ = parse_client_message(&mut bytes[..end].to_vec(), &limits);
            }
            for i in 0..bytes.len() {
                for b in [b'"', b'{', b'}', b'[', b'\\', b':', b',', b'0', 0x80, 0] {
                    let mut v = bytes.to_vec();
                    v[i] = b;
                    let _ = parse_client_message(&mut v, &limits);
                }
            }
        }
    }
}
