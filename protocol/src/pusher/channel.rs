//! Channel names, and the kind of channel each name makes.
//!
//! In Pusher the name *is* the type: `private-` needs a signature, `presence-` a signature
//! over member data, `cache-` keeps the last event, `#server-to-user-` belongs to one signed-in
//! user. So the name is validated once, where it enters (a subscribe, an HTTP API publish),
//! into a [`ChannelName`], and everything downstream asks the name what it is instead of
//! testing prefixes again. Prefixes are matched with their trailing dash: `privatefoo` is a
//! public channel.

use std::borrow::Borrow;
use std::fmt;

use crate::Limits;

/// A validated channel name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(String);

/// What a channel name makes a channel. Whether it is a cache channel is independent of the
/// kind: see [`ChannelName::is_cache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// No prefix (or `cache-`): anyone may subscribe.
    Public,
    /// `private-` (or `private-cache-`): subscribing needs a signature.
    Private,
    /// `private-encrypted-` (or `private-encrypted-cache-`): a private channel whose payloads
    /// the server cannot read; the server treats it exactly like a private one.
    EncryptedPrivate,
    /// `presence-` (or `presence-cache-`): a private channel with a member list.
    Presence,
    /// `#server-to-user-{user_id}`: only the connection signed in as that user may subscribe.
    ServerToUser,
}

/// Why a string is not a channel name.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// The name is empty.
    #[error("Invalid channel name: empty")]
    Empty,
    /// The name is longer than the limit.
    #[error("Invalid channel name: {len} characters, at most {max} allowed")]
    TooLong {
        /// Characters in the name.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside `A-Z a-z 0-9 _ - = @ , . ;`.
    #[error("Invalid channel name: characters are limited to A-Z a-z 0-9 _ - = @ , . ;")]
    InvalidChar,
    /// `#` used for anything but a `#server-to-user-{user_id}` channel.
    #[error("Invalid channel name: names starting with # are reserved")]
    Reserved,
}

impl ChannelError {
    /// HTTP status for a publish naming this channel, and the `status` of the
    /// `pusher:subscription_error` sent for a subscribe naming it.
    pub fn status(&self) -> u16 {
        match self {
            Self::Empty | Self::TooLong { .. } | Self::InvalidChar | Self::Reserved => 400,
        }
    }
}

/// The per-user channel prefix (Pusher: user authentication, "server-to-user" channels).
const SERVER_TO_USER: &str = "#server-to-user-";

/// Prefixes, longest first so that `private-encrypted-cache-x` is not taken for `private-`.
const PREFIXES: [(&str, ChannelKind, bool); 8] = [
    (
        "private-encrypted-cache-",
        ChannelKind::EncryptedPrivate,
        true,
    ),
    ("private-encrypted-", ChannelKind::EncryptedPrivate, false),
    ("private-cache-", ChannelKind::Private, true),
    ("private-", ChannelKind::Private, false),
    ("presence-cache-", ChannelKind::Presence, true),
    ("presence-", ChannelKind::Presence, false),
    ("cache-", ChannelKind::Public, true),
    (SERVER_TO_USER, ChannelKind::ServerToUser, false),
];

