//! HTTP/1.1 request heads and responses.
//!
//! Every connection to ringcast starts as HTTP/1.1: a WebSocket upgrade, a Pusher HTTP API call
//! from the app's queue worker (kept alive between calls), or a health check. This module holds
//! what they share: reading a request head and building responses. The upgrade and the API read
//! heads with the same parser and the same [`Limits`], so there is one place where a hostile peer
//! can make the server hold bytes before it knows what the request is.
//!
//! The parser is incremental in the simplest way: the caller keeps the bytes it has read and calls
//! [`parse_request`] again when more arrive; `Ok(None)` means "not a whole head yet". Re-parsing
//! from the start is cheap because a head is capped at [`Limits::max_request_head`] bytes, and it
//! keeps the parser free of state.
//!
//! Bodies are framed by `Content-Length` only. The Pusher server SDKs always send one, and
//! refusing `Transfer-Encoding` outright removes the classic request-smuggling ambiguity between
//! the two framings (RFC 9112 section 6.1) instead of resolving it.

use crate::Limits;
use crate::pusher::json;

/// Header slots kept on the stack while parsing; a larger [`Limits::max_headers`] falls back to
/// the heap.
const STACK_HEADERS: usize = 64;

/// A parsed HTTP/1.x request head. Owned, so the read buffer can be reused for the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method token as sent, e.g. `GET` (methods are case-sensitive, RFC 9110 section 9.1).
    pub method: String,
    /// The path exactly as sent (still percent-encoded), without the query. For an
    /// absolute-form target (`GET http://host/path HTTP/1.1`) the scheme and authority are
    /// removed; an asterisk-form target is `*`.
    pub path: String,
    /// The raw query string without the `?`; empty if there is none.
    pub query: String,
    /// Header fields in the order sent: names lower-cased, values trimmed (bytes that are not
    /// UTF-8 are replaced, since ringcast never needs such a value verbatim).
    pub headers: Vec<(String, String)>,
    /// The body length from `Content-Length`; 0 if absent.
    pub content_length: usize,
    /// Whether the connection stays open after the response: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// Bytes of the head, the blank line included: the body starts at this offset.
    pub head_len: usize,
    /// The HTTP minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
}

impl Request {
    /// The value of the first header named `lowercase_name`.
    pub fn header(&self, lowercase_name: &str) -> Option<&str> {
        self.headers_named(lowercase_name).next()
    }

    /// Whether any `name` header holds `token` in its comma-separated list, compared without
    /// regard to ASCII case (`Connection: keep-alive, Upgrade` holds `upgrade`).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers_named(name).any(|value| {
            value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    }

    /// The values of every header named `name`, in order.
    pub fn headers_named<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request head was refused. Every variant ends the connection: once the head cannot be
/// trusted, neither can the position of the next request.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The head is longer than [`Limits::max_request_head`], complete or not.
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// More header fields than [`Limits::max_headers`].
    #[error("more than {limit} request headers")]
    TooManyHeaders {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The head is not HTTP/1.0 or HTTP/1.1 syntax (this includes HTTP/0.9 and HTTP/2).
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    /// The request target is neither a path, an absolute URL nor `*`.
    #[error("malformed request target")]
    BadTarget,
    /// `Transfer-Encoding: chunked`: ringcast needs the length up front.
    #[error("chunked request bodies are not supported; send Content-Length")]
    ChunkedBody,
    /// A `Transfer-Encoding` other than chunked.
    #[error("unsupported Transfer-Encoding")]
    UnsupportedTransferEncoding,
    /// `Content-Length` is not a number, or several disagree.
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// `Content-Length` is above [`Limits::max_request_body`].
    #[error("request body of {length} bytes is larger than {limit} bytes")]
    BodyTooLarge {
        /// The announced length (saturated at `u64::MAX`).
        length: u64,
        /// The limit that was exceeded.
        limit: usize,
    },
}

impl HttpError {
    /// The response status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::HeadTooLarge { .. } | Self::TooManyHeaders { .. } => 431,
            Self::Malformed(_) | Self::BadTarget | Self::InvalidContentLength => 400,
            Self::ChunkedBody => 411,
            Self::UnsupportedTransferEncoding => 501,
            Self::BodyTooLarge { .. } => 413,
        }
    }

    /// The complete JSON error response; the connection is closed after it.
    pub fn response(&self) -> Vec<u8> {
        json_error(self.status(), &self.to_string(), false)
    }
}

