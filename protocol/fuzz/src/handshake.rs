//! `handshake`: the bytes a new connection sends first, read as an HTTP/1.1 request head and,
//! when they ask for one, as a WebSocket upgrade.
//!
//! Input: the start of a TCP stream (a Chromium or pusher-js upgrade request, an API request,
//! garbage). What runs, as the engine runs it: `http::parse_request`, then
//! `ws::handshake::is_upgrade_request` and `ws::handshake::validate_upgrade`, and the 101 or
//! error response.
//!
//! Checks, beyond "no panic":
//! - "need more bytes" is only an answer while the head is within `max_request_head`: a peer
//!   cannot make the server buffer without bound by never finishing its head;
//! - a parsed head consumed at most the input, ends at a line break, and its header names are
//!   lower-case and within `max_headers`; a body it announces is within `max_request_body`;
//! - the same head cut anywhere short of its end is "need more bytes", and the head alone
//!   parses to the same request: a head split across reads is read the same;
//! - an accepted upgrade was asked for, and its 101 carries `Sec-WebSocket-Accept`; a refused
//!   one answers 400 or 426, and 426 names the version the server speaks.

use ringcast_protocol::Limits;
use ringcast_protocol::http::{Request, parse_request};
use ringcast_protocol::ws::handshake::{
    accept_key, is_upgrade_request, response_101, validate_upgrade,
};

use super::SplitMix;

/// Runs one input.
pub fn run(data: &[u8]) {
    let limits = Limits::default();
    let req = match parse_request(data, &limits) {
        Ok(Some(req)) => req,
        Ok(None) => {
            assert!(
                data.len() <= limits.max_request_head,
                "waiting for more of a {}-byte head",
                data.len()
            );
            return;
        }
        Err(e) => {
            let status = e.status();
            assert!((400..=505).contains(&status), "{e:?} answers {status}");
            let head = format!("HTTP/1.1 {status} ");
            assert!(e.response().starts_with(head.as_bytes()), "{e:?}");
            return;
        }
    };
    check_request(&req, data, &limits);
    split_heads_read_the_same(&req, data, &limits);
    check_upgrade(&req);
}

fn check_request(req: &Request, data: &[u8], limits: &Limits) {
    assert!(req.head_len > 0 && req.head_len <= data.len());
    assert!(req.head_len <= limits.max_request_head);
    assert_eq!(data[req.head_len - 1], b'\n', "a head ends at a line break");
    assert!(req.headers.len() <= limits.max_headers);
    for (name, _) in &req.headers {
        assert_eq!(
            name,
            &name.to_ascii_lowercase(),
            "header names are lower-cased"
        );
    }
    assert!(req.content_length <= limits.max_request_body);
    assert!(!req.path.contains('?'), "the query is split off the path");
}

fn split_heads_read_the_same(req: &Request, data: &[u8], limits: &Limits) {
    let head = &data[..req.head_len];
    let mut rng = SplitMix::new(data.len() as u64);
    for cut in [req.head_len - 1, rng.below(req.head_len)] {
        match parse_request(&head[..cut], limits) {
            Ok(None) => {}
            Ok(Some(r)) => panic!("a head cut at {cut} parsed as {} bytes", r.head_len),
            Err(e) => panic!("a head cut at {cut} of {} was refused: {e:?}", req.head_len),
        }
    }
    let alone = parse_request(head, limits)
        .expect("the head alone parses")
        .expect("the head alone is complete");
    assert_eq!(alone.method, req.method);
    assert_eq!(alone.path, req.path);
    assert_eq!(alone.query, req.query);
    assert_eq!(alone.headers, req.headers);
    assert_eq!(alone.content_length, req.content_length);
    assert_eq!(alone.keep_alive, req.keep_alive);
    assert_eq!(alone.head_len, req.head_len);
    assert_eq!(alone.version, req.version);
}

fn check_upgrade(req: &Request) {
    let asked = is_upgrade_request(req);
    match validate_upgrade(req) {
        Ok(up) => {
            assert!(asked, "an upgrade was accepted that did not ask for one");
            let accept = accept_key(&up.key);
            assert_eq!(accept.len(), 28, "base64 of a 20-byte SHA-1");
            let response = response_101(&up);
            assert!(response.starts_with(b"HTTP/1.1 101 "));
            let line = format!("Sec-WebSocket-Accept: {accept}\r\n");
            assert!(contains(&response, line.as_bytes()), "101 without {line:?}");
            assert!(response.ends_with(b"\r\n\r\n"));
        }
        Err(e) => {
            let status = e.status();
            assert!(matches!(status, 400 | 426), "{e:?} answers {status}");
            let response = e.response();
            let head = format!("HTTP/1.1 {status} ");
            assert!(response.starts_with(head.as_bytes()), "{e:?}");
            if status == 426 {
                assert!(contains(&response, b"Sec-WebSocket-Version: 13\r\n"));
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
