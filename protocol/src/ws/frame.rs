//! Frame opcodes and headers (RFC 6455 section 5.2).
//!
//! [`FrameHeader::parse`] enforces the rules a header breaks on its own, without knowing the
//! connection: reserved bits, reserved opcodes, the shape of control frames and the 64-bit
//! length. It checks each rule as soon as the byte it depends on has arrived, so a bad first
//! byte fails the connection without waiting for the rest of the header. Rules that depend on
//! the connection (masking by role, continuation order, size limits) are the decoder's.
//!
//! Extended lengths in a longer form than needed ("the minimal number of bytes MUST be used to
//! encode the length") are accepted: the sentence binds the sender, the RFC does not ask the
//! receiver to fail on it, and the length is still exact and still checked against the limits.

use super::decoder::ProtocolError;

/// A frame opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// `%x0 denotes a continuation frame`
    Continuation,
    /// `%x1 denotes a text frame`
    Text,
    /// `%x2 denotes a binary frame`
    Binary,
    /// `%x8 denotes a connection close`
    Close,
    /// `%x9 denotes a ping`
    Ping,
    /// `%xA denotes a pong`
    Pong,
}

impl Opcode {
    /// The opcode for the low four bits of a frame's first byte; `None` for the reserved
    /// values ("%x3-7 are reserved for further non-control frames", "%xB-F are reserved for
    /// further control frames").
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// The four-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Control frames are those with the high bit of the opcode set.
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// "Indicates that this is the final fragment in a message."
    pub fin: bool,
    /// The frame's opcode.
    pub opcode: Opcode,
    /// The masking key, present if the mask bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes (below 2^63).
    pub payload_len: u64,
    /// Bytes of the header: 2 to 14. The payload starts at this offset.
    pub header_len: usize,
}

impl FrameHeader {
    /// Parses the header at the front of `buf`. `Ok(None)`: the header is not complete yet.
    /// Inlined, so that the header comes back in registers, not through memory.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<Option<Self>, ProtocolError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        // "RSV1, RSV2, RSV3: 1 bit each. MUST be 0 unless an extension is negotiated that
        // defines meanings for non-zero values." ringcast negotiates no extension.
        if b0 & 0x70 != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        // "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket
        // Connection_."
        let code = b0 & 0x0F;
        let opcode = Opcode::from_u8(code).ok_or(ProtocolError::ReservedOpcode(code))?;
        let fin = b0 & 0x80 != 0;
        // Section 5.5: "Control frames themselves MUST NOT be fragmented."
        if opcode.is_control() && !fin {
            return Err(ProtocolError::FragmentedControl);
        }
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let len7 = b1 & 0x7F;
        // Section 5.5: "All control frames MUST have a payload length of 125 bytes or less".
        if opcode.is_control() && len7 > 125 {
            return Err(ProtocolError::ControlTooLong);
        }
        let (payload_len, mut header_len) = match len7 {
            126 => {
                let Some(&[a, b]) = buf.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([a, b])), 4)
            }
            127 => {
                let Some(&[a, b, c, d, e, f, g, h]) = buf.get(2..10) else {
                    return Ok(None);
                };
                let len = u64::from_be_bytes([a, b, c, d, e, f, g, h]);
                // "If 127, the following 8 bytes interpreted as a 64-bit unsigned integer (the
                // most significant bit MUST be 0) are the payload length."
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthOverflow);
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = if b1 & 0x80 != 0 {
            let Some(&[a, b, c, d]) = buf.get(header_len..header_len + 4) else {
                return Ok(None);
            };
            header_len += 4;
            Some([a, b, c, d])
        } else {
            None
        };
        Ok(Some(Self {
            fin,
            opcode,
            mask,
            payload_len,
            header_len,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
        FrameHeader::parse(bytes)
    }

    #[test]
    fn opcodes_round_trip_and_reserved_ones_are_none() {
        for v in 0..=0xFF_u8 {
            match Opcode::from_u8(v) {
                Some(op) => assert_eq!(op.as_u8(), v),
                None => assert!(matches!(v, 0x3..=0x7 | 0xB..), "{v:#x}"),
            }
        }
        assert!(Opcode::Ping.is_control() && !Opcode::Continuation.is_control());
    }

    #[test]
    fn header_forms() {
        // RFC 6455 section 5.7 examples.
        let h = parse(&[0x81, 0x05]).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.mask, h.payload_len, h.header_len),
            (true, Opcode::Text, None, 5, 2)
        );
        let h = parse(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d])
            .unwrap()
            .unwrap();
        assert_eq!((h.mask, h.header_len), (Some([0x37, 0xfa, 0x21, 0x3d]), 6));
        let h = parse(&[0x01, 0x03]).unwrap().unwrap();
        assert!(!h.fin && h.opcode == Opcode::Text);
        let h = parse(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, h.header_len), (256, 4));
        let h = parse(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, h.header_len), (65536, 10));
        let h = parse(&[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4])
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.payload_len, h.header_len, h.mask),
            (65536, 14, Some([1, 2, 3, 4]))
        );
        // A non-minimal length form is accepted.
        let h = parse(&[0x82, 0x7E, 0x00, 0x05]).unwrap().unwrap();
        assert_eq!(h.payload_len, 5);
    }

    #[test]
    fn every_strict_prefix_of_a_header_needs_more() {
        let full = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for end in 0..full.len() {
            assert_eq!(parse(&full[..end]), Ok(None), "{end}");
        }
    }

    #[test]
    fn rejections_fail_as_early_as_possible() {
        use ProtocolError::*;
        let cases: [(&[u8], ProtocolError); 10] = [
            (&[0xC1], ReservedBits),
            (&[0xA1], ReservedBits),
            (&[0x91], ReservedBits),
            (&[0x83], ReservedOpcode(3)),
            (&[0x87], ReservedOpcode(7)),
            (&[0x8B], ReservedOpcode(0xB)),
            (&[0x8F], ReservedOpcode(0xF)),
            (&[0x09], FragmentedControl),
            (&[0x89, 0xFE], ControlTooLong),
            (&[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0], LengthOverflow),
        ];
        for (bytes, err) in cases {
            assert_eq!(parse(bytes), Err(err.clone()), "{bytes:x?}");
        }
        // 125 bytes is the largest control payload.
        assert!(parse(&[0x89, 0x7D]).unwrap().is_some());
    }
}
