//! Subscription and sign-in signatures.
//!
//! The WebSocket server never decides who may join a private channel: the application does,
//! in its auth endpoint, and proves its decision with an HMAC-SHA256 over the socket id and the
//! channel, keyed with the app secret that only it and the server share. The server recomputes
//! the HMAC and compares. The string that is signed must be rebuilt from exactly the bytes the
//! client sent (presence `channel_data` and sign-in `user_data` are compared as received, never
//! re-serialized), and the comparison must take the same time however many leading characters
//! match, or a client could discover a valid signature a byte at a time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Why a signature was refused. Messages never contain the secret or the expected signature.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// `auth` is not `<app_key>:<signature>`.
    #[error("Invalid auth: expected <app_key>:<signature>")]
    Malformed,
    /// `auth` was signed for another application key.
    #[error("Invalid auth: signed for a different application key")]
    WrongKey,
    /// The signature does not match.
    #[error("Invalid signature: expected HMAC SHA256 hex digest of {expected_string_to_sign}")]
    InvalidSignature {
        /// What the signature should have been computed over, to help app developers.
        expected_string_to_sign: String,
    },
}

impl AuthError {
    /// The Pusher code of the `pusher:error` sent for this failure (4009, "Connection is
    /// unauthorized", as Reverb and Soketi answer failed authorizations).
    pub fn pusher_code(&self) -> u16 {
        match self {
            Self::Malformed | Self::WrongKey | Self::InvalidSignature { .. } => {
                super::error::PusherCode::Unauthorized.code()
            }
        }
    }

    /// The `status` of the `pusher:subscription_error` sent for this failure: always 401.
    pub fn status(&self) -> u16 {
        401
    }
}

/// Lower-case hex HMAC-SHA256 of `string_to_sign` keyed with `secret`.
pub fn sign_hex(secret: &str, string_to_sign: &str) -> String {
    hex::encode(mac(secret, string_to_sign).finalize().into_bytes())
}

