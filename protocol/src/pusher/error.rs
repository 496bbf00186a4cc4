//! Pusher error codes and what a client does when it sees one.
//!
//! A Pusher server ends a connection with a WebSocket close frame whose code is in the 4000s,
//! and the range of the code tells the client whether and how to come back. The same codes
//! appear in `pusher:error` events. Getting the range wrong has visible consequences: a
//! server that answers overload with a 4000–4099 code stops every client from ever
//! reconnecting, and one that answers a bad key with a 4200–4299 code makes every client
//! hammer the server in a tight loop. So the codes ringcast sends are an enum, and the
//! reconnect class a client derives from each is computed here and tested against the ranges
//! pusher-js uses.

/// The Pusher close and error codes ringcast sends.
///
/// The Pusher protocol documentation lists the ranges: "4000-4099: The connection SHOULD NOT be
/// re-established unchanged", "4100-4199: The connection SHOULD be re-established after backing
/// off", "4200-4299: The connection SHOULD be re-established immediately".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum PusherCode {
    /// The application only accepts TLS connections.
    TlsOnly = 4000,
    /// No application has the key in the connection URL.
    AppNotFound = 4001,
    /// The application exists but is disabled.
    AppDisabled = 4003,
    /// The application already has as many connections as it may.
    OverQuota = 4004,
    /// The connection URL is not an application path.
    PathNotFound = 4005,
    /// The `version` query parameter is malformed.
    InvalidVersion = 4006,
    /// The `protocol` query parameter names a protocol ringcast does not speak.
    UnsupportedProtocol = 4007,
    /// No `protocol` query parameter.
    NoProtocol = 4008,
    /// A signature, sign-in or membership check failed.
    Unauthorized = 4009,
    /// The server (or this connection's outbound queue) is over capacity.
    OverCapacity = 4100,
    /// Generic "reconnect now"; also what ringcast answers an unparsable message with.
    Reconnect = 4200,
    /// A ping went unanswered.
    PongNotReceived = 4201,
    /// The connection was idle for too long.
    ClosedAfterInactivity = 4202,
    /// A client event was rejected (rate limit, or not allowed).
    ClientEventRateLimit = 4301,
    /// A sign-in named more watchlist ids than allowed; the rest were dropped.
    WatchlistLimit = 4302,
}

impl PusherCode {
    /// Every code, in numeric order.
    pub const ALL: [PusherCode; 15] = [
        Self::TlsOnly,
        Self::AppNotFound,
        Self::AppDisabled,
        Self::OverQuota,
        Self::PathNotFound,
        Self::InvalidVersion,
        Self::UnsupportedProtocol,
        Self::NoProtocol,
        Self::Unauthorized,
        Self::OverCapacity,
        Self::Reconnect,
        Self::PongNotReceived,
        Self::ClosedAfterInactivity,
        Self::ClientEventRateLimit,
        Self::WatchlistLimit,
    ];

    /// The numeric code, as sent in a close frame or a `pusher:error` event.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The code for a number, if ringcast has a name for it.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The human-readable text sent with the code (close reason or `pusher:error` message).
    /// Each fits in a close frame's 123 bytes of reason.
    pub fn message(self) -> &'static str {
        match self {
            Self::TlsOnly => "Application only accepts TLS connections, reconnect using wss://",
            Self::AppNotFound => "Application does not exist",
            Self::AppDisabled => "Application disabled",
            Self::OverQuota => "Application is over connection quota",
            Self::PathNotFound => "Path not found",
            Self::InvalidVersion => "Invalid version string format",
            Self::UnsupportedProtocol => "Unsupported protocol version",
            Self::NoProtocol => "No protocol version supplied",
            Self::Unauthorized => "Connection is unauthorized",
            Self::OverCapacity => "Over capacity",
            Self::Reconnect => "Generic reconnect immediately",
            Self::PongNotReceived => "Pong reply not received in time",
            Self::ClosedAfterInactivity => "Closed after inactivity",
            Self::ClientEventRateLimit => "Client event rejected due to rate limit",
            Self::WatchlistLimit => "Watchlist limit exceeded",
        }
    }

    /// What pusher-js does when a connection is closed with this code.
    pub fn reconnect(self) -> Reconnect {
        match self {
            Self::TlsOnly => Reconnect::TlsOnly,
            Self::AppNotFound
            | Self::AppDisabled
            | Self::OverQuota
            | Self::PathNotFound
            | Self::InvalidVersion
            | Self::UnsupportedProtocol
            | Self::NoProtocol
            | Self::Unauthorized => Reconnect::Refused,
            Self::OverCapacity => Reconnect::Backoff,
            Self::Reconnect | Self::PongNotReceived | Self::ClosedAfterInactivity => {
                Reconnect::Retry
            }
            Self::ClientEventRateLimit | Self::WatchlistLimit => Reconnect::Refused,
        }
    }
}

