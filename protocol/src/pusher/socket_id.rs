//! Socket ids: the name of one connection, as the client and the app server know it.
//!
//! The server announces the id in `pusher:connection_established`; the client sends it to the
//! app's auth endpoint, which signs it into channel and sign-in signatures; and the app sends
//! it back with a publish so that the publishing connection is left out. The Pusher server
//! SDKs check its shape before using it (pusher-http-php: `^\d+\.\d+$`), so ringcast's ids are
//! two decimal numbers joined by a dot, and are held as two integers so that comparing and
//! hashing them costs nothing.

use std::fmt;

/// A socket id, `hi.lo` in decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    hi: u64,
    lo: u64,
}

/// Why a string is not a socket id.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SocketIdError {
    /// Not two runs of digits joined by one dot.
    #[error("Invalid socket id: expected digits.digits")]
    Format,
    /// A part has more than 20 digits or does not fit in 64 bits.
    #[error("Invalid socket id: number too large")]
    TooLarge,
}

impl SocketIdError {
    /// HTTP status for an HTTP API request that carries this socket id.
    pub fn status(&self) -> u16 {
        match self {
            Self::Format | Self::TooLarge => 400,
        }
    }
}

/// Largest value of each part of a generated id: ten decimal digits, like the ids of other
/// Pusher servers, so that ids stay short on the wire.
const MAX_GENERATED_PART: u64 = 9_999_999_999;

impl SocketId {
    /// The id `hi.lo`.
    pub fn new(hi: u64, lo: u64) -> Self {
        Self { hi, lo }
    }

    /// A new id from two draws of the caller's random source, each part in
    /// `0..=9_999_999_999`.
    ///
    /// The parts are taken modulo 10^10. The bias that introduces (some values are
    /// 1 in 1.8·10^9 more likely than others) is irrelevant: ids must be unlikely to collide,
    /// not uniform, and nothing secret is derived from them.
    pub fn generate(rng: &mut impl FnMut() -> u64) -> Self {
        let hi = rng() % (MAX_GENERATED_PART + 1);
        let lo = rng() % (MAX_GENERATED_PART + 1);
        Self { hi, lo }
    }

    /// Parses `^\d+\.\d+$` with each part at most 20 digits and within `u64`.
    ///
    /// Leading zeros are accepted, as the pattern allows, and name the same id as without
    /// them: `007.1` is `7.1`.
    pub fn parse(s: &str) -> Result<Self, SocketIdError> {
        let (hi, lo) = s.split_once('.').ok_or(SocketIdError::Format)?;
        Ok(Self {
            hi: parse_part(hi)?,
            lo: parse_part(lo)?,
        })
    }

    /// The first number.
    pub fn hi(&self) -> u64 {
        self.hi
    }

    /// The second number.
    pub fn lo(&self) -> u64 {
        self.lo
    }
}

fn parse_part(s: &str) -> Result<u64, SocketIdError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SocketIdError::Format);
    }
    if s.len() > 20 {
        return Err(SocketIdError::TooLarge);
    }
    s.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(SocketIdError::TooLarge)
    })
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.hi, self.lo)
    }
}

impl std::str::FromStr for SocketId {
    type Err = SocketIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for (hi, lo) in [
            (0, 0),
            (1234, 1234),
            (9_999_999_999, 1),
            (u64::MAX, u64::MAX),
        ] {
            let id = SocketId::new(hi, lo);
            let s = id.to_string();
            assert_eq!(s, format!("{hi}.{lo}"));
            assert_eq!(SocketId::parse(&s), Ok(id));
        }
        assert_eq!(
            "1234.1234".parse::<SocketId>(),
            Ok(SocketId::new(1234, 1234))
        );
        assert_eq!(SocketId::parse("007.1"), Ok(SocketId::new(7, 1)));
    }

    #[test]
    fn rejects_what_the_pattern_rejects() {
        for s in [
            "", ".", "1.", ".1", "1", "1.2.3", "a.1", "1.a", " 1.1", "1.1 ", "1.1\n", "+1.1",
            "-1.1", "1,1", "1.1e3", "١.١", "1..1",
        ] {
            assert_eq!(SocketId::parse(s), Err(SocketIdError::Format), "{s:?}");
        }
        assert_eq!(
            SocketId::parse("18446744073709551616.1"),
            Err(SocketIdError::TooLarge)
        );
        assert_eq!(
            SocketId::parse("1.000000000000000000001"),
            Err(SocketIdError::TooLarge)
        );
        assert_eq!(SocketIdError::Format.status(), 400);
    }

    #[test]
    fn generated_parts_stay_within_ten_digits() {
        let mut draws = [u64::MAX, 0, 9_999_999_999, 10_000_000_000, 12_345]
            .into_iter()
            .cycle();
        let mut rng = || draws.next().unwrap_or(0);
        for _ in 0..10 {
            let id = SocketId::generate(&mut rng);
            assert!(id.hi() <= 9_999_999_999 && id.lo() <= 9_999_999_999);
            assert_eq!(SocketId::parse(&id.to_string()), Ok(id));
        }
        let mut seq = [3, 4].into_iter();
        assert_eq!(
            SocketId::generate(&mut || seq.next().unwrap_or(0)),
            SocketId::new(3, 4)
        );
        let mut big = || 10_000_000_000;
        assert_eq!(SocketId::generate(&mut big), SocketId::new(0, 0));
    }
}
