//! `api_auth`: an HTTP API request, authenticated and its body parsed.
//!
//! Input: `METHOD TARGET\nBODY`, where TARGET is the path and query exactly as a request line
//! carries them (`/apps/3/events?auth_key=...`) and BODY is every byte after the first newline
//! (no newline: an empty body). The request is checked against the credentials and clock of
//! [`KEY`], [`SECRET`] and [`NOW`], the Pusher documentation's example app, so a seed signed by
//! an SDK at that time passes and the fuzzer starts from requests that reach every check.
//!
//! What runs, as the engine runs it: `api::route::route`, `api::query::Query::parse`,
//! `api::signature::verify`, and the body parsers `api::body::parse_event`, `parse_batch` and
//! (for the deprecated per-channel route) `parse_legacy_event`. The body parsers run whether or
//! not the signature holds, since a fuzzer cannot forge an HMAC and would otherwise never reach
//! them.
//!
//! Checks, beyond "no panic":
//! - every error maps to a 4xx status and a complete HTTP response;
//! - a request that verifies stops verifying when its body, method or path changes (the
//!   signature covers all three, and `body_md5` is recomputed, never trusted);
//! - signing the request's own non-authentication parameters and body with
//!   `api::signature::signed_query` gives a query that verifies (signer and verifier agree on
//!   escaping, ordering and case for every parameter the fuzzer invents);
//! - an accepted body respects every limit it is checked against.

use ringcast_protocol::Limits;
use ringcast_protocol::api::ApiError;
use ringcast_protocol::api::body::{TriggerEvent, parse_batch, parse_event, parse_legacy_event};
use ringcast_protocol::api::query::Query;
use ringcast_protocol::api::route::{Route, route};
use ringcast_protocol::api::signature::{Credentials, signed_query, verify};
use ringcast_protocol::pusher::ServerEvent;

/// The app key of the Pusher documentation's signing examples.
pub const KEY: &str = "278d425bdf160c739803";
/// The app secret of the Pusher documentation's signing examples.
pub const SECRET: &str = "7ad3773142a6692b25b8";
/// The clock: the timestamp of the Pusher documentation's HTTP API signing example.
pub const NOW: u64 = 1_353_088_179;

const CREDS: Credentials<'static> = Credentials {
    key: KEY,
    secret: SECRET,
};

/// The parameters a signer adds itself.
const AUTH_PARAMS: [&str; 5] = [
    "auth_key",
    "auth_timestamp",
    "auth_version",
    "auth_signature",
    "body_md5",
];

/// Runs one input.
pub fn run(data: &[u8]) {
    let limits = Limits::default();
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[data.len()..]),
    };
    let line = String::from_utf8_lossy(line);
    let (method, target) = line.split_once(' ').unwrap_or((&line, ""));
    let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));

    let route = route(method, path).map_err(check_error).ok();

    if let Ok(query) = Query::parse(raw_query).map_err(check_error) {
        let verified = verify(method, path, &query, body, CREDS, NOW, &limits);
        match verified {
            Ok(()) => tampering_is_refused(method, path, &query, body, &limits),
            Err(e) => {
                assert!(
                    matches!(e.status(), 400 | 401),
                    "authentication error {e:?}"
                );
                check_error(e);
            }
        }
        signer_and_verifier_agree(method, path, &query, body, &limits);
        if let Some(Route::LegacyChannelEvents { channel, .. }) = &route {
            check_event(
                parse_legacy_event(channel, &query, body, &limits),
                &limits,
                false,
            );
        }
    }

    check_event(parse_event(&mut body.to_vec(), &limits), &limits, false);
    match parse_batch(&mut body.to_vec(), &limits) {
        Ok(batch) => {
            assert!(batch.len() <= limits.max_batch_events);
            for event in batch {
                check_event(Ok(event), &limits, true);
            }
        }
        Err(e) => check_error(e),
    }
}

/// Every change to what the signature covers must be refused.
fn tampering_is_refused(method: &str, path: &str, query: &Query, body: &[u8], limits: &Limits) {
    let mut longer = body.to_vec();
    longer.push(b' ');
    assert!(verify(method, path, query, &longer, CREDS, NOW, limits).is_err());
    let other = if method == "POST" { "GET" } else { "POST" };
    assert!(verify(other, path, query, body, CREDS, NOW, limits).is_err());
    let other_path = format!("{path}x");
    assert!(verify(method, &other_path, query, body, CREDS, NOW, limits).is_err());
}

/// Signing the request's own extra parameters gives a request that verifies.
fn signer_and_verifier_agree(
    method: &str,
    path: &str,
    query: &Query,
    body: &[u8],
    limits: &Limits,
) {
    let extra: Vec<(&str, &str)> = query
        .iter()
        .filter(|(k, _)| !AUTH_PARAMS.iter().any(|a| k.eq_ignore_ascii_case(a)))
        .collect();
    let signed = signed_query(method, path, body, CREDS, NOW, &extra);
    let reparsed = Query::parse(&signed).expect("a signed query parses");
    if let Err(e) = verify(method, path, &reparsed, body, CREDS, NOW, limits) {
        panic!("a query signed by signed_query does not verify: {e:?}\nquery: {signed}");
    }
}

/// The invariants of a parsed trigger event, or of the error that refused it.
fn check_event(event: Result<TriggerEvent, ApiError>, limits: &Limits, in_batch: bool) {
    let event = match event {
        Ok(event) => event,
        Err(e) => return check_error(e),
    };
    assert!(!event.name.is_empty());
    assert!(event.name.chars().count() <= limits.max_event_name_len);
    assert!(event.data.len() <= limits.max_event_data);
    assert!(!event.channels.is_empty());
    assert!(event.channels.len() <= limits.max_channels_per_event);
    assert!(!in_batch || event.channels.len() == 1);
    for (i, channel) in event.channels.iter().enumerate() {
        assert!(
            !event.channels[..i].contains(channel),
            "{channel} named twice"
        );
        // The engine encodes each published event once per channel; it must not panic.
        let frame = ServerEvent::ChannelEvent {
            event: &event.name,
            channel: channel.as_str(),
            data: &event.data,
        }
        .to_frame();
        assert!(frame.len() > event.data.len() + event.name.len());
    }
}

/// An error must answer with a 4xx status and a complete response.
fn check_error(e: ApiError) {
    let status = e.status();
    assert!((400..500).contains(&status), "{e:?} answers {status}");
    let response = e.response(true);
    let head = format!("HTTP/1.1 {status} ");
    assert!(response.starts_with(head.as_bytes()), "{e:?}");
    assert!(response.windows(4).any(|w| w == b"\r\n\r\n"));
}
