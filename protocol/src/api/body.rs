//! The bodies of the trigger endpoints: `events`, `batch_events` and the deprecated
//! per-channel `events`, parsed into typed, validated [`TriggerEvent`]s.
//!
//! The shapes are those the server SDKs send. pusher-http-php (Laravel's `pusher` and `reverb`
//! broadcasters) sends `"channel":"x"` for exactly one channel and `"channels":[...]` for
//! several; a server must accept both (an earlier switch between the two broke
//! laravel-websockets). `data` is always a string on the wire: every SDK JSON-encodes structured
//! data before sending, so a non-string `data` is a client bug and is refused rather than
//! re-encoded. Fields the API does not define are ignored, so SDK extensions do not break
//! publishing.
//!
//! Every check answers with an [`ApiError`] naming the field and the value at fault. The body
//! comes straight from the network, so nothing here indexes, unwraps or panics on any input.
//!
//! A field repeated within one object is refused with [`ApiError::DuplicateField`]. simd-json
//! keeps repeated keys of objects with up to 32 members, which covers every body an SDK sends;
//! in a larger object the last value wins.

use std::fmt;

use simd_json::{BorrowedValue as Value, StaticNode};

use super::error::{ApiError, clip};
use super::query::Query;
use crate::Limits;
use crate::pusher::channel::ChannelName;
use crate::pusher::socket_id::SocketId;

type Object<'v> = simd_json::value::borrowed::Object<'v>;

/// One event to publish, validated.
pub struct TriggerEvent {
    /// The event name, 1 to `max_event_name_len` characters.
    pub name: String,
    /// The event data exactly as the publisher sent it (a string, usually JSON text), at most
    /// `max_event_data` bytes.
    pub data: String,
    /// The channels to publish to: at least one, at most `max_channels_per_event`, each named
    /// once, in the order first given.
    pub channels: Vec<ChannelName>,
    /// The connection that must not receive the event (Laravel's `toOthers()`).
    pub socket_id: Option<SocketId>,
    /// The attributes the response must report per channel.
    pub info: Info,
}

impl fmt::Debug for TriggerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let channels: Vec<&str> = self.channels.iter().map(ChannelName::as_str).collect();
        f.debug_struct("TriggerEvent")
            .field("name", &self.name)
            .field("data", &self.data)
            .field("channels", &channels)
            .field(
                "socket_id",
                &self.socket_id.as_ref().map(ToString::to_string),
            )
            .field("info", &self.info)
            .finish()
    }
}

/// The `info` attributes requested, from a comma-separated list.
///
/// "info: A comma-separated list of attributes that should be returned for each unique channel
/// triggered to" (Pusher HTTP API reference). Which attribute applies to which channel type is
/// for the handler to decide; this type only knows which attributes exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    /// `user_count`: distinct users of a presence channel.
    pub user_count: bool,
    /// `subscription_count`: connections subscribed to a channel.
    pub subscription_count: bool,
    /// `cache`: the cached event of a cache channel (`GET /channels/{channel}` only).
    pub cache: bool,
}

impl Info {
    /// Parse `"user_count,subscription_count"`. Whitespace around names and empty items are
    /// ignored; an unknown name is an error (400).
    pub fn parse(list: &str) -> Result<Self, ApiError> {
        let mut info = Self::default();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "user_count" => info.user_count = true,
                "subscription_count" => info.subscription_count = true,
                "cache" => info.cache = true,
                other => return Err(ApiError::UnknownInfo(clip(other))),
            }
        }
        Ok(info)
    }

    /// Whether no attribute was requested (the response is then `{}`).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Parse the body of `POST /apps/{app_id}/events`:
/// `{"name", "data", "channel" | "channels", "socket_id"?, "info"?}`.
///
/// The buffer is parsed in place (simd-json unescapes strings into it).
pub fn parse_event(body: &mut [u8], limits: &Limits) -> Result<TriggerEvent, ApiError> {
    let value = parse_json(body)?;
    event_from_object(as_object(&value)?, limits, false)
}

