//! Incremental UTF-8 validation of text messages.
//!
//! RFC 6455 section 8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that
//! the byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
//! Connection_." A text message may arrive in many frames, and one frame in many reads, with a
//! character split anywhere. [`Utf8Validator`] carries the state of an unfinished character from
//! one call to the next, so each byte is checked once as it arrives.
//!
//! It fails fast: an error is reported as soon as the bytes seen so far cannot be the start of
//! valid UTF-8, not when the message ends (Autobahn's section 6 checks this). Because the ranges
//! of the Unicode Standard's table 3-7 ("Well-Formed UTF-8 Byte Sequences") are checked byte by
//! byte, including the narrowed second byte after `E0`, `ED`, `F0` and `F4`, overlong forms,
//! surrogates and code points above U+10FFFF are refused at the first byte that rules them out.
//!
//! [`Utf8Validator::feed`] first checks whether the bytes are all ASCII (Pusher messages are
//! JSON, mostly ASCII; that check is a few vector instructions per 64 bytes), else hands them to
//! `std::str::from_utf8` (which, through `Utf8Error::error_len`, tells an invalid byte from a
//! truncated character) and only walks the table for the up to three bytes of a character split
//! between calls.
//! [`Utf8Validator::feed_reference`] walks the table for every byte; tests check that both agree
//! with each other and with `std::str::from_utf8` over many ways of splitting the input.

/// The bytes seen so far are not a prefix of any valid UTF-8 text.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("invalid UTF-8")]
pub struct InvalidUtf8;

/// Whether `bytes` are all ASCII: the OR of all their 64-bit words (and the last few bytes) has
/// no byte with the high bit set. No early exit, so the loop is only loads and ORs, which the
/// compiler unrolls into vector instructions; text that is not ASCII pays one such pass more
/// before `std::str::from_utf8` looks at it.
fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let words = bytes.chunks_exact(8);
    let tail = words.remainder().iter().fold(0, |acc, &b| acc | b);
    let any = words.fold(0, |acc, word| {
        // Never the fallback: `chunks_exact(8)` yields 8 bytes.
        acc | u64::from_ne_bytes(word.try_into().unwrap_or([0x80; 8]))
    });
    any & HIGH_BITS == 0 && tail < 0x80
}

/// Validation state between chunks: how many continuation bytes the current character still
/// needs and the range the next one must fall in. Three bytes, `Copy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    need: u8,
    lo: u8,
    hi: u8,
}

impl Utf8Validator {
    /// A validator at the start of a text.
    pub const fn new() -> Self {
        Self {
            need: 0,
            lo: 0,
            hi: 0,
        }
    }

    /// Checks the next `bytes` of the text.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), InvalidUtf8> {
        let mut rest = bytes;
        // Finish a character begun in an earlier chunk.
        while self.need > 0 {
            let Some((&b, tail)) = rest.split_first() else {
                return Ok(());
            };
            self.step(b)?;
            rest = tail;
        }
        if is_ascii(rest) {
            return Ok(());
        }
        match std::str::from_utf8(rest) {
            Ok(_) => Ok(()),
            // `error_len() == None`: "the end of the input was reached unexpectedly", that is
            // the tail is a character cut short, which the next chunk may complete.
            Err(e) if e.error_len().is_none() => self.feed_reference(&rest[e.valid_up_to()..]),
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Checks the next `bytes` one at a time against table 3-7: the reference for [`feed`].
    ///
    /// [`feed`]: Utf8Validator::feed
    pub fn feed_reference(&mut self, bytes: &[u8]) -> Result<(), InvalidUtf8> {
        bytes.iter().try_for_each(|&b| self.step(b))
    }

    /// Ends the text: it is valid only if no character is left unfinished. The validator is
    /// then ready for the next text.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.need == 0;
        *self = Self::new();
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }

    /// Whether the text so far ends on a character boundary.
    pub fn is_boundary(&self) -> bool {
        self.need == 0
    }

    fn step(&mut self, b: u8) -> Result<(), InvalidUtf8> {
        if self.need > 0 {
            if !(self.lo..=self.hi).contains(&b) {
                return Err(InvalidUtf8);
            }
            self.need -= 1;
            self.lo = 0x80;
            self.hi = 0xBF;
            return Ok(());
        }
        // Table 3-7: the first byte decides the length and the range of the second byte.
        let (need, lo, hi) = match b {
            0x00..=0x7F => return Ok(()),
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            // 80..=BF: a continuation byte with nothing to continue; C0, C1: always overlong;
            // F5..=FF: beyond U+10FFFF.
            _ => return Err(InvalidUtf8),
        };
        *self = Self { need, lo, hi };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index of the first byte at which `bytes[..=i]` is no longer a prefix of valid UTF-8,
    /// according to the standard library.
    fn std_fail_point(bytes: &[u8]) -> Option<usize> {
        (0..bytes.len())
            .find(|&i| std::str::from_utf8(&bytes[..=i]).is_err_and(|e| e.error_len().is_some()))
    }

    /// Feeds `bytes` in pieces ending at `cuts`; returns the index of the piece that failed,
    /// or `pieces` if only `finish` failed, or `None` if all is valid.
    fn run(bytes: &[u8], cuts: &[usize], reference: bool) -> Option<usize> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for (k, &end) in cuts.iter().chain([bytes.len()].iter()).enumerate() {
            let piece = &bytes[start..end];
            let r = if reference {
                v.feed_reference(piece)
            } else {
                v.feed(piece)
            };
            if r.is_err() {
                return Some(k);
            }
            start = end;
        }
        v.finish().err().map(|_| cuts.len() + 1)
    }

