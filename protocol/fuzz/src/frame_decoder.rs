//! `frame_decoder`: a byte stream from a client, read by the incremental frame decoder as it
//! arrives in pieces of arbitrary sizes.
//!
//! Input: one byte of settings, one byte that seeds where the stream is cut, then the stream.
//! Settings bit 0 set decodes as a client would (unmasked frames allowed); bits 1–2 choose the
//! size limits (the defaults, tiny ones that make every size check reachable, or large ones).
//!
//! Checks, beyond "no panic":
//! - the stream read whole and the stream read in pieces give the same messages and the same
//!   error: where the network cuts a stream never changes what it means;
//! - `decode_in_place` over the same pieces (a client's plain read buffer, consumed bytes
//!   dropped after each call) gives what `decode` gives;
//! - every decoded message obeys RFC 6455 and the limits: text is UTF-8, control payloads are
//!   at most 125 bytes, close codes are valid and reasons at most 123 bytes, messages within
//!   `max_message_size`;
//! - a message that completes consumes input, and "need more bytes" is stable: asking again
//!   without new bytes changes nothing;
//! - every decoded message, written by the server encoder and masked as a client would mask
//!   it, decodes back to itself;
//! - the fast unmasking agrees with the reference one on the stream.

use bytes::BytesMut;
use ringcast_protocol::ws::decoder::{Decoder, DecoderConfig, InPlace, Message};
use ringcast_protocol::ws::encode;
use ringcast_protocol::ws::frame::Opcode;
use ringcast_protocol::ws::mask::{apply_mask, apply_mask_reference};

use super::{SplitMix, split};

/// What a decoder produced, in a form that can be compared.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    /// An error, by the close code it answers with.
    Error(u16),
}

fn seen(msg: Message) -> Seen {
    match msg {
        Message::Text(p) => Seen::Text(p),
        Message::Binary(p) => Seen::Binary(p),
        Message::Ping(p) => Seen::Ping(p),
        Message::Pong(p) => Seen::Pong(p),
        Message::Close(c) => Seen::Close(c.map(|c| (c.code.0, c.reason))),
    }
}

fn config(settings: u8, require_mask: bool) -> DecoderConfig {
    let (max_frame_size, max_message_size) = match (settings >> 1) & 3 {
        1 => (125, 300),
        2 => (1 << 20, 1 << 20),
        _ => (10_000, 10_000),
    };
    DecoderConfig {
        max_frame_size,
        max_message_size,
        require_mask,
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let [settings, seed, stream @ ..] = data else {
        return;
    };
    let cfg = || config(*settings, settings & 1 == 0);
    let mut rng = SplitMix::new(u64::from(*seed) << 8 | u64::from(*settings));

    let whole = decode_all(Decoder::new(cfg()), &[stream]);
    let pieces = split(stream, &mut rng);
    let in_pieces = decode_all(Decoder::new(cfg()), &pieces);
    assert_eq!(whole, in_pieces, "the stream means something else when cut");
    let in_place = decode_all_in_place(Decoder::new(cfg()), &pieces);
    assert_eq!(whole, in_place, "decoding in place means something else");

    let max_message = cfg().max_message_size;
    for s in &whole {
        check_meaning(s, max_message);
        round_trip(s, &mut rng);
    }

    let key = [*seed, *settings, !*seed, seed.wrapping_add(*settings)];
    let offset = rng.below(stream.len().max(1)).min(stream.len());
    let (mut fast, mut slow) = (stream[offset..].to_vec(), stream[offset..].to_vec());
    apply_mask(&mut fast, key);
    apply_mask_reference(&mut slow, key);
    assert_eq!(fast, slow, "apply_mask disagrees with the reference");
}

/// Feeds `pieces` to `decoder` one after the other, decoding after each, until an error.
fn decode_all(mut decoder: Decoder, pieces: &[&[u8]]) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(msg)) => {
                    assert!(buf.len() < before, "a message completed without input");
                    out.push(seen(msg));
                }
                Ok(None) => {
                    let left = buf.len();
                    assert!(matches!(decoder.decode(&mut buf), Ok(None)));
                    assert_eq!(buf.len(), left, "a second `need more` consumed input");
                    break;
                }
                Err(e) => {
                    out.push(Seen::Error(e.close_code()));
                    return out;
                }
            }
        }
    }
    out
}

