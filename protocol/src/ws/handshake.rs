//! The opening handshake, server side (RFC 6455 sections 4.2.1 and 4.2.2).
//!
//! The engine parses the request head with [`crate::http::parse_request`], routes it with
//! [`is_upgrade_request`], and calls [`validate_upgrade`]; the result is either an [`Upgrade`]
//! to answer with [`response_101`] or a [`HandshakeError`] whose [`HandshakeError::response`]
//! is sent before closing.
//!
//! What real clients send shaped the checks: pusher-js under Node sends no `Origin`; browsers
//! send one and offer `permessage-deflate`, which is declined by not mentioning it in the
//! response; Firefox sends `Connection: keep-alive, Upgrade`, so `Connection` is read as a
//! token list; and header values are compared without regard to ASCII case, as section 4.2.1
//! asks. Checking the `Origin` is the application's policy, so it is handed on, not judged.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

use crate::http::{self, Request};

/// Section 1.3: the GUID appended to the key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// An accepted upgrade request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    /// The `Sec-WebSocket-Key`, as sent.
    pub key: String,
    /// The `Origin`, if the client sent one (browsers do; pusher-js under Node does not).
    pub origin: Option<String>,
    /// The request path, still percent-encoded.
    pub path: String,
    /// The raw query string (`protocol=7&client=js&...`).
    pub query: String,
}

/// Why an upgrade request is refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The method is not GET.
    #[error("WebSocket upgrade requires GET")]
    Method,
    /// HTTP/1.0.
    #[error("WebSocket upgrade requires HTTP/1.1")]
    HttpVersion,
    /// No `Host`, or more than one.
    #[error("missing or repeated Host header")]
    Host,
    /// No `Upgrade: websocket`.
    #[error("missing Upgrade: websocket")]
    UpgradeHeader,
    /// No `upgrade` token in `Connection`.
    #[error("missing Connection: Upgrade")]
    ConnectionHeader,
    /// `Sec-WebSocket-Key` missing, repeated, or not base64 of 16 bytes.
    #[error("Sec-WebSocket-Key must be the base64 encoding of 16 bytes")]
    Key,
    /// No `Sec-WebSocket-Version`.
    #[error("missing Sec-WebSocket-Version")]
    MissingVersion,
    /// A `Sec-WebSocket-Version` other than 13.
    #[error("unsupported WebSocket version; this server speaks version 13")]
    UnsupportedVersion,
}

impl HandshakeError {
    /// The response status.
    pub fn status(&self) -> u16 {
        match self {
            // Section 4.2.2: "If this version does not match a version understood by the
            // server, the server MUST abort the WebSocket handshake described in this section
            // and instead send an appropriate HTTP error code (such as 426 Upgrade Required)".
            Self::UnsupportedVersion => 426,
            // Section 4.2.1: "If the server, while reading the handshake, finds that the client
            // did not send a handshake that matches the description below ..., the server MUST
            // stop processing the client's handshake and return an HTTP response with an
            // appropriate error code (such as 400 Bad Request)."
            Self::Method
            | Self::HttpVersion
            | Self::Host
            | Self::UpgradeHeader
            | Self::ConnectionHeader
            | Self::Key
            | Self::MissingVersion => 400,
        }
    }

    /// The complete response, after which the connection is closed. A 426 carries
    /// `Sec-WebSocket-Version: 13`: the 426 must come with "a |Sec-WebSocket-Version| header
    /// field indicating the version(s) the server is capable of understanding".
    pub fn response(&self) -> Vec<u8> {
        let extra: &[(&str, &str)] = match self {
            Self::UnsupportedVersion => &[("Sec-WebSocket-Version", "13")],
            _ => &[],
        };
        http::json_error_with_headers(self.status(), &self.to_string(), extra, false)
    }
}

/// Whether the request asks for a WebSocket (`Upgrade: websocket`); used to route it to the
/// handshake rather than to the HTTP API.
pub fn is_upgrade_request(req: &Request) -> bool {
    req.header_has_token("upgrade", "websocket")
}