impl std::fmt::Display for PusherCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.message())
    }
}

/// What a pusher-js client does after its connection is closed with a given code
/// (the actions of pusher-js's `getCloseAction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reconnect {
    /// Reconnect, but only over TLS (`tls_only`).
    TlsOnly,
    /// Do not reconnect (`refused`).
    Refused,
    /// Reconnect after a back-off of at least a second (`backoff`).
    Backoff,
    /// Reconnect immediately (`retry`).
    Retry,
}

/// The action pusher-js derives from a close code; `None` where pusher-js has no special
/// action and falls back to its normal reconnection strategy.
///
/// pusher-js: below 4000 only 1002 (protocol error), 1003 (unsupported data) and 1004 back
/// off; 4000 means TLS only; the rest of 4000–4099 is refused; 4100–4199 backs off;
/// 4200–4299 retries at once; anything from 4300 up is an unknown error and is refused.
pub fn reconnect_for_close_code(code: u16) -> Option<Reconnect> {
    match code {
        1002..=1004 => Some(Reconnect::Backoff),
        0..=3999 => None,
        4000 => Some(Reconnect::TlsOnly),
        4001..=4099 => Some(Reconnect::Refused),
        4100..=4199 => Some(Reconnect::Backoff),
        4200..=4299 => Some(Reconnect::Retry),
        4300.. => Some(Reconnect::Refused),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_agrees_with_the_pusher_js_ranges() {
        for code in PusherCode::ALL {
            assert_eq!(
                reconnect_for_close_code(code.code()),
                Some(code.reconnect()),
                "{code}"
            );
            assert_eq!(PusherCode::from_code(code.code()), Some(code));
            assert!(
                code.message().len() <= 123,
                "{code} reason fits a close frame"
            );
        }
        assert!(
            PusherCode::ALL
                .windows(2)
                .all(|w| w[0].code() < w[1].code())
        );
        assert_eq!(PusherCode::from_code(4002), None);
    }

    #[test]
    fn close_code_ranges() {
        let cases = [
            (1000, None),
            (1001, None),
            (1002, Some(Reconnect::Backoff)),
            (1003, Some(Reconnect::Backoff)),
            (1004, Some(Reconnect::Backoff)),
            (1005, None),
            (1006, None),
            (1011, None),
            (3999, None),
            (4000, Some(Reconnect::TlsOnly)),
            (4001, Some(Reconnect::Refused)),
            (4009, Some(Reconnect::Refused)),
            (4099, Some(Reconnect::Refused)),
            (4100, Some(Reconnect::Backoff)),
            (4199, Some(Reconnect::Backoff)),
            (4200, Some(Reconnect::Retry)),
            (4201, Some(Reconnect::Retry)),
            (4299, Some(Reconnect::Retry)),
            (4300, Some(Reconnect::Refused)),
            (4301, Some(Reconnect::Refused)),
            (4999, Some(Reconnect::Refused)),
            (u16::MAX, Some(Reconnect::Refused)),
        ];
        for (code, action) in cases {
            assert_eq!(reconnect_for_close_code(code), action, "{code}");
        }
    }

    #[test]
    fn numeric_values() {
        assert_eq!(PusherCode::AppNotFound.code(), 4001);
        assert_eq!(PusherCode::Unauthorized.code(), 4009);
        assert_eq!(PusherCode::OverCapacity.code(), 4100);
        assert_eq!(PusherCode::PongNotReceived.code(), 4201);
        assert_eq!(PusherCode::WatchlistLimit.code(), 4302);
        assert_eq!(
            PusherCode::AppNotFound.to_string(),
            "4001 Application does not exist"
        );
    }
}