/// [`decode_all`] through `decode_in_place`, with a `Vec` for the read buffer.
fn decode_all_in_place(mut decoder: Decoder, pieces: &[&[u8]]) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode_in_place(&mut buf) {
                Ok(InPlace { consumed, message }) => {
                    let message = message.map(|m| m.to_message());
                    assert!(consumed <= buf.len(), "consumed more than it was given");
                    buf.drain(..consumed);
                    match message {
                        Some(msg) => {
                            assert!(consumed > 0, "a message completed without input");
                            out.push(seen(msg));
                        }
                        None => {
                            let again = decoder.decode_in_place(&mut buf);
                            assert!(
                                matches!(
                                    again,
                                    Ok(InPlace {
                                        consumed: 0,
                                        message: None
                                    })
                                ),
                                "a second `need more` consumed input"
                            );
                            break;
                        }
                    }
                }
                Err(e) => {
                    out.push(Seen::Error(e.close_code()));
                    return out;
                }
            }
        }
    }
    out
}

fn check_meaning(s: &Seen, max_message: usize) {
    match s {
        Seen::Text(p) => {
            assert!(std::str::from_utf8(p).is_ok(), "text message is not UTF-8");
            assert!(p.len() <= max_message);
        }
        Seen::Binary(p) => assert!(p.len() <= max_message),
        Seen::Ping(p) | Seen::Pong(p) => assert!(p.len() <= 125),
        Seen::Close(Some((code, reason))) => {
            assert!(
                matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
                "close code {code} accepted"
            );
            assert!(reason.len() <= 123);
        }
        Seen::Close(None) => {}
        Seen::Error(code) => assert!(
            matches!(code, 1002 | 1007 | 1009),
            "protocol error closes with {code}"
        ),
    }
}

/// The server's encoding of `s`, masked as a client masks it, decodes back to `s`. The
/// encoder writes one frame per message, so the decoders here take frames as large as the
/// largest message of any setting.
fn round_trip(s: &Seen, rng: &mut SplitMix) {
    const LARGE: u8 = 2 << 1;
    let frame = match s {
        Seen::Text(p) => encode::frame(Opcode::Text, p),
        Seen::Binary(p) => encode::frame(Opcode::Binary, p),
        Seen::Ping(p) => encode::frame(Opcode::Ping, p),
        Seen::Pong(p) => encode::frame(Opcode::Pong, p),
        Seen::Close(Some((code, reason))) => encode::close(*code, reason),
        Seen::Close(None) => encode::frame(Opcode::Close, &[]),
        Seen::Error(_) => return,
    };
    let unmasked = decode_all(Decoder::new(config(LARGE, false)), &[&frame]);
    assert_eq!(
        unmasked.as_slice(),
        std::slice::from_ref(s),
        "unmasked round trip"
    );
    let key = rng.next_u64().to_le_bytes();
    let masked = mask_frame(&frame, [key[0], key[1], key[2], key[3]]);
    let decoded = decode_all(Decoder::new(config(LARGE, true)), &[&masked]);
    assert_eq!(
        decoded.as_slice(),
        std::slice::from_ref(s),
        "masked round trip"
    );
}

/// A client's copy of an unmasked frame: mask bit set, key inserted, payload masked
/// (RFC 6455 5.3: octet i of the payload XOR octet i MOD 4 of the key), written out
/// independently of the crate's masking code.
fn mask_frame(frame: &[u8], key: [u8; 4]) -> Vec<u8> {
    let header = match frame[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..header]);
    out[1] |= 0x80;
    out.extend_from_slice(&key);
    out.extend(
        frame[header..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4]),
    );
    out
}