/// Parse the body of `POST /apps/{app_id}/batch_events`: `{"batch": [event, ...]}` where each
/// event names exactly one channel, as `channel` or as `channels` with one element.
///
/// An error in an event is reported as [`ApiError::InBatch`] with its index.
pub fn parse_batch(body: &mut [u8], limits: &Limits) -> Result<Vec<TriggerEvent>, ApiError> {
    let value = parse_json(body)?;
    let mut batch = None;
    for (key, v) in as_object(&value)?.iter() {
        if &**key == "batch" && batch.replace(v).is_some() {
            return Err(ApiError::DuplicateField("batch".into()));
        }
    }
    let items = match batch {
        None => return Err(ApiError::MissingField("batch")),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::WrongType {
                field: "batch",
                expected: "an array",
            });
        }
    };
    // "Triggers multiple events in a single call (up to 10 per call on the multi-tenant
    // clusters)".
    if items.len() > limits.max_batch_events {
        let (count, max) = (items.len(), limits.max_batch_events);
        return Err(ApiError::BatchTooLarge { count, max });
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            as_object(item)
                .and_then(|obj| event_from_object(obj, limits, true))
                .map_err(|error| ApiError::InBatch {
                    index,
                    error: Box::new(error),
                })
        })
        .collect()
}

/// Build the event of the deprecated `POST /apps/{app_id}/channels/{channel}/events`.
///
/// "parameters must be submitted in the query string" (`name`, `socket_id`), and the "Request
/// body MUST contain event data as a UTF-8 JSON encoded string. Upon receipt of data which is
/// not valid UTF-8, the API will return a 400 response code. The API does not check that the
/// received data is valid JSON" (Pusher HTTP API reference, deprecated methods).
pub fn parse_legacy_event(
    channel: &str,
    query: &Query,
    body: &[u8],
    limits: &Limits,
) -> Result<TriggerEvent, ApiError> {
    let name = event_name(
        query.get("name").ok_or(ApiError::MissingField("name"))?,
        limits,
    )?;
    let data = std::str::from_utf8(body).map_err(|_| ApiError::WrongType {
        field: "data",
        expected: "UTF-8 text (the request body)",
    })?;
    Ok(TriggerEvent {
        name,
        data: event_data(data, limits)?,
        channels: vec![channel_name(channel, limits)?],
        socket_id: query.get("socket_id").map(socket_id).transpose()?,
        info: Info::default(),
    })
}

/// The fields of one event object, validated. `in_batch`: the event may name only one channel.
fn event_from_object(
    obj: &Object<'_>,
    limits: &Limits,
    in_batch: bool,
) -> Result<TriggerEvent, ApiError> {
    let (mut name, mut data, mut channel, mut channels, mut sid, mut info) =
        (None, None, None, None, None, None);
    for (key, value) in obj.iter() {
        let slot: &mut Option<&Value<'_>> = match &**key {
            "name" => &mut name,
            "data" => &mut data,
            "channel" => &mut channel,
            "channels" => &mut channels,
            "socket_id" => &mut sid,
            "info" => &mut info,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(ApiError::DuplicateField(clip(key)));
        }
    }

    // "name: Event name (required)".
    let name = match name {
        None => return Err(ApiError::MissingField("name")),
        Some(Value::String(s)) => event_name(s, limits)?,
        Some(_) => {
            return Err(ApiError::WrongType {
                field: "name",
                expected: "a string",
            });
        }
    };
    // "data: Event data (required) - limited to 10KB".
    let data = match data {
        None => return Err(ApiError::MissingField("data")),
        Some(Value::String(s)) => event_data(s, limits)?,
        Some(_) => {
            return Err(ApiError::WrongType {
                field: "data",
                expected: "a string (encode structured data as JSON text first)",
            });
        }
    };
    let channels = match (channel, channels) {
        (Some(_), Some(_)) => return Err(ApiError::ChannelAndChannels),
        (None, None) => return Err(ApiError::NoChannel),
        // "channel: Channel name if publishing to a single channel (can be used instead of
        // channels)".
        (Some(Value::String(s)), None) => vec![channel_name(s, limits)?],
        (Some(_), None) => {
            return Err(ApiError::WrongType {
                field: "channel",
                expected: "a string",
            });
        }
        // "channels: Array of one or more channel names - limited to 100 channels".
        (None, Some(Value::Array(list))) => channel_list(list, limits, in_batch)?,
        (None, Some(_)) => {
            return Err(ApiError::WrongType {
                field: "channels",
                expected: "an array of strings",
            });
        }
    };
    // "socket_id: Excludes the event from being sent to a specific connection". A null is the
    // same as no socket_id.
    let socket_id = match sid {
        None | Some(Value::Static(StaticNode::Null)) => None,
        Some(Value::String(s)) => Some(socket_id(s)?),
        Some(_) => {
            return Err(ApiError::WrongType {
                field: "socket_id",
                expected: "a string",
            });
        }
    };
    let info = match info {
        None | Some(Value::Static(StaticNode::Null)) => Info::default(),
        Some(Value::String(s)) => Info::parse(s)?,
        Some(_) => {
            return Err(ApiError::WrongType {
                field: "info",
                expected: "a comma-separated string",
            });
        }
    };
    Ok(TriggerEvent {
        name,
        data,
        channels,
        socket_id,
        info,
    })
}

