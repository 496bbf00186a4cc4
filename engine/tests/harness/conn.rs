//! A simulated connection: the frames it receives, decoded as a client decodes them, and the
//! views of presence, counts and watchlists a client builds from them.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};
use ringcast::state::Closing;
use ringcast_protocol::ws::close::CloseCode;
use ringcast_protocol::ws::decoder::{Decoder, DecoderConfig, Message};
use serde_json::Value;

/// The JSON text of a server text frame, for logs.
pub(super) fn frame_text(frame: &Bytes) -> String {
    let header = if frame.len() > 1 && frame[1] & 0x7f == 126 {
        4
    } else {
        2
    };
    String::from_utf8_lossy(&frame[header.min(frame.len())..]).into_owned()
}

/// A server's frames decoded as a client would, without a size limit of its own.
fn client_decoder() -> Decoder {
    Decoder::new(DecoderConfig {
        max_frame_size: 1 << 24,
        max_message_size: 1 << 24,
        require_mask: false,
    })
}

/// The `data` of an event, parsed when it is a JSON string.
pub fn data_of(ev: &Value) -> Value {
    match &ev["data"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        other => other.clone(),
    }
}

/// What a simulated connection received, and the client's views built from it.
#[derive(Debug)]
pub struct SimConn {
    /// Every text frame, as JSON, in order.
    pub events: Vec<Value>,
    /// The close frame's code, once one was sent (1005 for a close without a code).
    pub close: Option<u16>,
    /// Set once the shell started closing it: it is sent nothing more.
    pub closing: Option<Closing>,
    /// The next frame offered dooms it as a slow consumer.
    pub slow: bool,
    /// Presence channel -> the members it believes are there.
    pub views: BTreeMap<String, BTreeSet<String>>,
    /// Channel -> the last `subscription_count` it received.
    pub counts: BTreeMap<String, u64>,
    /// The user it signed in as and its watchlist, from its first `pusher:signin_success`
    /// (the shard keeps the first identity a connection signs in with).
    pub signed_in: Option<(String, Vec<String>)>,
    /// Watched user -> the last status it was told (`true` online).
    pub watch: BTreeMap<String, bool>,
    /// Events that contradict its views.
    pub violations: Vec<String>,
}

impl SimConn {
    pub(super) fn new() -> SimConn {
        SimConn {
            events: Vec::new(),
            close: None,
            closing: None,
            slow: false,
            views: BTreeMap::new(),
            counts: BTreeMap::new(),
            signed_in: None,
            watch: BTreeMap::new(),
            violations: Vec::new(),
        }
    }

    /// Takes one server frame off the wire.
    pub(super) fn receive(&mut self, frame: &Bytes) {
        if self.close.is_some() {
            self.violations.push(format!(
                "a frame after the close frame: {}",
                frame_text(frame)
            ));
        }
        let mut buf = BytesMut::from(&frame[..]);
        match client_decoder().decode(&mut buf) {
            Ok(Some(Message::Text(text))) => match serde_json::from_slice::<Value>(&text) {
                Ok(v) => self.on_event(v),
                Err(e) => self.violations.push(format!("text frame is not JSON: {e}")),
            },
            Ok(Some(Message::Close(f))) => {
                self.close = Some(f.map_or(CloseCode::NO_STATUS.0, |f| f.code.0));
            }
            other => self
                .violations
                .push(format!("not a complete server frame: {other:?}")),
        }
        if !buf.is_empty() {
            self.violations
                .push(format!("{} bytes after the frame", buf.len()));
        }
    }

    fn on_event(&mut self, v: Value) {
        let event = v["event"].as_str().unwrap_or_default().to_string();
        let channel = v["channel"].as_str().unwrap_or_default().to_string();
        let data = data_of(&v);
        let presence = channel.starts_with("presence-");
        match event.as_str() {
            "pusher_internal:subscription_succeeded" if presence => {
                let ids: BTreeSet<String> = data["presence"]["ids"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|i| i.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                if self.views.insert(channel.clone(), ids).is_some() {
                    self.violations
                        .push(format!("a second subscription_succeeded on {channel}"));
                }
            }
            "pusher_internal:member_added" | "pusher_internal:member_removed" => {
                let user = data["user_id"].as_str().unwrap_or_default().to_string();
                let added = event.ends_with("added");
                match self.views.get_mut(&channel) {
                    None => self.violations.push(format!(
                        "{event} {user} on {channel}, which it has no member list of"
                    )),
                    Some(view) => {
                        let fits = if added {
                            view.insert(user.clone())
                        } else {
                            view.remove(&user)
                        };
                        if !fits {
                            let had = if added { "already had" } else { "did not have" };
                            self.violations.push(format!(
                                "{event} {user} on {channel}, which it {had} (view {view:?})"
                            ));
                        }
                    }
                }
            }
            "pusher_internal:subscription_count" => {
                let n = data["subscription_count"].as_u64().unwrap_or_default();
                self.counts.insert(channel, n);
            }
            "pusher:signin_success" if self.signed_in.is_none() => {
                let user: Value = data["user_data"]
                    .as_str()
                    .and_then(|u| serde_json::from_str(u).ok())
                    .unwrap_or_default();
                let strings = |v: &Value| -> Vec<String> {
                    v.as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|i| i.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let id = user["id"].as_str().unwrap_or_default().to_string();
                self.signed_in = Some((id, strings(&user["watchlist"])));
            }
            "pusher_internal:watchlist_events" => {
                for group in data["events"].as_array().into_iter().flatten() {
                    let online = group["name"] == "online";
                    for id in group["user_ids"].as_array().into_iter().flatten() {
                        self.watch
                            .insert(id.as_str().unwrap_or_default().to_string(), online);
                    }
                }
            }
            _ => {}
        }
        self.events.push(v);
    }

    /// The names of the events received, in order.
    pub fn names(&self) -> Vec<&str> {
        self.events
            .iter()
            .map(|e| e["event"].as_str().unwrap_or_default())
            .collect()
    }
}