impl ChannelName {
    /// Validates `s` as a channel name.
    pub fn parse(s: &str, limits: &Limits) -> Result<Self, ChannelError> {
        if s.is_empty() {
            return Err(ChannelError::Empty);
        }
        // Pusher docs (channels): names are made of upper and lower case letters, digits and
        // the punctuation `_ - = @ , . ;`; pusher-http-php validates `\A#?[-a-zA-Z0-9_=@,.;]+\z`,
        // the optional `#` being for `#server-to-user-` names.
        let body = match s.strip_prefix('#') {
            Some(rest) => {
                // Pusher docs: `#` is reserved for names Pusher defines; the only such names a
                // client may use are `#server-to-user-{user_id}` channels, with a non-empty id.
                match s.strip_prefix(SERVER_TO_USER) {
                    Some(id) if !id.is_empty() => rest,
                    _ => return Err(ChannelError::Reserved),
                }
            }
            None => s,
        };
        if !body.bytes().all(is_name_byte) {
            return Err(ChannelError::InvalidChar);
        }
        // Pusher docs: at most 164 characters, prefix included (`limits.max_channel_name_len`).
        // Every accepted character is ASCII, so bytes are characters here.
        if s.len() > limits.max_channel_name_len {
            return Err(ChannelError::TooLong {
                len: s.len(),
                max: limits.max_channel_name_len,
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, by value.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The kind the prefix makes.
    pub fn kind(&self) -> ChannelKind {
        kind_of(&self.0)
    }

    /// Whether this is a cache channel (`cache-`, `private-cache-`, `private-encrypted-cache-`,
    /// `presence-cache-`): the server keeps its last event for new subscribers.
    pub fn is_cache(&self) -> bool {
        is_cache_name(&self.0)
    }

    /// Whether a subscribe needs an `auth` signature: private, encrypted and presence channels.
    /// `#server-to-user-` channels need no signature but a sign-in (see
    /// [`server_to_user_id`](Self::server_to_user_id)).
    pub fn requires_auth(&self) -> bool {
        match self.kind() {
            ChannelKind::Private | ChannelKind::EncryptedPrivate | ChannelKind::Presence => true,
            ChannelKind::Public | ChannelKind::ServerToUser => false,
        }
    }

    /// Whether this is a presence channel.
    pub fn is_presence(&self) -> bool {
        self.kind() == ChannelKind::Presence
    }

    /// The user id of a `#server-to-user-{user_id}` channel.
    pub fn server_to_user_id(&self) -> Option<&str> {
        self.0.strip_prefix(SERVER_TO_USER)
    }
}

/// The kind the prefix of `name` makes, for a name that was validated as a [`ChannelName`]
/// before and is held as a plain string since (as the engine's channel owners hold theirs).
pub fn kind_of(name: &str) -> ChannelKind {
    prefix_of(name).map_or(ChannelKind::Public, |(_, kind, _)| kind)
}

/// Whether `name` (validated before, as for [`kind_of`]) is a cache channel.
pub fn is_cache_name(name: &str) -> bool {
    prefix_of(name).is_some_and(|(_, _, cache)| cache)
}

fn prefix_of(name: &str) -> Option<(&'static str, ChannelKind, bool)> {
    PREFIXES.into_iter().find(|(p, _, _)| name.starts_with(p))
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_classify_like_parsed_ones() {
        assert!(is_cache_name("cache-x") && is_cache_name("presence-cache-x"));
        assert!(is_cache_name("private-encrypted-cache-x") && !is_cache_name("private-x"));
        assert_eq!(kind_of("presence-cache-x"), ChannelKind::Presence);
        assert_eq!(kind_of("presence-x"), ChannelKind::Presence);
        assert_eq!(kind_of("private-presence-x"), ChannelKind::Private);
        assert_eq!(kind_of("news"), ChannelKind::Public);
        let limits = Limits::default();
        for name in [
            "cache-x",
            "private-encrypted-cache-x",
            "presence-y",
            "#server-to-user-7",
            "z",
        ] {
            let parsed = ChannelName::parse(name, &limits).unwrap();
            assert_eq!(parsed.kind(), kind_of(name));
            assert_eq!(parsed.is_cache(), is_cache_name(name));
        }
    }

    fn parse(s: &str) -> Result<ChannelName, ChannelError> {
        ChannelName::parse(s, &Limits::default())
    }

    #[test]
    fn kinds_by_prefix() {
        use ChannelKind::*;
        let cases = [
            ("orders", Public, false, false),
            ("privatefoo", Public, false, false),
            ("cachefoo", Public, false, false),
            ("cache-x", Public, true, false),
            ("private-x", Private, false, true),
            ("private-cache-x", Private, true, true),
            ("private-encrypted-x", EncryptedPrivate, false, true),
            ("private-encrypted-cache-x", EncryptedPrivate, true, true),
            ("presence-x", Presence, false, true),
            ("presence-cache-x", Presence, true, true),
            ("presencex", Public, false, false),
            ("#server-to-user-42", ServerToUser, false, false),
            ("x-private-y", Public, false, false),
        ];
        for (name, kind, cache, auth) in cases {
            let c = parse(name).unwrap();
            assert_eq!(c.kind(), kind, "{name}");
            assert_eq!(c.is_cache(), cache, "{name}");
            assert_eq!(c.requires_auth(), auth, "{name}");
            assert_eq!(c.is_presence(), kind == Presence, "{name}");
            assert_eq!(c.as_str(), name);
        }
        assert_eq!(
            parse("#server-to-user-a@b.c").unwrap().server_to_user_id(),
            Some("a@b.c")
        );
        assert_eq!(parse("private-x").unwrap().server_to_user_id(), None);
    }

    #[test]
    fn character_set() {
        assert!(parse("Az09_-=@,.;").is_ok());
        for bad in [
            "a b", "a/b", "é", "a:b", "a#b", "a\"", "a\0", "a*", "a\n", "a+b", "a%20",
        ] {
            assert_eq!(parse(bad), Err(ChannelError::InvalidChar), "{bad:?}");
        }
        assert_eq!(parse(""), Err(ChannelError::Empty));
    }

    #[test]
    fn hash_is_reserved_except_server_to_user() {
        for bad in [
            "#",
            "#foo",
            "#server-to-user-",
            "#server-to-user",
            "##server-to-user-1",
        ] {
            assert_eq!(parse(bad), Err(ChannelError::Reserved), "{bad:?}");
        }
        assert_eq!(parse("#server-to-user-a b"), Err(ChannelError::InvalidChar));
        assert_eq!(parse("#server-to-user-#"), Err(ChannelError::InvalidChar));
    }

    #[test]
    fn length_limit() {
        let max = Limits::default().max_channel_name_len;
        assert_eq!(max, 164);
        assert!(parse(&"a".repeat(max)).is_ok());
        assert_eq!(
            parse(&"a".repeat(max + 1)),
            Err(ChannelError::TooLong { len: max + 1, max })
        );
        let limits = Limits {
            max_channel_name_len: 200,
            ..Limits::default()
        };
        assert!(ChannelName::parse(&"a".repeat(200), &limits).is_ok());
        assert_eq!(ChannelError::InvalidChar.status(), 400);
    }

    #[test]
    fn borrows_as_str() {
        let mut set = std::collections::HashSet::new();
        set.insert(parse("private-x").unwrap());
        assert!(set.contains("private-x"));
        assert_eq!(parse("a").unwrap().to_string(), "a");
    }
}
