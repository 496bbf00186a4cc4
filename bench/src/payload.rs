//! The self-checking payload every benchmark message carries.
//!
//! Text `rcb:<channel>:<seq>:<sent_ns>:` padded with `x` to the requested size. It is plain
//! ASCII without quotes or backslashes, so every server relays it byte for byte inside the
//! `data` JSON string, and a subscriber finds it with one substring search instead of parsing
//! the JSON envelope: the client must cost less per message than the server it measures. The
//! marker cannot occur in channel or event names (`:` is not allowed there).

use std::sync::LazyLock;

use memchr::memmem;

/// Marker that starts a payload.
pub const MARKER: &[u8] = b"rcb:";

/// The fields a payload carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the stream (channel) the payload was published to.
    pub channel: u32,
    /// Sequence number within that stream, from 0.
    pub seq: u64,
    /// `CLOCK_MONOTONIC` nanoseconds just before the publish was written.
    pub sent_ns: u64,
}

/// Appends the payload for `stamp`, padded to `size` bytes (longer if the fields need it).
pub fn encode_into(out: &mut Vec<u8>, stamp: Stamp, size: usize) {
    let start = out.len();
    out.extend_from_slice(MARKER);
    push_u64(out, stamp.channel as u64);
    out.push(b':');
    push_u64(out, stamp.seq);
    out.push(b':');
    push_u64(out, stamp.sent_ns);
    out.push(b':');
    let written = out.len() - start;
    if written < size {
        out.resize(start + size, b'x');
    }
}

/// The payload for `stamp` as a string.
pub fn encode(stamp: Stamp, size: usize) -> String {
    let mut out = Vec::with_capacity(size.max(48));
    encode_into(&mut out, stamp, size);
    String::from_utf8(out).expect("ASCII")
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The searcher for [`MARKER`], built once: `memmem::find` would build one per message, which
/// cost more than the search itself.
static FINDER: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(MARKER));

/// Finds and decodes a payload anywhere in `message` (a whole Pusher event frame).
pub fn find(message: &[u8]) -> Option<Stamp> {
    let at = FINDER.find(message)? + MARKER.len();
    let mut rest = &message[at..];
    let channel = take_number(&mut rest)?;
    let seq = take_number(&mut rest)?;
    let sent_ns = take_number(&mut rest)?;
    Some(Stamp {
        channel: u32::try_from(channel).ok()?,
        seq,
        sent_ns,
    })
}

/// Parses digits up to the next `:` and moves past it.
fn take_number(rest: &mut &[u8]) -> Option<u64> {
    let end = rest.iter().position(|&b| b == b':')?;
    if end == 0 || end > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in &rest[..end] {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    *rest = &rest[end + 1..];
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringcast_protocol::pusher::event::ServerEvent;

    #[test]
    fn payloads_round_trip_through_a_server_event() {
        let stamp = Stamp {
            channel: 42,
            seq: 1_234_567,
            sent_ns: u64::MAX,
        };
        for size in [0, 10, 100, 1024] {
            let data = encode(stamp, size);
            assert!(data.len() >= size && (size < 60 || data.len() == size));
            let frame = ServerEvent::ChannelEvent {
                event: "bench",
                channel: "bench-42",
                data: &data,
            }
            .to_json();
            assert_eq!(find(&frame), Some(stamp));
        }
    }

    #[test]
    fn malformed_payloads_are_not_stamps() {
        assert_eq!(find(b"no marker"), None);
        assert_eq!(find(b"rcb:1:2:"), None);
        assert_eq!(find(b"rcb:1:x:3:"), None);
        assert_eq!(find(b"rcb::2:3:"), None);
        assert_eq!(find(b"rcb:99999999999:2:3:"), None);
        assert_eq!(
            find(b"rcb:0:0:0:"),
            Some(Stamp {
                channel: 0,
                seq: 0,
                sent_ns: 0
            })
        );
    }
}
