//! The Pusher side of a client connection: the messages a subscriber sends, and what it makes
//! of the server's events.
//!
//! Control events (connection established, subscription succeeded, errors, pings) are rare and
//! parsed as JSON. Channel events carrying a benchmark [`payload`](crate::payload) are
//! recognised by their marker without parsing the envelope.

use std::time::Duration;

use ringcast_protocol::pusher::json;
use ringcast_protocol::ws::decoder::MessageRef;
use ringcast_protocol::ws::frame::Opcode;
use serde::Deserialize;

use crate::error::BenchError;
use crate::payload::{self, Stamp};
use crate::target::Target;
use crate::ws::{SocketOpts, WsConn};

/// `pusher:subscribe` to a public channel, as pusher-js writes it.
pub fn subscribe(channel: &str) -> Vec<u8> {
    let mut out = br#"{"event":"pusher:subscribe","data":{"channel":"#.to_vec();
    json::push_str(&mut out, channel);
    out.extend_from_slice(b"}}");
    out
}

/// `pusher:subscribe` to a presence channel as user `user`, signed with the app's `secret` for
/// the connection's `socket_id`, as an auth endpoint would sign it.
pub fn subscribe_presence(
    channel: &str,
    user: &str,
    key: &str,
    secret: &str,
    socket_id: &str,
) -> Vec<u8> {
    let mut data = br#"{"user_id":"#.to_vec();
    json::push_str(&mut data, user);
    data.extend_from_slice(b"}");
    let data = String::from_utf8(data).unwrap_or_default();
    let auth =
        ringcast_protocol::pusher::auth::channel_auth(key, secret, socket_id, channel, Some(&data));
    let mut out = br#"{"event":"pusher:subscribe","data":{"channel":"#.to_vec();
    json::push_str(&mut out, channel);
    out.extend_from_slice(br#","auth":"#);
    json::push_str(&mut out, &auth);
    out.extend_from_slice(br#","channel_data":"#);
    json::push_str(&mut out, &data);
    out.extend_from_slice(b"}}");
    out
}

/// `pusher:unsubscribe`.
pub fn unsubscribe(channel: &str) -> Vec<u8> {
    let mut out = br#"{"event":"pusher:unsubscribe","data":{"channel":"#.to_vec();
    json::push_str(&mut out, channel);
    out.extend_from_slice(b"}}");
    out
}

/// `pusher:pong`, the answer to a server's `pusher:ping`.
pub const PONG: &[u8] = br#"{"event":"pusher:pong","data":{}}"#;

#[derive(Deserialize)]
struct RawEvent {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// A server event as the benchmark client sees it.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// A channel event carrying a benchmark payload.
    Stamped(Stamp),
    /// `pusher:connection_established` with the socket id.
    Established(String),
    /// `pusher_internal:subscription_succeeded` (or its presence form) for a channel.
    Subscribed(String),
    /// `pusher:ping`.
    Ping,
    /// `pusher:error` with its code.
    Error(Option<u64>, String),
    /// `pusher:subscription_error` or any other event.
    Other(String),
}

/// Classifies one text message from the server.
pub fn classify(text: &[u8]) -> Result<Event, BenchError> {
    if let Some(stamp) = payload::find(text) {
        return Ok(Event::Stamped(stamp));
    }
    let raw: RawEvent = serde_json::from_slice(text)
        .map_err(|e| BenchError::Pusher(format!("{e}: {}", String::from_utf8_lossy(text))))?;
    // Pusher: "data" of a server event is a JSON-encoded string (its own JSON inside).
    let data = match raw.data {
        Some(serde_json::Value::String(s)) => serde_json::from_str(&s).unwrap_or_default(),
        Some(v) => v,
        None => serde_json::Value::Null,
    };
    Ok(match raw.event.as_str() {
        "pusher:connection_established" => Event::Established(
            data.get("socket_id")
                .and_then(|v| v.as_str())
                .ok_or_else(|| {
                    BenchError::Pusher("connection_established without socket_id".into())
                })?
                .to_string(),
        ),
        "pusher_internal:subscription_succeeded" => {
            Event::Subscribed(raw.channel.unwrap_or_default())
        }
        "pusher:ping" => Event::Ping,
        "pusher:error" => Event::Error(
            data.get("code").and_then(|v| v.as_u64()),
            data.get("message")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
        ),
        _ => Event::Other(raw.event),
    })
}

/// What the reading loop should do after one message.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Nothing to send.
    Continue,
    /// A benchmark payload arrived.
    Stamped(Stamp),
    /// A control event arrived that the caller may want.
    Event(Event),
    /// The server closed (with its close code).
    Closed(Option<u16>),
}

/// An open Pusher client connection.
pub struct PusherConn {
    /// The WebSocket underneath.
    pub ws: WsConn,
    /// Socket id from `pusher:connection_established` ("" for raw frame streams).
    pub socket_id: String,
    /// Close code or `pusher:error` code the server sent last, if any.
    pub last_code: Option<u16>,
}

impl PusherConn {
    /// Connects, upgrades and waits for `pusher:connection_established`.
    pub async fn open(
        target: &Target,
        opts: SocketOpts,
        read_buffer: usize,
        seed: u32,
        timeout: Duration,
    ) -> Result<Self, BenchError> {
        let work = async {
            let ws =
                WsConn::open(target, &target.ws_request_path(), opts, read_buffer, seed).await?;
            let mut conn = Self {
                ws,
                socket_id: String::new(),
                last_code: None,
            };
            loop {
                match conn.next(&|| {}).await? {
                    Step::Event(Event::Established(id)) => {
                        conn.socket_id = id;
                        return Ok(conn);
                    }
                    Step::Event(Event::Error(code, msg)) => {
                        return Err(BenchError::Pusher(format!("error {code:?} {msg}")));
                    }
                    Step::Closed(code) => return Err(BenchError::Closed(code)),
                    _ => {}
                }
            }
        };
        match monoio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(BenchError::Timeout("connection_established")),
        }
    }

    /// Wraps a raw frame stream that needs no handshake (the ceiling sender's).
    pub fn raw(ws: WsConn) -> Self {
        Self {
            ws,
            socket_id: String::new(),
            last_code: None,
        }
    }

    /// Subscribes to `channel` and waits for the server's confirmation.
    pub async fn subscribe(&mut self, channel: &str) -> Result<(), BenchError> {
        self.send_subscribe(channel, &subscribe(channel)).await
    }

    /// Sends the subscription `message` for `channel` and waits for the server's confirmation.
    pub async fn send_subscribe(
        &mut self,
        channel: &str,
        message: &[u8],
    ) -> Result<(), BenchError> {
        self.ws.send_text(message).await?;
        loop {
            match self.next(&|| {}).await? {
                Step::Event(Event::Subscribed(c)) if c == channel => return Ok(()),
                Step::Event(Event::Error(code, msg)) => {
                    return Err(BenchError::Pusher(format!("error {code:?} {msg}")));
                }
                Step::Event(Event::Other(e)) if e.contains("subscription_error") => {
                    return Err(BenchError::Pusher(e));
                }
                Step::Closed(code) => return Err(BenchError::Closed(code)),
                _ => {}
            }
        }
    }

    /// Reads until the next message that matters to the caller, answering pings on the way.
    /// `before_read` runs each time the buffered messages are used up, before the socket is
    /// read again (subscribers publish their thread's counts there).
    pub async fn next(&mut self, before_read: &impl Fn()) -> Result<Step, BenchError> {
        loop {
            let step = match self.ws.next_message()? {
                None => {
                    before_read();
                    self.ws.fill().await?;
                    continue;
                }
                Some(msg) => step_for(msg)?,
            };
            match step {
                Reply::Nothing => {}
                Reply::Step(s) => {
                    if let Step::Closed(code) = &s {
                        self.last_code = *code;
                    }
                    if let Step::Event(Event::Error(Some(code), _)) = &s {
                        self.last_code = u16::try_from(*code).ok();
                    }
                    return Ok(s);
                }
                Reply::Pong(payload) => self.ws.send(Opcode::Pong, &payload).await?,
                Reply::PusherPong => self.ws.send_text(PONG).await?,
            }
        }
    }
}

