//! Errors of the Pusher HTTP API, and the HTTP status each one answers with.
//!
//! The callers of the HTTP API are programs: the Pusher server SDKs inside an application's
//! queue worker. They only distinguish 200 from everything else, but they put the response body
//! into the exception the application logs (Laravel shows it in its `BroadcastException`). So
//! every variant says in words exactly what is wrong and with which value, and [`ApiError::status`]
//! decides the status in one `match`.
//!
//! Two things never appear in a message: the app secret, and the signature ringcast expected.
//! A failed signature reports the *string to sign* instead (as hosted Pusher does): it is built
//! only from what the client sent, and it is what a developer needs to see when a proxy rewrote
//! the path or the query.
//!
//! Values echoed from the request are clipped with [`clip`] so that an error body stays small
//! however large the offending value was.

use crate::http;

/// Why an HTTP API request was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    // ----- 404: nothing lives at this path -----
    /// The path matches no HTTP API endpoint.
    #[error("Not found: no API endpoint at {path}")]
    UnknownPath { path: String },
    /// The path names an app id that this server does not know.
    #[error("Unknown app id `{app_id}`")]
    UnknownApp { app_id: String },

    // ----- 405: the endpoint exists, the method is wrong -----
    /// The endpoint exists but answers another method (named in the `Allow` header).
    #[error("Method {method} is not allowed here; use {allowed}")]
    MethodNotAllowed {
        method: String,
        allowed: &'static str,
    },

    // ----- 401: authentication -----
    /// A required authentication parameter is absent from the query string.
    #[error("Missing query parameter `{0}`")]
    MissingAuthParam(&'static str),
    /// An authentication parameter appears more than once, so which one was signed is ambiguous.
    #[error("Query parameter `{0}` appears more than once")]
    DuplicateAuthParam(&'static str),
    /// `auth_key` is not the key of the app named in the path.
    #[error("Unknown auth_key `{0}`")]
    WrongKey(String),
    /// `auth_version` is not `1.0`, the only version there is.
    #[error("Unsupported auth_version `{0}`; expected 1.0")]
    UnsupportedAuthVersion(String),
    /// `auth_timestamp` is not a whole number of seconds since the Unix epoch.
    #[error("Invalid auth_timestamp `{0}`: expected seconds since the Unix epoch")]
    InvalidTimestamp(String),
    /// `auth_timestamp` is too far from the server clock.
    #[error(
        "Timestamp expired: auth_timestamp {timestamp} is more than {skew} s away from the \
         server time {now}; check the clock of the sending machine"
    )]
    TimestampExpired { timestamp: u64, now: u64, skew: u64 },
    /// The request has a body but no `body_md5`.
    #[error("Missing query parameter `body_md5`: a request with a body must sign its MD5")]
    MissingBodyMd5,
    /// `body_md5` is not the MD5 of the body that arrived.
    #[error("body_md5 `{sent}` does not match the MD5 of the received body, {actual}")]
    BodyMd5Mismatch { sent: String, actual: String },
    /// `auth_signature` is not the HMAC-SHA256 of the string to sign.
    #[error(
        "Invalid signature: expected the HMAC-SHA256 hex digest of {string_to_sign:?} \
         keyed with the app secret"
    )]
    InvalidSignature { string_to_sign: String },

    // ----- 400: the request is malformed -----
    /// A `%` in the path or the query is not followed by two hex digits, or the decoded bytes
    /// are not UTF-8.
    #[error("Invalid percent-encoding in {0}")]
    BadPercentEncoding(String),
    /// The body is not JSON.
    #[error("Invalid JSON body: {0}")]
    InvalidJson(String),
    /// The body (or a batch item) is JSON but not an object.
    #[error("Expected a JSON object")]
    NotAnObject,
    /// A field appears twice in one JSON object.
    #[error("Field `{0}` appears more than once")]
    DuplicateField(String),
    /// A required field is absent.
    #[error("Missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("Field `{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// The event name is the empty string.
    #[error("Event name must not be empty")]
    EmptyEventName,
    /// The event name is longer than the limit.
    #[error("Event name is {len} characters long; the limit is {max}")]
    EventNameTooLong { len: usize, max: usize },
    /// Both `channel` and `channels` were sent.
    #[error("Send either `channel` or `channels`, not both")]
    ChannelAndChannels,
    /// Neither `channel` nor `channels` was sent.
    #[error("Missing field `channel` or `channels`")]
    NoChannel,
    /// `channels` is an empty array.
    #[error("`channels` must name at least one channel")]
    EmptyChannels,
    /// `channels` names more channels than the limit.
    #[error("`channels` names {count} channels; the limit is {max}")]
    TooManyChannels { count: usize, max: usize },
    /// A channel name is not a valid Pusher channel name.
    #[error("Invalid channel name `{channel}`: {reason}")]
    InvalidChannel { channel: String, reason: String },
    /// `socket_id` is not two numbers separated by a dot.
    #[error("Invalid socket_id `{0}`: expected two numbers separated by a dot, like 1234.5678")]
    InvalidSocketId(String),
    /// `info` names an attribute that does not exist.
    #[error("Unknown info attribute `{0}`; expected user_count, subscription_count or cache")]
    UnknownInfo(String),
    /// `batch` holds more events than the limit.
    #[error("`batch` holds {count} events; the limit is {max}")]
    BatchTooLarge { count: usize, max: usize },
    /// A batch event names more than one channel.
    #[error("A batch event publishes to exactly one channel; this one names {0}")]
    BatchItemChannels(usize),
    /// An error in one event of a batch, with its index.
    #[error("batch[{index}]: {error}")]
    InBatch { index: usize, error: Box<ApiError> },

    // ----- 413: too large -----
    /// An event's `data` is larger than the limit.
    #[error("Event data is {size} bytes; the limit is {max}")]
    DataTooLarge { size: usize, max: usize },
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownPath { .. } | Self::UnknownApp { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::MissingAuthParam(_)
            | Self::DuplicateAuthParam(_)
            | Self::WrongKey(_)
            | Self::UnsupportedAuthVersion(_)
            | Self::InvalidTimestamp(_)
            | Self::TimestampExpired { .. }
            | Self::MissingBodyMd5
            | Self::BodyMd5Mismatch { .. }
            | Self::InvalidSignature { .. } => 401,
            Self::BadPercentEncoding(_)
            | Self::InvalidJson(_)
            | Self::NotAnObject
            | Self::DuplicateField(_)
            | Self::MissingField(_)
            | Self::WrongType { .. }
            | Self::EmptyEventName
            | Self::EventNameTooLong { .. }
            | Self::ChannelAndChannels
            | Self::NoChannel
            | Self::EmptyChannels
            | Self::TooManyChannels { .. }
            | Self::InvalidChannel { .. }
            | Self::InvalidSocketId(_)
            | Self::UnknownInfo(_)
            | Self::BatchTooLarge { .. }
            | Self::BatchItemChannels(_) => 400,
            Self::InBatch { error, .. } => error.status(),
            Self::DataTooLarge { .. } => 413,
        }
    }

    /// The complete HTTP response: `{"error":"<message>","code":<status>}`, plus an `Allow`
    /// header on 405 (RFC 9110 15.5.6: "The origin server MUST generate an Allow header field in
    /// a 405 response containing a list of the target resource's currently supported methods").
    pub fn response(&self, keep_alive: bool) -> Vec<u8> {
        let mut out = http::json_error(self.status(), &self.to_string(), keep_alive);
        if let Self::MethodNotAllowed { allowed, .. } = self {
            // The status line ends at the first CRLF; the header goes right after it.
            if let Some(at) = out.windows(2).position(|w| w == b"\r\n") {
                let header = format!("Allow: {allowed}\r\n");
                out.splice(at + 2..at + 2, header.into_bytes());
            }
        }
        out
    }
}

