//! HTTP/1.1 request heads and responses.
//!
//! Every connection to ringcast starts as HTTP/1.1: a WebSocket upgrade, a Pusher HTTP API call
//! from the app's queue worker (kept alive between calls), or a health check. This module holds
//! what they share: building responses. The request-head parser lives here as well so that the
//! upgrade and the API read heads with the same limits.

/// The reason phrase for the statuses ringcast answers with.
fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
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
    let mut body = Vec::with_capacity(message.len() + 32);
    body.extend_from_slice(b"{\"error\":\"");
    escape_json(&mut body, message);
    body.extend_from_slice(format!("\",\"code\":{status}}}").as_bytes());
    response(status, "application/json", &[], &body, keep_alive)
}

/// A 200 response with a JSON body.
pub fn json_ok(body: &[u8], keep_alive: bool) -> Vec<u8> {
    response(200, "application/json", &[], body, keep_alive)
}

/// Minimal JSON string escaping for error messages (not a hot path).
fn escape_json(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod response_tests {
    use super::*;

    #[test]
    fn error_bodies_are_json_with_the_status() {
        let r = String::from_utf8(json_error(413, "Payload \"too\" large\n", false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 413 Payload Too Large\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(
            body,
            r#"{"error":"Payload \"too\" large\u000a","code":413}"#
        );
        assert!(r.contains(&format!("Content-Length: {}\r\n", body.len())));
    }
}
