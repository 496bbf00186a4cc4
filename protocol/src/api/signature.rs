//! Authentication of HTTP API requests (Pusher `auth_version` 1.0).
//!
//! Every request to the HTTP API carries, in its query string, the app key, a timestamp, the
//! version `1.0`, the MD5 of its body when it has one, and an HMAC-SHA256 signature keyed with
//! the app secret over the method, the path and the other parameters. Anyone holding the secret
//! can publish to every channel of the app, so this check is what stands between the internet
//! and the app's users.
//!
//! What ringcast verifies, in order, each failure answering 401:
//! 1. `auth_key`, `auth_timestamp`, `auth_version` and `auth_signature` are present, and no
//!    authentication parameter appears twice (which copy was signed would be ambiguous);
//! 2. `auth_key` is the app's key and `auth_version` is `1.0`;
//! 3. `auth_timestamp` is within [`Limits::auth_timestamp_skew_secs`] of `now_unix`, which bounds
//!    how long a captured request can be replayed;
//! 4. `body_md5` is the MD5 of the body that actually arrived (recomputed, never trusted), and is
//!    present whenever the body is not empty. A `body_md5` of the empty body on a GET is fine:
//!    the Python SDK always sends one and signs it;
//! 5. `auth_signature` equals the HMAC of the string to sign, compared in constant time.
//!
//! The string to sign is built from the *decoded* query parameters (see [`super::query`]) and
//! the path the client addressed, after any configured prefix was stripped
//! ([`super::route::strip_prefix`]): pusher-http-php signs `/apps/{id}/...` but sends the request
//! to `prefix + path`.
//!
//! [`sign_query`] and [`signed_query`] produce the same signatures for clients: ringcast's tests,
//! benchmarks and load generator.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::{ApiError, clip};
use super::query::{Query, percent_decode, percent_encode};
use crate::Limits;

/// The only authentication version there is.
pub const AUTH_VERSION: &str = "1.0";

/// An app's key and secret.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The app key, public: it is in every browser's WebSocket URL.
    pub key: &'a str,
    /// The app secret, shared only with the app's server.
    pub secret: &'a str,
}

impl std::fmt::Debug for Credentials<'_> {
    /// The secret is never printed, so that a logged `Credentials` cannot leak it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Verify the authentication of an HTTP API request.
///
/// `signed_path` is the request path as sent, after the configured prefix was stripped;
/// `query` is the decoded query string; `body` the complete request body.
pub fn verify(
    method: &str,
    signed_path: &str,
    query: &Query,
    body: &[u8],
    creds: Credentials<'_>,
    now_unix: u64,
    limits: &Limits,
) -> Result<(), ApiError> {
    // "The following query parameters must be included with all requests, and are used to
    // authenticate the request: auth_key, auth_timestamp, auth_version" (Pusher HTTP API
    // reference), and the signature itself.
    let key = required(query, "auth_key")?;
    let timestamp = required(query, "auth_timestamp")?;
    let version = required(query, "auth_version")?;
    let signature = required(query, "auth_signature")?;
    let body_md5 = optional(query, "body_md5")?;

    // "auth_key: Your application key".
    if key != creds.key {
        return Err(ApiError::WrongKey(clip(key)));
    }
    // "auth_version: Authentication version, currently 1.0".
    if version != AUTH_VERSION {
        return Err(ApiError::UnsupportedAuthVersion(clip(version)));
    }

    // "auth_timestamp: The number of seconds since January 1, 1970 00:00:00 GMT. The server will
    // only accept requests where the timestamp is within 600s of the current time".
    let ts = parse_timestamp(timestamp)?;
    let skew = limits.auth_timestamp_skew_secs;
    if ts.abs_diff(now_unix) > skew {
        return Err(ApiError::TimestampExpired {
            timestamp: ts,
            now: now_unix,
            skew,
        });
    }

    // "The following query parameters must be included for all requests with a non-empty body:
    // body_md5, The hexadecimal MD5 hash of the body".
    let actual_md5 = md5_hex(body);
    match body_md5 {
        None if !body.is_empty() => return Err(ApiError::MissingBodyMd5),
        Some(sent) if sent != actual_md5 => {
            return Err(ApiError::BodyMd5Mismatch {
                sent: clip(sent),
                actual: actual_md5,
            });
        }
        _ => {}
    }

    // "The signature is a HMAC SHA256 hex digest." A value that is not 64 hex digits cannot
    // match, but it still gets the same answer as a wrong digest.
    let mut provided = [0u8; 32];
    let well_formed = hex::decode_to_slice(signature, &mut provided).is_ok();

    let to_sign = string_to_sign(method, signed_path, query.iter());
    if well_formed && mac_matches(creds.secret, &to_sign, &provided) {
        return Ok(());
    }
    // A client that builds a path with an escaped segment may sign either form of it: the path
    // it sends, or the path before escaping (a channel named `#server-to-user-7` can only travel
    // as `%23server-to-user-7`, since a raw `#` starts the URL's fragment). Both forms name the
    // same resource, so either signature proves knowledge of the secret.
    if well_formed && signed_path.contains('%') {
        if let Some(decoded) = percent_decode(signed_path, false) {
            let alt = string_to_sign(method, &decoded, query.iter());
            if mac_matches(creds.secret, &alt, &provided) {
                return Ok(());
            }
        }
    }
    Err(ApiError::InvalidSignature {
        string_to_sign: to_sign,
    })
}

