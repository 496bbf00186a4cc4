//! Server-to-client frames.
//!
//! RFC 6455 section 5.1: "A server MUST NOT mask any frames that it sends to the client." An
//! unmasked frame is the same sequence of bytes for every recipient, which is what lets the engine
//! encode a broadcast once and hand the same [`Bytes`] to every subscriber. Every frame built here
//! is final (FIN set) and unfragmented, and is built in a single allocation.

use bytes::Bytes;

use super::frame::Opcode;

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
    out.push(0x80 | opcode.as_u8());
    match payload_len {
        0..=125 => out.push(payload_len as u8),
        126..=65535 => {
            out.push(126);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
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

#[cfg(test)]
mod tests {
    use super::*;

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
