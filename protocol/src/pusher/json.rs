//! JSON text: string escaping, and compact re-serialization of parsed values.
//!
//! Every server event is written by hand rather than through a serializer, because its shape
//! is fixed and its `data` field is a JSON document escaped a second time into a JSON string.
//! Escaping is the one step that touches every byte of every event (a broadcast's data is
//! escaped once per publish, then fanned out), so it has a table-driven fast path that copies
//! clean runs in bulk, and a character-by-character reference that is obviously right; a test
//! checks that they agree.
//!
//! RFC 8259 section 7: "All Unicode characters may be placed within the quotation marks,
//! except for the characters that MUST be escaped: quotation mark, reverse solidus, and the
//! control characters (U+0000 through U+001F)." ringcast also escapes U+2028 and U+2029: JSON
//! allows them raw, but JavaScript before ES2019 ends a string literal at them, and a JSON
//! document is sometimes evaluated as JavaScript. Every JSON parser reads the escape back.
//!
//! The second half re-serializes a value from a simd-json tape (document order, no
//! whitespace), used where ringcast must pass on a piece of a client's JSON (a client event's
//! `data`, a presence member's `user_info`) after the input buffer was parsed in place.

use std::io::Write as _;

use simd_json::prelude::ValueAsScalar as _;
use simd_json::{Node, StaticNode};

/// What to do with each byte: 0 copy it, `b'u'` write `\u00XX`, `LS` check for U+2028/U+2029,
/// anything else write a backslash followed by that byte.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[0xe2] = LS;
    t
};