/// The string signed for a channel subscription.
///
/// Pusher: private channels sign `"<socket_id>:<channel_name>"`; presence channels sign
/// `"<socket_id>:<channel_name>:<channel_data>"` with `channel_data` exactly as sent.
pub fn channel_string_to_sign(
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// The string signed for a user sign-in. Pusher: `"<socket_id>::user::<user_data>"`.
pub fn signin_string_to_sign(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// The `auth` value an auth endpoint returns for a channel subscription, `<key>:<hex>`.
pub fn channel_auth(
    app_key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    let sig = sign_hex(
        secret,
        &channel_string_to_sign(socket_id, channel, channel_data),
    );
    format!("{app_key}:{sig}")
}

/// The `auth` value a user-authentication endpoint returns for a sign-in, `<key>:<hex>`.
pub fn signin_auth(app_key: &str, secret: &str, socket_id: &str, user_data: &str) -> String {
    let sig = sign_hex(secret, &signin_string_to_sign(socket_id, user_data));
    format!("{app_key}:{sig}")
}

/// Checks a subscription's `auth` (`<app_key>:<hex signature>`) for `channel`, with
/// `channel_data` for presence channels.
pub fn verify_channel(
    app_key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: &str,
) -> Result<(), AuthError> {
    verify(
        app_key,
        secret,
        &channel_string_to_sign(socket_id, channel, channel_data),
        auth,
    )
}

/// Checks a `pusher:signin`'s `auth` over `user_data` exactly as received.
pub fn verify_signin(
    app_key: &str,
    secret: &str,
    socket_id: &str,
    user_data: &str,
    auth: &str,
) -> Result<(), AuthError> {
    verify(
        app_key,
        secret,
        &signin_string_to_sign(socket_id, user_data),
        auth,
    )
}

fn verify(app_key: &str, secret: &str, string_to_sign: &str, auth: &str) -> Result<(), AuthError> {
    // Pusher docs: the auth string is `<key>:<signature>`. The key is public; only the
    // signature part is compared in constant time.
    let (key, signature) = auth.split_once(':').ok_or(AuthError::Malformed)?;
    if key != app_key {
        return Err(AuthError::WrongKey);
    }
    let expected = mac(secret, string_to_sign).finalize().into_bytes();
    // Hex is decoded (either case) rather than compared as text, so the comparison is over the
    // 32 bytes of the digest. A signature of the wrong length or with a non-hex character is
    // simply wrong; its length is not secret.
    let mut received = [0u8; 32];
    let decoded = hex::decode_to_slice(signature, &mut received).is_ok();
    if decoded && bool::from(received.as_slice().ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(AuthError::InvalidSignature {
            expected_string_to_sign: string_to_sign.to_owned(),
        })
    }
}

fn mac(secret: &str, message: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this constructor cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(message.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";
    const SOCKET: &str = "1234.1234";

    /// Pusher docs, private channel example.
    const PRIVATE_SIG: &str = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
    /// Pusher docs, user sign-in example.
    const SIGNIN_SIG: &str = "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba";
    /// The presence example recomputed with HMAC-SHA256; the value printed in the Pusher docs
    /// for this example (`afaed369…`) does not reproduce.
    const PRESENCE_SIG: &str = "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80";
    const PRESENCE_DATA: &str = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;

    #[test]
    fn private_channel_vector() {
        assert_eq!(sign_hex(SECRET, "1234.1234:private-foobar"), PRIVATE_SIG);
        let auth = format!("{KEY}:{PRIVATE_SIG}");
        assert_eq!(
            channel_auth(KEY, SECRET, SOCKET, "private-foobar", None),
            auth
        );
        assert_eq!(
            verify_channel(KEY, SECRET, SOCKET, "private-foobar", None, &auth),
            Ok(())
        );
        let upper = format!("{KEY}:{}", PRIVATE_SIG.to_uppercase());
        assert_eq!(
            verify_channel(KEY, SECRET, SOCKET, "private-foobar", None, &upper),
            Ok(())
        );
    }

    #[test]
    fn presence_channel_vector() {
        let s = format!("1234.1234:presence-foobar:{PRESENCE_DATA}");
        assert_eq!(sign_hex(SECRET, &s), PRESENCE_SIG);
        let auth = format!("{KEY}:{PRESENCE_SIG}");
        let ok = verify_channel(
            KEY,
            SECRET,
            SOCKET,
            "presence-foobar",
            Some(PRESENCE_DATA),
            &auth,
        );
        assert_eq!(ok, Ok(()));
        // The exact string is signed: the same data re-serialized differently fails.
        let spaced = r#"{"user_id": 10, "user_info": {"name": "Mr. Channels"}}"#;
        let err = verify_channel(KEY, SECRET, SOCKET, "presence-foobar", Some(spaced), &auth);
        assert!(matches!(err, Err(AuthError::InvalidSignature { .. })));
        // The docs' printed value does not verify.
        let docs =
            format!("{KEY}:afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c");
        let err = verify_channel(
            KEY,
            SECRET,
            SOCKET,
            "presence-foobar",
            Some(PRESENCE_DATA),
            &docs,
        );
        assert!(err.is_err());
    }

    #[test]
    fn signin_vector() {
        let user_data = r#"{"id":"12345"}"#;
        assert_eq!(
            sign_hex(SECRET, r#"1234.1234::user::{"id":"12345"}"#),
            SIGNIN_SIG
        );
        let auth = format!("{KEY}:{SIGNIN_SIG}");
        assert_eq!(signin_auth(KEY, SECRET, SOCKET, user_data), auth);
        assert_eq!(verify_signin(KEY, SECRET, SOCKET, user_data, &auth), Ok(()));
        assert!(verify_signin(KEY, SECRET, "1234.1235", user_data, &auth).is_err());
    }

    #[test]
    fn failures() {
        let good = format!("{KEY}:{PRIVATE_SIG}");
        let check = |auth: &str| verify_channel(KEY, SECRET, SOCKET, "private-foobar", None, auth);
        assert_eq!(check(""), Err(AuthError::Malformed));
        assert_eq!(check(PRIVATE_SIG), Err(AuthError::Malformed));
        assert_eq!(
            check(&format!("other:{PRIVATE_SIG}")),
            Err(AuthError::WrongKey)
        );
        assert_eq!(check(&format!(":{PRIVATE_SIG}")), Err(AuthError::WrongKey));
        let expected = AuthError::InvalidSignature {
            expected_string_to_sign: "1234.1234:private-foobar".into(),
        };
        for bad in [
            format!("{KEY}:"),
            format!("{KEY}:{}", &PRIVATE_SIG[..63]),
            format!("{KEY}:{}0", PRIVATE_SIG),
            format!("{KEY}:{}00", PRIVATE_SIG),
            format!("{KEY}:{}", PRIVATE_SIG.replace('5', "6")),
            format!("{KEY}:{}", "zz".repeat(32)),
            format!("{KEY}:{PRIVATE_SIG}:extra"),
        ] {
            assert_eq!(check(&bad), Err(expected.clone()), "{bad}");
        }
        assert_eq!(check(&good), Ok(()));
        assert!(verify_channel(KEY, "other", SOCKET, "private-foobar", None, &good).is_err());
        assert!(verify_channel(KEY, SECRET, SOCKET, "private-foobaz", None, &good).is_err());
        assert_eq!(
            verify_channel(KEY, SECRET, SOCKET, "private-foobar", Some(""), &good),
            Err(AuthError::InvalidSignature {
                expected_string_to_sign: "1234.1234:private-foobar:".into()
            })
        );
    }

    #[test]
    fn errors_never_reveal_the_signature_or_secret() {
        let auth = format!("{KEY}:{}", "00".repeat(32));
        let err = verify_channel(KEY, SECRET, SOCKET, "private-foobar", None, &auth).unwrap_err();
        let text = err.to_string();
        assert!(
            !text.contains(PRIVATE_SIG) && !text.contains(SECRET),
            "{text}"
        );
        assert!(text.contains("1234.1234:private-foobar"));
        assert_eq!(err.pusher_code(), 4009);
        assert_eq!(err.status(), 401);
    }
}