/// Checks the request against section 4.2.1, in the order the section lists its rules.
pub fn validate_upgrade(req: &Request) -> Result<Upgrade, HandshakeError> {
    // "1. An HTTP/1.1 or higher GET request, including a "Request-URI""
    if req.method != "GET" {
        return Err(HandshakeError::Method);
    }
    if req.version < 1 {
        return Err(HandshakeError::HttpVersion);
    }
    // "2. A |Host| header field containing the server's authority." RFC 9112 section 3.2 adds
    // that a request with more than one is refused with 400.
    if req.headers_named("host").count() != 1 {
        return Err(HandshakeError::Host);
    }
    // "3. An |Upgrade| header field containing the value "websocket", treated as an ASCII
    // case-insensitive value."
    if !is_upgrade_request(req) {
        return Err(HandshakeError::UpgradeHeader);
    }
    // "4. A |Connection| header field that includes the token "Upgrade", treated as an ASCII
    // case-insensitive value."
    if !req.header_has_token("connection", "upgrade") {
        return Err(HandshakeError::ConnectionHeader);
    }
    // "6. A |Sec-WebSocket-Version| header field, with a value of 13." Checked before the key
    // so that a client of another version learns which one to speak.
    match req.header("sec-websocket-version") {
        None => return Err(HandshakeError::MissingVersion),
        Some(v) if v != "13" || req.headers_named("sec-websocket-version").count() > 1 => {
            return Err(HandshakeError::UnsupportedVersion);
        }
        Some(_) => {}
    }
    // "5. A |Sec-WebSocket-Key| header field with a base64-encoded (see Section 4 of
    // [RFC4648]) value that, when decoded, is 16 bytes in length."
    let mut keys = req.headers_named("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) if is_valid_key(key) => key,
        _ => return Err(HandshakeError::Key),
    };
    Ok(Upgrade {
        key: key.to_owned(),
        origin: req.header("origin").map(str::to_owned),
        path: req.path.clone(),
        query: req.query.clone(),
    })
}

/// Whether `key` is the padded base64 of exactly 16 bytes (always 24 characters).
fn is_valid_key(key: &str) -> bool {
    key.len() == 24 && BASE64.decode(key).is_ok_and(|bytes| bytes.len() == 16)
}