/// Marker in [`ESCAPE`] for 0xE2, the first byte of U+2028 (E2 80 A8) and U+2029 (E2 80 A9).
const LS: u8 = 1;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` escaped as the body of a JSON string (without the surrounding quotes).
pub fn escape_into(out: &mut Vec<u8>, s: &str) {
    escape_bytes(out, s.as_bytes());
}

/// Appends `s` as a quoted JSON string.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_bytes(out, s.as_bytes());
    out.push(b'"');
}

/// The fast path of [`escape_into`], over bytes that the caller knows are UTF-8 (they come
/// from a `&str`, or from JSON this module wrote from `&str`s).
pub(crate) fn escape_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    let mut start = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let action = ESCAPE[b as usize];
        if action == 0 {
            i += 1;
            continue;
        }
        if action == LS {
            let last = match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(0x80), Some(&last @ (0xa8 | 0xa9))) => last,
                _ => {
                    i += 1;
                    continue;
                }
            };
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(if last == 0xa8 { b"\\u2028" } else { b"\\u2029" });
            i += 3;
            start = i;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if action == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.push(b'\\');
            out.push(action);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// The reference for [`escape_into`]: one character at a time, every rule spelled out.
pub fn escape_into_reference(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{00}'..='\u{1f}' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Number of tape nodes taken by the value that starts at `nodes[0]` (0 if `nodes` is empty).
pub(crate) fn span(nodes: &[Node<'_>]) -> usize {
    match nodes.first() {
        None => 0,
        Some(Node::Object { count, .. } | Node::Array { count, .. }) => count + 1,
        Some(_) => 1,
    }
}

/// The value of `key` in the object whose header is `obj[0]`; `None` if `obj` is not an
/// object or has no such key. With a repeated key the last one wins, as in JavaScript's
/// `JSON.parse` and PHP's `json_decode`, so ringcast reads a message the way the
/// applications on either side of it do.
pub(crate) fn object_get<'t, 'i>(obj: &'t [Node<'i>], key: &str) -> Option<&'t [Node<'i>]> {
    let Some(&Node::Object { len, .. }) = obj.first() else {
        return None;
    };
    let mut found = None;
    let mut idx = 1;
    for _ in 0..len {
        let Some(Node::String(k)) = obj.get(idx) else {
            return found;
        };
        let rest = obj.get(idx + 1..)?;
        let value = rest.get(..span(rest))?;
        if *k == key {
            found = Some(value);
        }
        idx += 1 + value.len();
    }
    found
}

/// Appends the value that starts at `nodes[0]` as compact JSON, keys in document order.
///
/// Numbers keep their parsed value: integers exactly, floats in the shortest form that reads
/// back as the same `f64` (possibly with an exponent). Iterative, so nesting depth costs heap,
/// not stack.
pub(crate) fn write_value(out: &mut Vec<u8>, nodes: &[Node<'_>]) {
    /// An open container: elements still to write, whether one was written, closing byte.
    struct Open {
        remaining: usize,
        started: bool,
        close: u8,
        object: bool,
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0;
    loop {
        match nodes.get(i) {
            None => return,
            Some(Node::String(s)) => push_str(out, s),
            Some(Node::Static(n)) => write_static(out, n),
            Some(&Node::Object { len, .. }) => {
                out.push(b'{');
                stack.push(Open {
                    remaining: len,
                    started: false,
                    close: b'}',
                    object: true,
                });
            }
            Some(&Node::Array { len, .. }) => {
                out.push(b'[');
                stack.push(Open {
                    remaining: len,
                    started: false,
                    close: b']',
                    object: false,
                });
            }
        }
        i += 1;
        // Close finished containers, then position `i` on the next value to write.
        loop {
            let Some(top) = stack.last_mut() else {
                return;
            };
            if top.remaining == 0 {
                out.push(top.close);
                stack.pop();
                continue;
            }
            top.remaining -= 1;
            if top.started {
                out.push(b',');
            }
            top.started = true;
            if top.object {
                let Some(Node::String(key)) = nodes.get(i) else {
                    return;
                };
                push_str(out, key);
                out.push(b':');
                i += 1;
            }
            break;
        }
    }
}

/// The compact JSON text of the value that starts at `nodes[0]`.
pub(crate) fn value_to_string(nodes: &[Node<'_>]) -> String {
    let mut out = Vec::new();
    write_value(&mut out, nodes);
    // Everything written came from `&str`s and ASCII, so this never replaces anything.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Parses `text` (a JSON document carried inside a JSON string, such as presence
/// `channel_data`) from a private copy, since simd-json parses in place, and hands its tape to
/// `f`. `None` if `text` is not valid JSON.
pub(crate) fn with_parsed<T>(text: &str, f: impl FnOnce(&[Node<'_>]) -> T) -> Option<T> {
    let mut buf = text.as_bytes().to_vec();
    let tape = simd_json::to_tape(&mut buf).ok()?;
    Some(f(&tape.0))
}

fn write_static(out: &mut Vec<u8>, n: &StaticNode) {
    if let Some(f) = n.as_f64() {
        // `{:?}` is the shortest representation that round-trips, with an exponent for very
        // large and very small magnitudes, and always valid JSON for finite values.
        if f.is_finite() {
            let _ = write!(out, "{f:?}");
        } else {
            out.extend_from_slice(b"null");
        }
    } else {
        // null, true, false and integers print as JSON.
        let _ = write!(out, "{n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        escape_into(&mut out, s);
        out
    }

    fn reference(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        escape_into_reference(&mut out, s);
        out
    }

    /// Characters around every rule: controls, the two that need a backslash, DEL, bytes that
    /// share a prefix with U+2028, and multi-byte characters of every length.
    const ALPHABET: &[char] = &[
        'a',
        'Z',
        '0',
        ' ',
        '"',
        '\\',
        '/',
        '\u{0}',
        '\u{1}',
        '\u{7}',
        '\u{8}',
        '\t',
        '\n',
        '\u{b}',
        '\u{c}',
        '\r',
        '\u{1f}',
        '\u{7f}',
        '\u{80}',
        'é',
        '\u{2027}',
        '\u{2028}',
        '\u{2029}',
        '\u{202a}',
        '\u{2000}',
        '€',
        '\u{e200}',
        '\u{ffff}',
        '😀',
        '\u{10ffff}',
    ];

    #[test]
    fn fast_path_agrees_with_reference() {
        let mut cases: Vec<String> = vec![String::new()];
        cases.extend((0u32..0x3000).filter_map(char::from_u32).map(String::from));
        cases.extend(
            ALPHABET
                .iter()
                .flat_map(|a| ALPHABET.iter().map(move |b| format!("{a}{b}"))),
        );
        // Deterministic pseudo-random strings over the alphabet, plus clean runs.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut s = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x % 5 == 0 {
                    s.push_str("clean run of text ");
                } else {
                    s.push(ALPHABET[(x >> 8) as usize % ALPHABET.len()]);
                }
            }
            cases.push(s);
        }
        for s in &cases {
            let out = fast(s);
            assert_eq!(out, reference(s), "{s:?}");
            let quoted = format!("\"{}\"", std::str::from_utf8(&out).unwrap());
            let back: String = serde_json::from_str(&quoted).unwrap();
            assert_eq!(&back, s);
            assert!(
                out.iter().all(|&b| b >= 0x20),
                "no raw control bytes in {s:?}"
            );
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(fast("a\"b\\c"), b"a\\\"b\\\\c");
        assert_eq!(
            fast("\u{0}\u{1f}\u{8}\u{c}\n\r\t"),
            b"\\u0000\\u001f\\b\\f\\n\\r\\t"
        );
        assert_eq!(fast("x\u{2028}y\u{2029}"), b"x\\u2028y\\u2029");
        assert_eq!(fast("\u{2027}\u{202a}é/"), "\u{2027}\u{202a}é/".as_bytes());
        let mut out = Vec::new();
        push_str(&mut out, "hi \"you\"");
        assert_eq!(out, b"\"hi \\\"you\\\"\"");
    }

    fn reserialize(json: &str) -> String {
        let mut buf = json.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut buf).unwrap();
        value_to_string(&tape.0)
    }

    #[test]
    fn compact_reserialization_keeps_order_and_values() {
        let cases = [
            ("{}", "{}"),
            ("[]", "[]"),
            ("null", "null"),
            (
                " { \"b\" : 1 , \"a\" : [ true , false , null ] } ",
                r#"{"b":1,"a":[true,false,null]}"#,
            ),
            (
                r#"{"z":{"y":{"x":[[],{},[{}]]}},"w":"v"}"#,
                r#"{"z":{"y":{"x":[[],{},[{}]]}},"w":"v"}"#,
            ),
            (r#""a\"b\u0041\u2028""#, r#""a\"bA\u2028""#),
            (
                "[-1,18446744073709551615,-9223372036854775808,0]",
                "[-1,18446744073709551615,-9223372036854775808,0]",
            ),
            (
                "[1.5,-0.0,1e300,1E-7,0.1,2.0]",
                "[1.5,-0.0,1e300,1e-7,0.1,2.0]",
            ),
            (r#"{"a":1,"a":2}"#, r#"{"a":1,"a":2}"#),
            (r#""é😀""#, r#""é😀""#),
        ];
        for (input, want) in cases {
            assert_eq!(reserialize(input), want, "{input}");
            let a: serde_json::Value = serde_json::from_str(input).unwrap();
            let b: serde_json::Value = serde_json::from_str(want).unwrap();
            assert_eq!(a, b, "{input} keeps its meaning");
        }
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let json = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(reserialize(&json), json);
        let json = format!("{}1{}", "{\"a\":".repeat(1000), "}".repeat(1000));
        assert_eq!(reserialize(&json), json);
    }

    #[test]
    fn object_lookup() {
        let mut buf = br#"{"a":{"x":[1,2]},"b":"s","a2":3,"b":"t"}"#.to_vec();
        let tape = simd_json::to_tape(&mut buf).unwrap();
        let nodes = &tape.0[..];
        assert_eq!(
            value_to_string(object_get(nodes, "a").unwrap()),
            r#"{"x":[1,2]}"#
        );
        assert_eq!(value_to_string(object_get(nodes, "b").unwrap()), r#""t""#);
        assert_eq!(value_to_string(object_get(nodes, "a2").unwrap()), "3");
        assert!(object_get(nodes, "c").is_none());
        let inner = object_get(nodes, "a").unwrap();
        assert_eq!(value_to_string(object_get(inner, "x").unwrap()), "[1,2]");
        assert!(object_get(object_get(inner, "x").unwrap(), "x").is_none());
        assert_eq!(span(&[]), 0);
    }
}