/// The string an API request signs: `METHOD\nPATH\nQUERY`, where QUERY is every parameter except
/// `auth_signature`, with values unescaped.
///
/// "The query parameters sorted by key, with keys converted to lowercase, then joined as in the
/// query string. Note that the string must not be URL-escaped (e.g., given the keys auth_key:
/// foo, Name: Something else, you get auth_key=foo&name=Something else)". Parameters with equal
/// keys keep the order they were sent in.
pub fn string_to_sign<'a>(
    method: &str,
    path: &str,
    params: impl Iterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut pairs: Vec<(String, &str)> = params
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .filter(|(k, _)| k != "auth_signature")
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(
        method.len()
            + path.len()
            + 2
            + pairs
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>(),
    );
    out.push_str(method);
    out.push('\n');
    out.push_str(path);
    out.push('\n');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Lower-case hex MD5 of `body`, as `body_md5` carries it.
pub fn md5_hex(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// Sign `params` for a request to `method path` and return the complete query string: the
/// parameters sorted by key and percent-encoded, followed by `auth_signature`.
///
/// `params` must already contain `auth_key`, `auth_timestamp`, `auth_version` and, for a
/// request with a body, `body_md5` (see [`signed_query`], which adds them); an `auth_signature`
/// among them is ignored. Values are signed raw and sent encoded, which is what PHP clients do
/// and what [`verify`] must accept.
pub fn sign_query(method: &str, path: &str, params: &[(&str, &str)], secret: &str) -> String {
    let signature = hex::encode(mac(
        secret,
        &string_to_sign(method, path, params.iter().copied()),
    ));
    let mut sorted: Vec<&(&str, &str)> = params
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("auth_signature"))
        .collect();
    sorted.sort_by_key(|(k, _)| k.to_ascii_lowercase());
    let mut out = String::new();
    for (k, v) in sorted {
        out.push_str(&percent_encode(k));
        out.push('=');
        out.push_str(&percent_encode(v));
        out.push('&');
    }
    out.push_str("auth_signature=");
    out.push_str(&signature);
    out
}

/// The complete signed query string for a request with `body`, sent at `timestamp` (Unix
/// seconds): `auth_key`, `auth_timestamp`, `auth_version=1.0`, `body_md5` when the body is not
/// empty, the `extra` parameters, and `auth_signature`.
pub fn signed_query(
    method: &str,
    path: &str,
    body: &[u8],
    creds: Credentials<'_>,
    timestamp: u64,
    extra: &[(&str, &str)],
) -> String {
    let timestamp = timestamp.to_string();
    let md5 = md5_hex(body);
    let mut params = vec![
        ("auth_key", creds.key),
        ("auth_timestamp", timestamp.as_str()),
        ("auth_version", AUTH_VERSION),
    ];
    if !body.is_empty() {
        params.push(("body_md5", md5.as_str()));
    }
    params.extend_from_slice(extra);
    sign_query(method, path, &params, creds.secret)
}

/// The value of an authentication parameter that must be present exactly once.
fn required<'q>(query: &'q Query, name: &'static str) -> Result<&'q str, ApiError> {
    optional(query, name)?.ok_or(ApiError::MissingAuthParam(name))
}

/// The value of an authentication parameter that may be absent but not repeated. Keys are
/// compared without case because the string to sign lower-cases them: `AUTH_KEY` is signed as
/// `auth_key`, and a request carrying both would sign two values for one name.
fn optional<'q>(query: &'q Query, name: &'static str) -> Result<Option<&'q str>, ApiError> {
    let mut found = query.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name));
    let first = found.next();
    if found.next().is_some() {
        return Err(ApiError::DuplicateAuthParam(name));
    }
    Ok(first.map(|(_, v)| v))
}

/// `auth_timestamp` as whole seconds: ASCII digits only (no sign, no fraction), fitting a u64.
fn parse_timestamp(s: &str) -> Result<u64, ApiError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::InvalidTimestamp(clip(s)));
    }
    s.parse().map_err(|_| ApiError::InvalidTimestamp(clip(s)))
}

fn mac(secret: &str, string_to_sign: &str) -> [u8; 32] {
    // HMAC is defined for keys of every length (RFC 2104 section 2: longer keys are hashed,
    // shorter ones padded), so this constructor cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    m.update(string_to_sign.as_bytes());
    m.finalize().into_bytes().into()
}

/// Whether `provided` is the MAC of `string_to_sign`, in time independent of where they differ.
fn mac_matches(secret: &str, string_to_sign: &str, provided: &[u8; 32]) -> bool {
    mac(secret, string_to_sign).ct_eq(provided).into()
}

#[cfg(test)]
mod tests;