/// Parses the request head at the front of `buf`.
///
/// `Ok(None)`: the head is not complete yet and still within the limit; call again with more
/// bytes. Bytes after the head (a body, or a pipelined request) are left alone: the body starts
/// at [`Request::head_len`].
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<Request>, HttpError> {
    let cap = limits.max_request_head;
    // Parse no more than the cap: a complete head must fit in it, so the bytes beyond can only
    // be a body or, if the head is still incomplete, proof that it is too large.
    let window = &buf[..buf.len().min(cap)];
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots: &mut [httparse::Header<'_>] = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap.resize(limits.max_headers, httparse::EMPTY_HEADER);
        &mut heap
    };
    let mut parsed = httparse::Request::new(slots);
    let head_len = match parsed.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= cap => {
            return Err(HttpError::HeadTooLarge { limit: cap });
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        Err(e) => return Err(HttpError::Malformed(e)),
    };
    // A complete parse always fills method, target and version; a missing one is malformed.
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HttpError::Malformed(httparse::Error::Token));
    };
    let (path, query) = split_target(target)?;
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect();
    let mut request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        content_length: 0,
        keep_alive: false,
        head_len,
        version,
    };
    request.keep_alive = if version >= 1 {
        !request.header_has_token("connection", "close")
    } else {
        request.header_has_token("connection", "keep-alive")
    };
    // RFC 9112 section 6.1: "A server that receives a request message with a transfer coding it
    // does not understand SHOULD respond with 501 (Not Implemented)." Chunked is understood but
    // refused: 411 tells the client to send a length instead.
    if request.header("transfer-encoding").is_some() {
        return Err(
            if request.header_has_token("transfer-encoding", "chunked") {
                HttpError::ChunkedBody
            } else {
                HttpError::UnsupportedTransferEncoding
            },
        );
    }
    let length = content_length(&request)?;
    if length > limits.max_request_body as u64 {
        return Err(HttpError::BodyTooLarge {
            length,
            limit: limits.max_request_body,
        });
    }
    // Not above a usize limit, so it fits.
    request.content_length = length as usize;
    Ok(Some(request))
}

/// Splits a request target into path and query.
fn split_target(target: &str) -> Result<(&str, &str), HttpError> {
    // RFC 9112 section 3.2.2: "a server MUST accept the absolute-form in requests".
    let origin_form = if let Some(rest) = strip_scheme(target) {
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            Some(i) => return Ok(("/", &rest[i + 1..])),
            None => "/",
        }
    } else if target == "*" || target.starts_with('/') {
        target
    } else {
        return Err(HttpError::BadTarget);
    };
    Ok(match origin_form.split_once('?') {
        Some((path, query)) => (path, query),
        None => (origin_form, ""),
    })
}

/// The target without `http://` or `https://` (any case), if it has either.
fn strip_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    })
}

/// The announced body length, 0 without a `Content-Length`.
fn content_length(request: &Request) -> Result<u64, HttpError> {
    // RFC 9110 section 8.6: "Content-Length = 1*DIGIT". RFC 9112 section 6.3: a message "with
    // either multiple Content-Length header fields having differing field-values or a single
    // Content-Length header field having an invalid value" has invalid framing; identical
    // repeated values (`5, 5`) may be accepted.
    let mut length = None;
    for value in request.headers_named("content-length") {
        for item in value.split(',') {
            let item = item.trim();
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::InvalidContentLength);
            }
            // Digits only, so the only parse failure is overflow: longer than any limit.
            let n = item.parse::<u64>().unwrap_or(u64::MAX);
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::InvalidContentLength);
            }
            length = Some(n);
        }
    }
    Ok(length.unwrap_or(0))
}

/// The reason phrase for the statuses ringcast answers with.
fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A complete HTTP/1.1 response with a `Content-Length` body.
pub fn response(
    status: u16,
    content_type: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    out.extend_from_slice(b"Content-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(format!("\r\nContent-Length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n".as_slice()
    } else {
        b"Connection: close\r\n".as_slice()
    });
    for (name, value) in extra_headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A JSON response `{"error":"<message>","code":<status>}`.
///
/// The Pusher server SDKs only distinguish 200 from the rest, but they put the body into the
/// exception the application sees, so the body says what is wrong in words.
pub fn json_error(status: u16, message: &str, keep_alive: bool) -> Vec<u8> {
    json_error_with_headers(status, message, &[], keep_alive)
}

/// [`json_error`] with extra response headers, such as the `Sec-WebSocket-Version: 13` that must
/// accompany a 426 to a WebSocket client.
pub fn json_error_with_headers(
    status: u16,
    message: &str,
    extra_headers: &[(&str, &str)],
    keep_alive: bool,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(message.len() + 32);
    body.extend_from_slice(b"{\"error\":");
    json::push_str(&mut body, message);
    body.extend_from_slice(format!(",\"code\":{status}}}").as_bytes());
    response(status, "application/json", extra_headers, &body, keep_alive)
}

