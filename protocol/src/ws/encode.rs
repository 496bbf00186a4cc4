//! Frames as either side writes them.
//!
//! Server to client ([`frame`], [`text`], [`close`]): RFC 6455 section 5.1, "A server MUST NOT
//! mask any frames that it sends to the client." An unmasked frame is the same sequence of bytes
//! for every recipient, which is what lets the engine encode a broadcast once and hand the same
//! [`Bytes`] to every subscriber. Every such frame is final (FIN set) and unfragmented, and is
//! built in a single allocation.
//!
//! Client to server ([`write_masked`], [`masked`]): "a client MUST mask all frames that it sends
//! to the server". The engine never writes these; the load generator and the tests' clients do,
//! and they share this one encoder.

use bytes::Bytes;

use super::frame::Opcode;
use super::mask::apply_mask;

/// Length of the header that precedes a payload of `payload_len` bytes (RFC 6455 section 5.2:
/// 7-bit length up to 125, 16-bit extended length up to 65535, else 64-bit).
pub fn header_len(payload_len: usize) -> usize {
    match payload_len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

/// Appends the header of an unmasked, final frame to `out`.
pub fn write_header(out: &mut Vec<u8>, opcode: Opcode, payload_len: usize) {
    write_head(out, 0x80 | opcode.as_u8(), 0, payload_len);
}

/// Appends the first byte, then the length in its shortest form (section 5.2: "the minimal
/// number of bytes MUST be used to encode the length") with `mask_bit` in its first byte.
fn write_head(out: &mut Vec<u8>, first: u8, mask_bit: u8, payload_len: usize) {
    out.push(first);
    match payload_len {
        0..=125 => out.push(mask_bit | payload_len as u8),
        126..=65535 => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(payload_len as u64).to_be_bytes());
        }
    }
}

/// A complete unmasked final frame carrying `payload`.
pub fn frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(header_len(payload.len()) + payload.len());
    write_header(&mut out, opcode, payload.len());
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// A complete text frame carrying `payload` (which the caller guarantees is UTF-8).
pub fn text(payload: &[u8]) -> Bytes {
    frame(Opcode::Text, payload)
}

/// A close frame with `code` and `reason`. RFC 6455 section 5.5: "All control frames MUST have a
/// payload length of 125 bytes or less", so the reason is cut to 123 bytes at a character
/// boundary.
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(Opcode::Close, &payload)
}

/// Appends a client frame to `out`: FIN as given, the mask bit, `key`, and `payload` masked
/// with it (section 5.3: "octet i of the transformed data is the XOR of octet i of the
/// original data with octet at index i modulo 4 of the masking key"). Whatever is asked is
/// written, including frames a server must refuse (a fragmented control frame, a control
/// payload over 125 bytes), so that tests can send them. The key is the caller's: section 10.3
/// asks that it be unpredictable, which is the client's business, not the encoder's.
pub fn write_masked(out: &mut Vec<u8>, fin: bool, opcode: Opcode, payload: &[u8], key: [u8; 4]) {
    let fin_bit = if fin { 0x80 } else { 0 };
    write_head(out, fin_bit | opcode.as_u8(), 0x80, payload.len());
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(body) = out.get_mut(start..) {
        apply_mask(body, key);
    }
}

/// A final masked client frame carrying `payload`, in a new buffer.
pub fn masked(opcode: Opcode, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header_len(payload.len()) + 4 + payload.len());
    write_masked(&mut out, true, opcode, payload, key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::ws::decoder::{Decoder, DecoderConfig, Message};
    use bytes::BytesMut;

    #[test]
    fn masked_frames_match_the_rfc_and_decode_at_every_length_form() {
        // RFC 6455 section 5.7: 'A single-frame masked text message ... contains "Hello"'.
        assert_eq!(
            masked(Opcode::Text, b"Hello", [0x37, 0xfa, 0x21, 0x3d]),
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        let limits = Limits {
            max_frame_size: 1 << 17,
            max_message_size: 1 << 17,
            ..Limits::default()
        };
        for len in [0usize, 1, 125, 126, 1000, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let frame = masked(Opcode::Binary, &payload, [1, 2, 3, 250]);
            assert_eq!(frame.len(), header_len(len) + 4 + len, "len {len}");
            let mut buf = BytesMut::from(&frame[..]);
            let mut server = Decoder::new(DecoderConfig::server(&limits));
            assert_eq!(server.decode(&mut buf), Ok(Some(Message::Binary(payload))));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn masked_fragments_join_into_one_message() {
        let mut wire = Vec::new();
        write_masked(&mut wire, false, Opcode::Text, b"frag", [9, 8, 7, 6]);
        write_masked(&mut wire, true, Opcode::Continuation, b"ment", [1, 1, 1, 1]);
        assert_eq!((wire[0], wire[10]), (0x01, 0x80));
        let mut buf = BytesMut::from(&wire[..]);
        let mut server = Decoder::new(DecoderConfig::server(&Limits::default()));
        assert_eq!(
            server.decode(&mut buf),
            Ok(Some(Message::Text(b"fragment".to_vec())))
        );
    }

    #[test]
    fn lengths_use_the_shortest_form() {
        for (len, header) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let f = frame(Opcode::Binary, &vec![7u8; len]);
            assert_eq!(f.len(), header + len, "payload {len}");
            assert_eq!(header_len(len), header);
            assert_eq!(f[0], 0x82);
        }
        assert_eq!(&text(b"hi")[..], &[0x81, 2, b'h', b'i']);
        let f = frame(Opcode::Text, &[b'a'; 300]);
        assert_eq!(&f[..4], &[0x81, 126, 1, 44]);
        let f = frame(Opcode::Text, &[b'a'; 70000]);
        assert_eq!(&f[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn close_reason_is_cut_at_a_char_boundary() {
        let f = close(4100, &"é".repeat(100));
        assert_eq!(f[0], 0x88);
        let len = f[1] as usize;
        assert!(len <= 125);
        assert_eq!(&f[2..4], &4100u16.to_be_bytes());
        assert!(std::str::from_utf8(&f[4..]).is_ok());
        assert_eq!(len, 2 + 122);
    }
}
