//! Close frames: status codes and reasons (RFC 6455 sections 5.5.1 and 7.4).
//!
//! A peer's close frame is checked as strictly as a data frame, because the reason is text and
//! the code is the peer's claim about why the connection ends. Autobahn's section 7 sends every
//! interesting code and expects the invalid ones to fail the connection with 1002.

use super::decoder::ProtocolError;

/// A close status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: "a normal closure, meaning that the purpose for which the connection was
    /// established has been fulfilled".
    pub const NORMAL: Self = Self(1000);
    /// 1001: "an endpoint is "going away", such as a server going down".
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: "an endpoint is terminating the connection due to a protocol error".
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: "it has received a type of data it cannot accept".
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1007: "data within a message that was not consistent with the type of the message (e.g.,
    /// non-UTF-8 data within a text message)".
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: "a message that violates its policy".
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: "a message that is too big for it to process".
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1011: "an unexpected condition that prevented it from fulfilling the request".
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1005: "no status code was actually present". Never sent in a frame; as a code to close
    /// with it means "send an empty close frame", the answer to a close that carried none.
    pub const NO_STATUS: Self = Self(1005);

    /// The reason text a server sends with this code.
    pub fn reason(self) -> &'static str {
        match self.0 {
            1000 => "Normal closure",
            1001 => "Going away",
            1002 => "Protocol error",
            1003 => "Binary messages are not supported",
            1007 => "Invalid UTF-8 in a text message",
            1008 => "Policy violation",
            1009 => "Message too big",
            1011 => "Internal error",
            _ => "",
        }
    }

    /// Whether a peer may send this code in a close frame.
    ///
    /// Section 7.4.1 defines 1000-1003 and 1007-1011; IANA later registered 1012 (service
    /// restart), 1013 (try again later) and 1014 (bad gateway), which we accept too. 1004 is
    /// reserved, and 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close control
    /// frame by an endpoint". Section 7.4.2: 0-999 are "not used", 1000-2999 are "reserved for
    /// definition by this protocol", 3000-3999 for libraries and frameworks and 4000-4999 "for
    /// private use" (Pusher's own codes live there). Anything else is refused.
    pub fn is_valid_received(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// The body of a close frame: a status code and a UTF-8 reason of at most 123 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, possibly empty.
    pub reason: String,
}

impl CloseFrame {
    /// Parses an unmasked close payload; `Ok(None)` for an empty one (a close without a code).
    /// The rules are [`CloseRef::parse`]'s; this copies the reason.
    pub fn parse(payload: &[u8]) -> Result<Option<Self>, ProtocolError> {
        Ok(CloseRef::parse(payload)?.map(CloseRef::to_frame))
    }
}

/// The body of a close frame borrowed from its payload: a [`CloseFrame`] without the copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseRef<'a> {
    /// The status code.
    pub code: CloseCode,
    /// The reason, possibly empty.
    pub reason: &'a str,
}

impl<'a> CloseRef<'a> {
    /// Parses an unmasked close payload; `Ok(None)` for an empty one (a close without a code).
    ///
    /// The decoder has already refused payloads over 125 bytes (section 5.5: "All control
    /// frames MUST have a payload length of 125 bytes or less"), which leaves at most 123 bytes
    /// of reason.
    pub fn parse(payload: &'a [u8]) -> Result<Option<Self>, ProtocolError> {
        // Section 5.5.1: "If there is a body, the first two bytes of the body MUST be a 2-byte
        // unsigned integer (in network byte order) representing a status code". A single byte
        // cannot be one.
        let (code, reason) = match payload {
            [] => return Ok(None),
            [_] => return Err(ProtocolError::InvalidClosePayload),
            [hi, lo, reason @ ..] => (CloseCode(u16::from_be_bytes([*hi, *lo])), reason),
        };
        if !code.is_valid_received() {
            return Err(ProtocolError::InvalidCloseCode(code.0));
        }
        // Section 5.5.1: the reason's "data is not guaranteed to be human readable but ... it
        // is UTF-8", and section 8.1 fails the connection on invalid UTF-8.
        let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
        Ok(Some(Self { code, reason }))
    }

    /// The owned close frame.
    pub fn to_frame(self) -> CloseFrame {
        CloseFrame {
            code: self.code,
            reason: self.reason.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_as_autobahn_section_7_expects() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4100, 4999,
        ];
        let invalid = [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for code in valid {
            assert!(CloseCode(code).is_valid_received(), "{code}");
        }
        for code in invalid {
            assert!(!CloseCode(code).is_valid_received(), "{code}");
        }
    }

    #[test]
    fn payload_rules() {
        assert_eq!(CloseFrame::parse(b""), Ok(None));
        assert_eq!(
            CloseFrame::parse(&[0x03]),
            Err(ProtocolError::InvalidClosePayload)
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xe8]),
            Ok(Some(CloseFrame {
                code: CloseCode::NORMAL,
                reason: String::new()
            }))
        );
        let mut p = 4000u16.to_be_bytes().to_vec();
        p.extend_from_slice("bye ✓".as_bytes());
        assert_eq!(
            CloseFrame::parse(&p).unwrap().unwrap().reason,
            "bye ✓".to_owned()
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xe8, b'a', 0xff]),
            Err(ProtocolError::InvalidUtf8)
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xe8, 0xe2, 0x82]),
            Err(ProtocolError::InvalidUtf8)
        );
        assert_eq!(
            CloseFrame::parse(&1005u16.to_be_bytes()),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            CloseRef::parse(&p),
            Ok(Some(CloseRef {
                code: CloseCode(4000),
                reason: "bye ✓"
            }))
        );
    }
}
