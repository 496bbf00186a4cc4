//! Client-side RFC 6455 framing: masked frames out, unmasked frames in.
//!
//! The protocol crate encodes server frames, which are never masked. A client is the other
//! side: RFC 6455 section 5.1 says "a client MUST mask all frames that it sends to the server"
//! and "a server MUST NOT mask any frames that it sends to the client. A client MUST close a
//! connection if it detects a masked frame." So this module writes masked frames and parses
//! unmasked ones.

use ringcast_protocol::ws::frame::Opcode;

use crate::error::BenchError;

/// Appends a final, masked frame with `payload` to `out`, masked with `key`.
pub fn write_masked(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], key: [u8; 4]) {
    out.push(0x80 | opcode.as_u8());
    match payload.len() {
        0..=125 => out.push(0x80 | payload.len() as u8),
        126..=65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    // Section 5.3: "octet i of the transformed data is the XOR of octet i of the original data
    // with octet at index i modulo 4 of the masking key". Client payloads are a few dozen bytes,
    // so the plain loop is the whole implementation.
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
}

/// A masked frame as a new buffer.
pub fn masked(opcode: Opcode, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    write_masked(&mut out, opcode, payload, key);
    out
}

/// One frame header parsed from the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHead {
    /// FIN bit.
    pub fin: bool,
    /// Opcode.
    pub opcode: Opcode,
    /// Bytes of header before the payload.
    pub header_len: usize,
    /// Payload bytes.
    pub payload_len: usize,
}

impl FrameHead {
    /// Header plus payload.
    pub fn total_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Parses the header of a server frame at the front of `buf`. `Ok(None)`: need more bytes.
pub fn parse_head(buf: &[u8], max_payload: usize) -> Result<Option<FrameHead>, BenchError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    // Section 5.2: RSV1-3 "MUST be 0 unless an extension is negotiated"; we never offer one.
    if b0 & 0x70 != 0 {
        return Err(BenchError::Frame("reserved bits set"));
    }
    let opcode = Opcode::from_u8(b0 & 0x0F).ok_or(BenchError::Frame("reserved opcode"))?;
    // Section 5.1: "A client MUST close a connection if it detects a masked frame."
    if b1 & 0x80 != 0 {
        return Err(BenchError::Frame("masked frame from server"));
    }
    let (header_len, payload_len) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (4, u16::from_be_bytes([buf[2], buf[3]]) as u64)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut len = [0u8; 8];
            len.copy_from_slice(&buf[2..10]);
            (10, u64::from_be_bytes(len))
        }
        n => (2, n as u64),
    };
    if payload_len > max_payload as u64 {
        return Err(BenchError::Frame("frame larger than the client accepts"));
    }
    let fin = b0 & 0x80 != 0;
    if opcode.is_control() && (!fin || payload_len > 125) {
        return Err(BenchError::Frame("fragmented or long control frame"));
    }
    Ok(Some(FrameHead {
        fin,
        opcode,
        header_len,
        payload_len: payload_len as usize,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringcast_protocol::ws::encode;

    fn unmask(frame: &[u8]) -> (u8, Vec<u8>) {
        let head_len = match frame[1] & 0x7F {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        assert_eq!(frame[1] & 0x80, 0x80, "client frames are masked");
        let key = &frame[head_len..head_len + 4];
        let payload = frame[head_len + 4..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        (frame[0], payload)
    }

    #[test]
    fn masked_frames_round_trip_at_every_length_form() {
        for len in [0usize, 1, 125, 126, 1000, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let f = masked(Opcode::Text, &payload, [1, 2, 3, 250]);
            let (b0, back) = unmask(&f);
            assert_eq!(b0, 0x81);
            assert_eq!(back, payload, "len {len}");
        }
    }

    #[test]
    fn server_frames_from_the_protocol_encoder_parse() {
        for len in [0usize, 5, 125, 126, 300, 70_000] {
            let f = encode::text(&vec![b'a'; len]);
            let head = parse_head(&f, 1 << 20).unwrap().unwrap();
            assert_eq!(head.opcode, Opcode::Text);
            assert!(head.fin);
            assert_eq!(head.total_len(), f.len());
            // Any strict prefix of the header asks for more bytes.
            for cut in 0..head.header_len {
                assert_eq!(parse_head(&f[..cut], 1 << 20).unwrap(), None);
            }
        }
        let c = encode::close(4100, "over capacity");
        let head = parse_head(&c, 100).unwrap().unwrap();
        assert_eq!(head.opcode, Opcode::Close);
    }

    #[test]
    fn protocol_violations_are_errors() {
        assert!(parse_head(&[0x81, 0x85], 100).is_err(), "masked");
        assert!(parse_head(&[0xC1, 0x00], 100).is_err(), "rsv1");
        assert!(parse_head(&[0x83, 0x00], 100).is_err(), "opcode 3");
        assert!(parse_head(&[0x09, 0x00], 100).is_err(), "fragmented ping");
        assert!(parse_head(&[0x81, 126, 1, 0], 100).is_err(), "too large");
    }
}