/// The longest prefix of a request value that an error message repeats, in characters.
const CLIP_CHARS: usize = 80;

/// `s` as it may appear in an error message: at most [`CLIP_CHARS`] characters, with `…` when
/// cut.
pub(crate) fn clip(s: &str) -> String {
    match s.char_indices().nth(CLIP_CHARS) {
        None => s.to_owned(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(resp: &[u8]) -> String {
        let s = String::from_utf8(resp.to_vec()).unwrap();
        s.split("\r\n\r\n").nth(1).unwrap().to_owned()
    }

    #[test]
    fn statuses_follow_the_kind_of_failure() {
        assert_eq!(ApiError::UnknownPath { path: "/x".into() }.status(), 404);
        assert_eq!(ApiError::UnknownApp { app_id: "9".into() }.status(), 404);
        let m = ApiError::MethodNotAllowed {
            method: "GET".into(),
            allowed: "POST",
        };
        assert_eq!(m.status(), 405);
        assert_eq!(ApiError::MissingAuthParam("auth_key").status(), 401);
        assert_eq!(ApiError::MissingBodyMd5.status(), 401);
        let sig = ApiError::InvalidSignature {
            string_to_sign: "GET\n/\n".into(),
        };
        assert_eq!(sig.status(), 401);
        assert_eq!(ApiError::NoChannel.status(), 400);
        assert_eq!(ApiError::DataTooLarge { size: 2, max: 1 }.status(), 413);
    }

    #[test]
    fn a_batch_error_keeps_the_status_of_its_cause() {
        let too_big = ApiError::InBatch {
            index: 3,
            error: Box::new(ApiError::DataTooLarge {
                size: 20_000,
                max: 10_240,
            }),
        };
        assert_eq!(too_big.status(), 413);
        assert_eq!(
            too_big.to_string(),
            "batch[3]: Event data is 20000 bytes; the limit is 10240"
        );
        let bad = ApiError::InBatch {
            index: 0,
            error: Box::new(ApiError::NoChannel),
        };
        assert_eq!(bad.status(), 400);
    }

    #[test]
    fn responses_are_json_with_the_message() {
        let r = ApiError::EmptyChannels.response(true);
        assert!(r.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        assert_eq!(
            body_of(&r),
            r#"{"error":"`channels` must name at least one channel","code":400}"#
        );
    }

    #[test]
    fn the_signature_message_shows_the_string_to_sign_escaped() {
        let e = ApiError::InvalidSignature {
            string_to_sign: "POST\n/apps/3/events\nauth_key=k".into(),
        };
        let body = body_of(&e.response(false));
        assert!(
            body.contains(r#"POST\\n/apps/3/events\\nauth_key=k"#),
            "{body}"
        );
        assert!(!body.contains('\n'));
    }

    #[test]
    fn method_not_allowed_carries_an_allow_header() {
        let e = ApiError::MethodNotAllowed {
            method: "GET".into(),
            allowed: "POST",
        };
        let r = String::from_utf8(e.response(true)).unwrap();
        assert!(
            r.starts_with("HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\n"),
            "{r}"
        );
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        assert!(r.contains(&format!("Content-Length: {}\r\n", body.len())));
    }

    #[test]
    fn clip_keeps_short_values_and_cuts_long_ones_at_a_char_boundary() {
        assert_eq!(clip("abc"), "abc");
        let long = "é".repeat(200);
        let c = clip(&long);
        assert_eq!(c.chars().count(), CLIP_CHARS + 1);
        assert!(c.ends_with('…'));
        assert_eq!(clip(&"x".repeat(CLIP_CHARS)), "x".repeat(CLIP_CHARS));
    }
}
