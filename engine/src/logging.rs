//! Logs: the subscriber (text or JSON lines), and the message log of `ringcast start --debug`.
//!
//! Logs go to stderr, as text for people or, with `RINGCAST_LOG_FORMAT=json`, as one JSON
//! object per line for a log shipper (tracing-subscriber's JSON formatter: `timestamp`,
//! `level`, `target`, `fields`). `RINGCAST_LOG` is the filter, `info` by default.
//!
//! `--debug` (as `php artisan reverb:start --debug`) logs every WebSocket message in and out
//! and every HTTP API request, under the target `ringcast::messages`, whatever the filter
//! says. Each line names the connection by its socket id, its app, the event and the
//! channel. What would let a reader act as someone else is redacted first: the signature of
//! a subscription's or a sign-in's `auth` (`key:[redacted]`; the key is public) and the HTTP
//! API's `auth_signature`. App secrets never appear in messages; they are redacted from
//! `Debug` output of the configuration as well.
//!
//! Without `--debug` the message log costs one branch per message: the worker checks its
//! setting before it builds anything, so the fan-out loop is the same as ever.

use bytes::Bytes;
use serde_json::Value;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, Operations};
use crate::ids::ConnKey;
use crate::worker::Worker;

/// The target of the message log.
pub const MESSAGES: &str = "ringcast::messages";

/// What replaces a signature.
pub const REDACTED: &str = "[redacted]";

/// Installs the process's subscriber: the `RINGCAST_LOG` filter (plus the message log when
/// `--debug`), in the configured format, on stderr.
pub fn init(ops: &Operations) {
    let mut filter =
        EnvFilter::try_from_env("RINGCAST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if ops.debug {
        filter = filter.add_directive(
            format!("{MESSAGES}=debug")
                .parse()
                .expect("a valid directive"),
        );
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match ops.log_format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// A client message as it may be logged: `auth` signatures redacted at any depth (and
/// `data` given as a JSON string, as some clients send it, is looked into too). Text that is
/// not JSON is not shown, only its length.
pub fn redact_message(text: &[u8]) -> String {
    match serde_json::from_slice::<Value>(text) {
        Ok(mut v) => {
            redact_value(&mut v);
            v.to_string()
        }
        Err(_) => format!("<{} bytes, not JSON>", text.len()),
    }
}

fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, field) in map.iter_mut() {
                match field {
                    Value::String(s) if k == "auth" || k == "auth_signature" => {
                        *s = redact_auth(s);
                    }
                    Value::String(s) if k == "data" => {
                        if let Ok(mut inner) = serde_json::from_str::<Value>(s)
                            && inner.is_object()
                        {
                            let before = inner.clone();
                            redact_value(&mut inner);
                            if inner != before {
                                *s = inner.to_string();
                            }
                        }
                    }
                    other => redact_value(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

/// `key:signature` -> `key:[redacted]`; anything else whole.
fn redact_auth(auth: &str) -> String {
    match auth.split_once(':') {
        Some((key, _)) => format!("{key}:{REDACTED}"),
        None if auth.is_empty() => String::new(),
        None => REDACTED.to_string(),
    }
}

/// A query string with its `auth_signature` value redacted.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some(("auth_signature", _)) => format!("auth_signature={REDACTED}"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The payload of a server frame (unmasked, as the engine encodes them): its bytes after the
/// WebSocket header.
fn payload(frame: &[u8]) -> &[u8] {
    let Some(&b1) = frame.get(1) else { return &[] };
    let start = match b1 & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    frame.get(start..).unwrap_or(&[])
}

/// The `event` and `channel` of a Pusher message, for the log line's fields.
fn event_and_channel(v: &Value) -> (String, String) {
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut channel = field("channel");
    if channel.is_empty() {
        channel = v
            .get("data")
            .and_then(|d| d.get("channel"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
    }
    (field("event"), channel)
}

impl Worker {
    /// Whether `--debug` asked for the message log.
    pub fn debug_messages(&self) -> bool {
        self.shared.config.operations.debug
    }

    /// The socket id and app id of `key`, for a log line.
    fn who(&self, key: ConnKey) -> (String, String) {
        match self.shard.identity(key) {
            Some((app, sid)) => (
                sid.to_string(),
                app.map_or_else(
                    || "echo".to_string(),
                    |a| self.shared.apps.get(a).cfg.id.clone(),
                ),
            ),
            None => ("gone".to_string(), String::new()),
        }
    }

    /// Logs a text message received from `key`.
    pub fn log_received(&self, key: ConnKey, text: &[u8]) {
        let (conn, app) = self.who(key);
        let shown = redact_message(text);
        let (event, channel) = serde_json::from_str::<Value>(&shown)
            .map(|v| event_and_channel(&v))
            .unwrap_or_default();
        tracing::debug!(target: MESSAGES, direction = "in", conn, app, event, channel, payload = shown, "received");
    }

    /// Logs frames sent to `keys` (one line each).
    pub fn log_sent(&self, keys: &[ConnKey], frame: &Bytes) {
        let shown = redact_message(payload(frame));
        let (event, channel) = serde_json::from_str::<Value>(&shown)
            .map(|v| event_and_channel(&v))
            .unwrap_or_default();
        for &key in keys {
            let (conn, app) = self.who(key);
            tracing::debug!(target: MESSAGES, direction = "out", conn, app, event, channel, payload = shown, "sent");
        }
    }

    /// Logs that `key` is being closed with `code`.
    pub fn log_closing(&self, key: ConnKey, code: u16, reason: &str) {
        let (conn, app) = self.who(key);
        tracing::debug!(target: MESSAGES, direction = "out", conn, app, code, reason, "closing");
    }
}

/// Logs one HTTP API request and its answer's status.
pub fn log_api(method: &str, path: &str, query: &str, status: u16) {
    tracing::debug!(target: MESSAGES, direction = "api", method, path, query = redact_query(query), status, "api request");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_redacted_and_the_rest_is_kept() {
        let sub = br#"{"event":"pusher:subscribe","data":{"channel":"private-x","auth":"app-key:0123abcd"}}"#;
        let shown = redact_message(sub);
        assert!(!shown.contains("0123abcd"), "{shown}");
        assert!(shown.contains("app-key:[redacted]"), "{shown}");
        assert!(shown.contains("private-x"), "{shown}");
        let signin =
            br#"{"event":"pusher:signin","data":"{\"auth\":\"k:ffee\",\"user_data\":\"{}\"}"}"#;
        let shown = redact_message(signin);
        assert!(!shown.contains("ffee"), "{shown}");
        assert!(shown.contains("k:[redacted]"), "{shown}");
        let public = br#"{"event":"pusher:subscribe","data":{"channel":"news","auth":""}}"#;
        let kept: Value = serde_json::from_str(&redact_message(public)).unwrap();
        assert_eq!(kept, serde_json::from_slice::<Value>(public).unwrap());
        assert_eq!(redact_message(b"\xff\x00"), "<2 bytes, not JSON>");
        assert_eq!(
            redact_query("auth_key=k&auth_signature=abc&body_md5=x"),
            "auth_key=k&auth_signature=[redacted]&body_md5=x"
        );
    }

    #[test]
    fn a_frame_payload_is_found_after_its_header() {
        let frame = ringcast_protocol::ws::encode::text(br#"{"event":"e","channel":"c"}"#);
        let v: Value = serde_json::from_slice(payload(&frame)).unwrap();
        assert_eq!(event_and_channel(&v), ("e".to_string(), "c".to_string()));
        let long = ringcast_protocol::ws::encode::text(&[b' '; 300]);
        assert_eq!(payload(&long).len(), 300);
    }
}