/// A 200 response with a JSON body.
pub fn json_ok(body: &[u8], keep_alive: bool) -> Vec<u8> {
    response(200, "application/json", &[], body, keep_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_json_with_the_status() {
        let r = String::from_utf8(json_error(413, "Payload \"too\" large\n", false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 413 Payload Too Large\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(body, r#"{"error":"Payload \"too\" large\n","code":413}"#);
        assert!(r.contains(&format!("Content-Length: {}\r\n", body.len())));
        let r = String::from_utf8(HttpError::ChunkedBody.response()).unwrap();
        assert!(r.starts_with("HTTP/1.1 411 Length Required\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        let r = json_error_with_headers(426, "x", &[("Sec-WebSocket-Version", "13")], false);
        let r = String::from_utf8(r).unwrap();
        assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    }

    fn parse(head: &str) -> Result<Option<Request>, HttpError> {
        parse_request(head.as_bytes(), &Limits::default())
    }

    fn ok(head: &str) -> Request {
        parse(head).unwrap().unwrap()
    }

    fn status(head: &str) -> u16 {
        parse(head).unwrap_err().status()
    }

    #[test]
    fn a_complete_head_is_parsed_and_owned() {
        let head = "GET /app/key?protocol=7&client=js HTTP/1.1\r\nHost: a:6001\r\n\
                    X-Mixed-Case:  spaced value \t\r\n\r\nBODY";
        let r = ok(head);
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/app/key");
        assert_eq!(r.query, "protocol=7&client=js");
        assert_eq!(r.version, 1);
        assert!(r.keep_alive);
        assert_eq!(r.content_length, 0);
        assert_eq!(r.head_len, head.len() - 4);
        assert_eq!(r.header("x-mixed-case"), Some("spaced value"));
        assert_eq!(r.header("host"), Some("a:6001"));
        assert_eq!(r.header("absent"), None);
        assert_eq!(r.headers[1].0, "x-mixed-case");
    }

    #[test]
    fn every_strict_prefix_needs_more_bytes() {
        let head =
            "POST /apps/1/events?auth_key=k HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n";
        for end in 0..head.len() {
            assert_eq!(parse(&head[..end]), Ok(None), "prefix of {end} bytes");
        }
        let r = ok(head);
        assert_eq!(r.content_length, 2);
        assert_eq!(r.head_len, head.len());
    }

    #[test]
    fn the_head_size_cap_applies_complete_or_not() {
        let limits = Limits {
            max_request_head: 64,
            ..Limits::default()
        };
        let head = |pad: usize| format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(pad));
        let p = |b: &[u8]| parse_request(b, &limits);
        let too_large = Err(HttpError::HeadTooLarge { limit: 64 });
        // 14 + 2 + 3 + pad + 2 + 2 bytes: pad 41 makes exactly 64.
        assert_eq!(head(41).len(), 64);
        assert!(p(head(41).as_bytes()).unwrap().is_some());
        let over = head(42);
        assert_eq!(p(over.as_bytes()), too_large);
        // Still incomplete, but already at the cap: it can only be too large.
        assert_eq!(p(&over.as_bytes()[..64]), too_large);
        assert_eq!(p(&over.as_bytes()[..63]), Ok(None));
        // A body after a head within the cap is not counted against it.
        let with_body = format!("{}{}", head(0), "b".repeat(500));
        assert!(p(with_body.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn too_many_headers_is_431() {
        let limits = Limits {
            max_headers: 3,
            ..Limits::default()
        };
        let three = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert!(parse_request(three.as_bytes(), &limits).unwrap().is_some());
        let four = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n";
        let err = parse_request(four.as_bytes(), &limits).unwrap_err();
        assert_eq!(err, HttpError::TooManyHeaders { limit: 3 });
        assert_eq!(err.status(), 431);
        // Above the stack slots the parser falls back to the heap.
        let limits = Limits {
            max_headers: 100,
            ..Limits::default()
        };
        let many: String = (0..90).map(|i| format!("H{i}: v\r\n")).collect();
        let head = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let r = parse_request(head.as_bytes(), &limits).unwrap().unwrap();
        assert_eq!(r.headers.len(), 90);
    }

    #[test]
    fn malformed_heads_are_400() {
        for head in [
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\n: empty name\r\n\r\n",
            "GET / HTTP/1.1\r\nFolded: a\r\n b\r\n\r\n",
            "GET /\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1 extra\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
            "\x16\x03\x01\x02\x00\x01\x00\x01\x03\x03",
            "GET app HTTP/1.1\r\n\r\n",
            "GET ftp://h/x HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(status(head), 400, "{head:?}");
        }
    }

    #[test]
    fn request_targets() {
        let t = |target: &str| {
            let r = ok(&format!("GET {target} HTTP/1.1\r\n\r\n"));
            (r.path, r.query)
        };
        let pair = |p: &str, q: &str| (p.to_owned(), q.to_owned());
        assert_eq!(t("/"), pair("/", ""));
        assert_eq!(t("/a%20b?x=1?y"), pair("/a%20b", "x=1?y"));
        assert_eq!(t("/a?"), pair("/a", ""));
        assert_eq!(t("http://h:1/apps/1?q=2"), pair("/apps/1", "q=2"));
        assert_eq!(t("HTTPS://h"), pair("/", ""));
        assert_eq!(t("http://h?q"), pair("/", "q"));
        assert_eq!(t("*"), pair("*", ""));
    }

    #[test]
    fn http_1_0_is_parsed_and_closes_by_default() {
        let r = ok("GET /up HTTP/1.0\r\n\r\n");
        assert_eq!(r.version, 0);
        assert!(!r.keep_alive);
        assert!(ok("GET /up HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!ok("GET /up HTTP/1.1\r\nConnection: CLOSE\r\n\r\n").keep_alive);
        assert!(ok("GET /up HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n").keep_alive);
        // Empty lines before the request line are ignored (RFC 9112 section 2.2).
        assert_eq!(ok("\r\nGET / HTTP/1.1\r\n\r\n").method, "GET");
    }

    #[test]
    fn transfer_encoding_is_refused() {
        let te = |v: &str| status(&format!("PUT / HTTP/1.1\r\nTransfer-Encoding: {v}\r\n\r\n"));
        assert_eq!(te("chunked"), 411);
        assert_eq!(te("gzip, Chunked"), 411);
        assert_eq!(te("gzip"), 501);
        assert_eq!(
            status("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
    }

    #[test]
    fn content_length_rules() {
        let cl = |lines: &str| parse(&format!("POST / HTTP/1.1\r\n{lines}\r\n"));
        let len = |lines: &str| cl(lines).unwrap().unwrap().content_length;
        assert_eq!(len("Content-Length: 12\r\n"), 12);
        assert_eq!(len("Content-Length: 007\r\n"), 7);
        assert_eq!(len("Content-Length: 5, 5\r\n"), 5);
        assert_eq!(len("Content-Length: 5\r\ncontent-length: 5\r\n"), 5);
        assert_eq!(len("Content-Length: 262144\r\n"), 262_144);
        for bad in [
            "Content-Length: \r\n",
            "Content-Length: abc\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 5 5\r\n",
            "Content-Length: 0x10\r\n",
            "Content-Length: 5, 6\r\n",
            "Content-Length: 5,\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
        ] {
            assert_eq!(cl(bad), Err(HttpError::InvalidContentLength), "{bad:?}");
        }
        let err = cl("Content-Length: 262145\r\n").unwrap_err();
        assert_eq!(err.status(), 413);
        let err = cl("Content-Length: 99999999999999999999999999\r\n").unwrap_err();
        assert!(matches!(
            err,
            HttpError::BodyTooLarge {
                length: u64::MAX,
                ..
            }
        ));
    }

    #[test]
    fn header_tokens_are_case_insensitive_lists() {
        let r = ok(
            "GET / HTTP/1.1\r\nConnection: keep-alive\r\nCONNECTION:  Upgrade ,x\r\n\
                    Upgrade: WebSocket\r\nX-Bin: café\r\n\r\n",
        );
        assert!(r.header_has_token("connection", "upgrade"));
        assert!(r.header_has_token("Connection", "KEEP-ALIVE"));
        assert!(r.header_has_token("upgrade", "websocket"));
        assert!(!r.header_has_token("connection", "close"));
        assert!(!r.header_has_token("connection", "upgrade,x"));
        assert_eq!(r.headers_named("connection").count(), 2);
        assert_eq!(r.header("x-bin"), Some("café"));
        // Bytes that are not UTF-8 are replaced.
        let mut head = b"GET / HTTP/1.1\r\nX: a".to_vec();
        head.extend_from_slice(&[0xff, 0xfe]);
        head.extend_from_slice(b"b\r\n\r\n");
        let r = parse_request(&head, &Limits::default()).unwrap().unwrap();
        assert_eq!(r.header("x"), Some("a\u{fffd}\u{fffd}b"));
    }
}