    /// The piece in which a fail-fast validator must fail, from the standard library's view.
    fn expected(bytes: &[u8], cuts: &[usize]) -> Option<usize> {
        match std_fail_point(bytes) {
            Some(i) => Some(cuts.iter().filter(|&&c| c <= i).count()),
            None if std::str::from_utf8(bytes).is_ok() => None,
            None => Some(cuts.len() + 1),
        }
    }

    fn samples() -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = [
            "",
            "Hello-µ@ßöäüàá-UTF-8!!",
            "κόσμε",
            "\u{0}\u{7f}\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}",
            "\u{d7ff}\u{e000}\u{fffd}\u{fffe}\u{ffff}\u{1fffe}",
            "{\"event\":\"client-typing\",\"data\":{\"who\":\"張三 🙂\"}}",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let invalid: [&[u8]; 22] = [
            b"\x80",
            b"\xbf",
            b"a\x80b",
            b"\xc0\xaf",
            b"\xc1\xbf",
            b"\xc2",
            b"\xc2a",
            b"\xe0\x80\xaf",
            b"\xe0\x9f\xbf",
            b"\xed\xa0\x80",
            b"\xed\xbf\xbf",
            b"\xef\xbf",
            b"\xf0\x80\x80\xaf",
            b"\xf0\x8f\xbf\xbf",
            b"\xf4\x90\x80\x80",
            b"\xf4\x8f\xbf",
            b"\xf5\x80\x80\x80",
            b"\xf8\x88\x80\x80\x80",
            b"\xfe",
            b"\xff\xfe",
            // Autobahn 6.4.1: PART1 valid, PART2 is U+110000, PART3 valid.
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited",
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        ];
        out.extend(invalid.iter().map(|b| b.to_vec()));
        // Longer than the ASCII fast path's blocks: an ASCII run with a character, a truncated
        // character or an invalid byte before, across and after a block boundary.
        for at in [0, 5, 30, 31, 32, 33, 63, 64, 70] {
            for odd in [
                &b"\xc3\xa9"[..],
                b"\xe2\x82\xac",
                b"\xe2\x82",
                b"\xff",
                b"\x80",
            ] {
                let mut bytes = vec![b'a'; 80];
                bytes.splice(at..at, odd.iter().copied());
                out.push(bytes);
            }
        }
        // Pseudo-random bytes biased towards the interesting lead and continuation bytes.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for len in 1..60 {
            let bytes = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let pool = [
                        0x41, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc2, 0xe0, 0xed, 0xf0,
                    ];
                    let more = [
                        0xf4, 0xf5, 0xdf, 0xef, 0xc0, 0xff, 0x7f, 0x00, 0xe1, 0xf1, 0xbd,
                    ];
                    match seed % 3 {
                        0 => pool[(seed >> 8) as usize % pool.len()],
                        1 => more[(seed >> 8) as usize % more.len()],
                        _ => (seed >> 16) as u8,
                    }
                })
                .collect();
            out.push(bytes);
        }
        out
    }

    #[test]
    fn fast_and_reference_agree_with_std_over_all_two_and_three_way_splits() {
        for bytes in samples() {
            let n = bytes.len();
            for a in 0..=n {
                for b in a..=n {
                    let cuts = [a, b];
                    let want = expected(&bytes, &cuts);
                    assert_eq!(run(&bytes, &cuts, false), want, "{bytes:x?} cut {cuts:?}");
                    assert_eq!(run(&bytes, &cuts, true), want, "{bytes:x?} cut {cuts:?}");
                }
            }
        }
    }

    #[test]
    fn byte_at_a_time_fails_at_the_first_impossible_byte() {
        for bytes in samples() {
            let cuts: Vec<usize> = (1..bytes.len()).collect();
            let want = expected(&bytes, &cuts);
            assert_eq!(run(&bytes, &cuts, false), want, "{bytes:x?}");
            assert_eq!(run(&bytes, &cuts, true), want, "{bytes:x?}");
        }
    }

    #[test]
    fn finish_resets_and_reports_a_truncated_character() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"ok\xe2\x82"), Ok(()));
        assert!(!v.is_boundary());
        assert_eq!(v.finish(), Err(InvalidUtf8));
        assert!(v.is_boundary());
        assert_eq!(v.feed(b"\xac"), Err(InvalidUtf8));
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xe2"), Ok(()));
        assert_eq!(v.feed(b""), Ok(()));
        assert_eq!(v.feed(b"\x82"), Ok(()));
        assert_eq!(v.feed(b"\xac!"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }
}