/// The `Sec-WebSocket-Accept` value for `key`. Section 4.2.2: "concatenate this with the
/// Globally Unique Identifier ... take the SHA-1 hash of this concatenated value ... base64-
/// encode (see Section 4 of \[RFC4648\]) this 20-byte hash".
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// The `101 Switching Protocols` response. It names no extension and no subprotocol: a client
/// offering `permessage-deflate` then speaks uncompressed frames (section 9.1: extensions are
/// in use only if the server's response lists them).
pub fn response_101(up: &Upgrade) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&up.key)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::http::parse_request;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(head: &str) -> Request {
        parse_request(head.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap()
    }

    fn check(head: &str) -> Result<Upgrade, HandshakeError> {
        validate_upgrade(&request(head))
    }

    /// A minimal valid request with the first `from` replaced by `to`.
    fn variant(from: &str, to: &str) -> String {
        let base = format!(
            "GET /app/k?protocol=7 HTTP/1.1\r\nHost: h:8080\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
        );
        assert!(base.contains(from), "{from}");
        format!("{}\r\n", base.replacen(from, to, 1))
    }

    #[test]
    fn rfc_accept_example() {
        // RFC 6455 section 1.3.
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn real_clients_are_accepted() {
        // pusher-js 8 under Node (ws): no Origin, no User-Agent, no extensions.
        let node = "GET /app/app-key?protocol=7&client=js&version=8.6.0&flash=false HTTP/1.1\r\n\
                    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
                    Connection: Upgrade\r\nUpgrade: websocket\r\n\
                    Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
                    Host: 127.0.0.1:6001\r\n\r\n";
        let up = check(node).unwrap();
        assert_eq!(up.origin, None);
        assert_eq!(up.path, "/app/app-key");
        assert_eq!(up.query, "protocol=7&client=js&version=8.6.0&flash=false");
        assert_eq!(up.key, "x3JJHMbDL1EzLkh9GBhXDw==");
        // Chromium: Origin, permessage-deflate offered, many other headers.
        let chromium = "GET /app/k?protocol=7 HTTP/1.1\r\nHost: localhost:8080\r\n\
                        Connection: Upgrade\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n\
                        User-Agent: Mozilla/5.0 HeadlessChrome/120\r\nUpgrade: websocket\r\n\
                        Origin: http://localhost:3000\r\nSec-WebSocket-Version: 13\r\n\
                        Accept-Encoding: gzip, deflate, br\r\n\
                        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
        let up = check(chromium).unwrap();
        assert_eq!(up.origin.as_deref(), Some("http://localhost:3000"));
        let resp = String::from_utf8(response_101(&up)).unwrap();
        assert_eq!(
            resp,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        assert!(!resp.to_ascii_lowercase().contains("extensions"));
    }

    /// RFC 6455 section 4.2.1, rule by rule: (header block edit, expected status or 101).
    #[test]
    fn accept_and_reject_table() {
        let cases: &[(&str, &str, u16)] = &[
            ("Host", "Host", 101),
            (
                "Connection: Upgrade",
                "Connection: keep-alive, Upgrade",
                101,
            ),
            ("Connection: Upgrade", "connection: UPGRADE", 101),
            ("Upgrade: websocket", "UPGRADE: WebSocket", 101),
            ("Upgrade: websocket", "Upgrade: websocket, h2c", 101),
            (
                "Sec-WebSocket-Version: 13",
                "sec-websocket-version:  13 ",
                101,
            ),
            ("GET /app", "POST /app", 400),
            ("GET /app", "get /app", 400),
            ("HTTP/1.1", "HTTP/1.0", 400),
            ("Host: h:8080\r\n", "", 400),
            ("Host: h:8080\r\n", "Host: a\r\nHost: b\r\n", 400),
            ("Upgrade: websocket\r\n", "", 400),
            ("Upgrade: websocket", "Upgrade: h2c", 400),
            ("Upgrade: websocket", "Upgrade: websockets", 400),
            ("Connection: Upgrade", "Connection: keep-alive", 400),
            ("Connection: Upgrade\r\n", "", 400),
            ("Connection: Upgrade", "Connection: Upgraded", 400),
            ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 400),
            (KEY, "dGhlIHNhbXBsZSBub25jZQ", 400),
            (KEY, "dGhlIHNhbXBsZSBub25j", 400),
            (KEY, "dGhlIHNhbXBsZSBub25jZQ==dGhl", 400),
            (KEY, "dGhlIHNhbXBsZSBub25jZSE=", 400),
            (KEY, "dGhlIHNhbXBsZSBub25jZQ!=", 400),
            (KEY, "dGhlIHNhbXBsZSBub25jZR==", 400),
            (KEY, "", 400),
            (
                "Sec-WebSocket-Key",
                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Key",
                400,
            ),
            ("Sec-WebSocket-Version: 13\r\n", "", 400),
            ("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", 426),
            (
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Version: 13, 8",
                426,
            ),
            (
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Version: 14",
                426,
            ),
            (
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8",
                426,
            ),
        ];
        for &(from, to, want) in cases {
            let head = variant(from, to);
            let got = check(&head).map_or_else(|e| e.status(), |_| 101);
            assert_eq!(got, want, "{head}");
        }
    }

    #[test]
    fn rejection_responses() {
        let r = String::from_utf8(HandshakeError::UnsupportedVersion.response()).unwrap();
        assert!(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{r}");
        assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        let r = String::from_utf8(HandshakeError::Key.response()).unwrap();
        assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(!r.contains("Sec-WebSocket-Version"));
        assert!(r.ends_with(
            "{\"error\":\"Sec-WebSocket-Key must be the base64 encoding of 16 bytes\",\"code\":400}"
        ));
    }

    #[test]
    fn routing_looks_only_at_upgrade() {
        assert!(is_upgrade_request(&request(&variant("Host", "Host"))));
        assert!(!is_upgrade_request(&request(
            "GET /up HTTP/1.1\r\nHost: h\r\n\r\n"
        )));
    }
}