/// The channels of a `channels` array: counted, validated, and each named once.
fn channel_list(
    list: &[Value<'_>],
    limits: &Limits,
    in_batch: bool,
) -> Result<Vec<ChannelName>, ApiError> {
    if list.is_empty() {
        return Err(ApiError::EmptyChannels);
    }
    if in_batch && list.len() > 1 {
        return Err(ApiError::BatchItemChannels(list.len()));
    }
    if list.len() > limits.max_channels_per_event {
        let (count, max) = (list.len(), limits.max_channels_per_event);
        return Err(ApiError::TooManyChannels { count, max });
    }
    let mut out: Vec<ChannelName> = Vec::with_capacity(list.len());
    for item in list {
        let Value::String(s) = item else {
            return Err(ApiError::WrongType {
                field: "channels",
                expected: "an array of strings",
            });
        };
        // The same channel named twice still gets the event once.
        if !out.iter().any(|c| c.as_str() == &**s) {
            out.push(channel_name(s, limits)?);
        }
    }
    Ok(out)
}

fn event_name(s: &str, limits: &Limits) -> Result<String, ApiError> {
    if s.is_empty() {
        return Err(ApiError::EmptyEventName);
    }
    let len = s.chars().count();
    if len > limits.max_event_name_len {
        return Err(ApiError::EventNameTooLong {
            len,
            max: limits.max_event_name_len,
        });
    }
    Ok(s.to_owned())
}

/// "The event data should not be larger than 10KB. If you attempt to POST an event with a
/// larger data parameter, you will receive a 413 error code." Measured in bytes of the string.
fn event_data(s: &str, limits: &Limits) -> Result<String, ApiError> {
    if s.len() > limits.max_event_data {
        return Err(ApiError::DataTooLarge {
            size: s.len(),
            max: limits.max_event_data,
        });
    }
    Ok(s.to_owned())
}

fn channel_name(s: &str, limits: &Limits) -> Result<ChannelName, ApiError> {
    ChannelName::parse(s, limits).map_err(|e| ApiError::InvalidChannel {
        channel: clip(s),
        reason: e.to_string(),
    })
}

fn socket_id(s: &str) -> Result<SocketId, ApiError> {
    SocketId::parse(s).map_err(|_| ApiError::InvalidSocketId(clip(s)))
}

fn parse_json(body: &mut [u8]) -> Result<Value<'_>, ApiError> {
    simd_json::to_borrowed_value(body).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

fn as_object<'a, 'v>(value: &'a Value<'v>) -> Result<&'a Object<'v>, ApiError> {
    match value {
        Value::Object(obj) => Ok(obj),
        _ => Err(ApiError::NotAnObject),
    }
}

#[cfg(test)]
mod tests;
