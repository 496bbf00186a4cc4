//! The query string of an HTTP API request, decoded.
//!
//! The signature of an API request covers the *unescaped* parameter values ("Note that the
//! string must not be URL-escaped", Pusher HTTP API reference), while the request line carries
//! whatever escaping the client's HTTP library chose: the Node and Python SDKs send values raw
//! (`info=user_count,subscription_count`), PHP's `http_build_query` percent-encodes them
//! (`info=user_count%2Csubscription_count`) and writes spaces as `+`. Verifying therefore starts
//! by decoding the query into key/value pairs; comparing query strings textually would reject
//! correctly signed requests.
//!
//! Pairs keep their order and duplicates; the signature module decides what a duplicate means.

use super::error::{ApiError, clip};

/// Decoded query parameters in the order they were sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Decode a raw query string (without the `?`): pairs split on `&`, key and value on the
    /// first `=`, both percent-decoded with `+` as space. Empty pieces (`a=1&&b=2`) are
    /// skipped; a key without `=` has the empty value.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for piece in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            let key = percent_decode(k, true)
                .ok_or_else(|| ApiError::BadPercentEncoding(format!("query key `{}`", clip(k))))?;
            let value = percent_decode(v, true).ok_or_else(|| {
                ApiError::BadPercentEncoding(format!("query parameter `{}`", clip(&key)))
            })?;
            pairs.push((key, value));
        }
        Ok(Self(pairs))
    }

    /// The value of the first parameter named exactly `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// How many parameters are named exactly `key`.
    pub fn count(&self, key: &str) -> usize {
        self.0.iter().filter(|(k, _)| k == key).count()
    }

    /// Every parameter, in the order sent.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for Query {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// Percent-decode `s` (RFC 3986 2.1: "A percent-encoded octet is encoded as a character triplet,
/// consisting of the percent character "%" followed by the two hexadecimal digits"). With
/// `plus_as_space`, `+` decodes to a space as in HTML form encoding, which query strings use;
/// path segments keep `+` literally. `None` when a `%` is not followed by two hex digits or the
/// decoded bytes are not UTF-8.
pub fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    if !s.bytes().any(|b| b == b'%' || (plus_as_space && b == b'+')) {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = hex_digit(*bytes.get(i + 1)?)?;
                let lo = hex_digit(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encode every byte of `s` except RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`), so the result is safe as a query key or value and as a path segment.
pub fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_pairs_in_order_and_keeps_duplicates() {
        let q = Query::parse("b=2&a=1&&flag&b=3&e=").unwrap();
        let pairs: Vec<_> = q.iter().collect();
        assert_eq!(
            pairs,
            [("b", "2"), ("a", "1"), ("flag", ""), ("b", "3"), ("e", "")]
        );
        assert_eq!(q.get("b"), Some("2"));
        assert_eq!(q.count("b"), 2);
        assert_eq!(q.get("missing"), None);
        assert_eq!(q.len(), 5);
    }

    #[test]
    fn empty_query_has_no_pairs() {
        assert!(Query::parse("").unwrap().is_empty());
        assert!(Query::parse("&&").unwrap().is_empty());
    }

    #[test]
    fn value_splits_on_the_first_equals_sign() {
        let q = Query::parse("a=b=c").unwrap();
        assert_eq!(q.get("a"), Some("b=c"));
    }

    #[test]
    fn decodes_percent_escapes_and_plus() {
        let q = Query::parse("info=user_count%2Csubscription_count&p=a+b%20c&k%5B%5D=%E2%9C%93")
            .unwrap();
        assert_eq!(q.get("info"), Some("user_count,subscription_count"));
        assert_eq!(q.get("p"), Some("a b c"));
        assert_eq!(q.get("k[]"), Some("✓"));
        assert_eq!(Query::parse("x=%2b").unwrap().get("x"), Some("+"));
    }

    #[test]
    fn rejects_broken_escapes_and_invalid_utf8() {
        for raw in ["a=%", "a=%4", "a=%zz", "a=%C3%28", "%=1", "a=%%41"] {
            let e = Query::parse(raw).unwrap_err();
            assert!(matches!(e, ApiError::BadPercentEncoding(_)), "{raw}: {e:?}");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn path_decoding_keeps_plus() {
        assert_eq!(percent_decode("a+b%23c", false).as_deref(), Some("a+b#c"));
        assert_eq!(percent_decode("a+b", true).as_deref(), Some("a b"));
    }

    #[test]
    fn encode_then_decode_is_the_identity() {
        for s in [
            "",
            "plain",
            "a b+c",
            "user_count,subscription_count",
            "#x=y&z",
            "é✓\u{0}",
        ] {
            let enc = percent_encode(s);
            assert!(
                enc.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
            );
            assert_eq!(percent_decode(&enc, true).as_deref(), Some(s));
            assert_eq!(percent_decode(&enc, false).as_deref(), Some(s));
        }
        assert_eq!(percent_encode("a,b c"), "a%2Cb%20c");
    }

    #[test]
    fn never_panics_on_arbitrary_input() {
        let alphabet = ["%", "+", "=", "&", "a", "%4", "%41", "é", "\u{0}", "%ff"];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let raw = format!("{a}{b}{c}");
                    let _ = Query::parse(&raw);
                    let _ = percent_decode(&raw, false);
                }
            }
        }
    }
}
