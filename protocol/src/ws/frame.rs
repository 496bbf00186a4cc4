//! Frame opcodes and headers (RFC 6455 section 5.2).

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
