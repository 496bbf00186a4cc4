//! `pusher_message`: a WebSocket text message from a client, read as a Pusher message.
//!
//! Input: the message payload, as `ringcast_protocol::pusher::parse_client_message` receives it
//! from the engine once the frame decoder has checked it is UTF-8 (the input here need not be
//! UTF-8: the parser must refuse it without panicking either way).
//!
//! Checks, beyond "no panic":
//! - a refused message maps to a Pusher error code in the 4000–4999 range;
//! - an accepted message means what it says: a client event's name starts with `client-` and
//!   is within the event-name limit;
//! - an accepted message, written back out the way pusher-js writes it, parses to the same
//!   message (the fields the parser returns are enough to reproduce it).

use ringcast_protocol::Limits;
use ringcast_protocol::pusher::json::push_str;
use ringcast_protocol::pusher::{ClientMessage, parse_client_message};

/// Runs one input.
pub fn run(data: &[u8]) {
    let limits = Limits::default();
    let mut buf = data.to_vec();
    match parse_client_message(&mut buf, &limits) {
        Ok(msg) => {
            check_meaning(&msg, &limits);
            let mut again = write(&msg);
            let reparsed = parse_client_message(&mut again, &limits);
            assert_eq!(
                reparsed.as_ref(),
                Ok(&msg),
                "re-encoded message does not parse back: {}",
                String::from_utf8_lossy(&write(&msg))
            );
        }
        Err(e) => {
            let code = e.pusher_code();
            assert!((4000..=4999).contains(&code), "{e:?} maps to {code}");
            assert!(!e.to_string().is_empty());
        }
    }
}

fn check_meaning(msg: &ClientMessage, limits: &Limits) {
    if let ClientMessage::ClientEvent { event, .. } = msg {
        assert!(
            event.starts_with("client-"),
            "accepted client event {event:?}"
        );
        assert!(event.chars().count() <= limits.max_event_name_len);
    }
    if let ClientMessage::Subscribe {
        auth: Some(auth), ..
    } = msg
    {
        assert!(!auth.is_empty(), "an empty auth must read as no auth");
    }
}

/// `msg` as pusher-js sends it: `data` as an object for `pusher:` events, a client event's
/// `data` as the JSON value it holds.
fn write(msg: &ClientMessage) -> Vec<u8> {
    let mut out = Vec::new();
    let field = |out: &mut Vec<u8>, key: &str, value: &str| {
        push_str(out, key);
        out.push(b':');
        push_str(out, value);
    };
    out.extend_from_slice(b"{\"event\":");
    match msg {
        ClientMessage::Subscribe {
            channel,
            auth,
            channel_data,
        } => {
            out.extend_from_slice(b"\"pusher:subscribe\",\"data\":{");
            field(&mut out, "channel", channel);
            if let Some(auth) = auth {
                out.push(b',');
                field(&mut out, "auth", auth);
            }
            if let Some(channel_data) = channel_data {
                out.push(b',');
                field(&mut out, "channel_data", channel_data);
            }
            out.push(b'}');
        }
        ClientMessage::Unsubscribe { channel } => {
            out.extend_from_slice(b"\"pusher:unsubscribe\",\"data\":{");
            field(&mut out, "channel", channel);
            out.push(b'}');
        }
        ClientMessage::Ping => out.extend_from_slice(b"\"pusher:ping\",\"data\":{}"),
        ClientMessage::Pong => out.extend_from_slice(b"\"pusher:pong\",\"data\":{}"),
        ClientMessage::Signin { auth, user_data } => {
            out.extend_from_slice(b"\"pusher:signin\",\"data\":{");
            field(&mut out, "auth", auth);
            out.push(b',');
            field(&mut out, "user_data", user_data);
            out.push(b'}');
        }
        ClientMessage::ClientEvent {
            event,
            channel,
            data,
        } => {
            push_str(&mut out, event);
            out.push(b',');
            field(&mut out, "channel", channel);
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(data.as_bytes());
        }
    }
    out.push(b'}');
    out
}