enum Reply {
    Nothing,
    Step(Step),
    Pong(Vec<u8>),
    PusherPong,
}

fn step_for(msg: MessageRef<'_>) -> Result<Reply, BenchError> {
    Ok(match msg {
        MessageRef::Text(t) | MessageRef::Binary(t) => match classify(t)? {
            Event::Stamped(s) => Reply::Step(Step::Stamped(s)),
            Event::Ping => Reply::PusherPong,
            e => Reply::Step(Step::Event(e)),
        },
        // RFC 6455 section 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong
        // frame in response ... with identical Application data".
        MessageRef::Ping(p) => Reply::Pong(p.to_vec()),
        MessageRef::Pong(_) => Reply::Nothing,
        MessageRef::Close(close) => Reply::Step(Step::Closed(close.map(|c| c.code.0))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringcast_protocol::pusher::event::ServerEvent;
    use ringcast_protocol::pusher::socket_id::SocketId;

    #[test]
    fn server_events_classify() {
        let id = SocketId::new(123, 456);
        let est = ServerEvent::ConnectionEstablished {
            socket_id: &id,
            activity_timeout: 30,
        }
        .to_json();
        assert_eq!(
            classify(&est).unwrap(),
            Event::Established("123.456".into())
        );
        let ok = ServerEvent::SubscriptionSucceeded { channel: "bench-0" }.to_json();
        assert_eq!(classify(&ok).unwrap(), Event::Subscribed("bench-0".into()));
        let ping = ServerEvent::Ping.to_json();
        assert_eq!(classify(&ping).unwrap(), Event::Ping);
        let err = ServerEvent::Error {
            code: Some(4100),
            message: "Over capacity",
        }
        .to_json();
        assert_eq!(
            classify(&err).unwrap(),
            Event::Error(Some(4100), "Over capacity".into())
        );
        assert!(classify(b"not json").is_err());
    }

    #[test]
    fn client_messages_are_json() {
        let v: serde_json::Value = serde_json::from_slice(&subscribe("bench-1")).unwrap();
        assert_eq!(v["event"], "pusher:subscribe");
        assert_eq!(v["data"]["channel"], "bench-1");
        let v: serde_json::Value = serde_json::from_slice(&unsubscribe("a\"b")).unwrap();
        assert_eq!(v["data"]["channel"], "a\"b");
        let _: serde_json::Value = serde_json::from_slice(PONG).unwrap();
    }
}
