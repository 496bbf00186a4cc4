//! The fuzz targets of `ringcast-protocol`, as plain functions of one input.
//!
//! Each target feeds one arbitrary byte string to the parsers that read bytes straight from the
//! network and checks what must hold for every input: nothing panics, nothing reads past what it
//! was given, and what a parser accepts survives being written back out and read again. The
//! functions live here, apart from any fuzzing engine, so that three drivers run exactly the
//! same checks:
//!
//! - the libFuzzer binaries in `fuzz_targets/`, built by `cargo fuzz` or by plain `cargo` with
//!   the coverage flags (`README.md` says how, on stable Rust);
//! - `protocol/tests/fuzz_corpus.rs`, which includes this file with `#[path]` and replays every
//!   committed seed in `corpus/<target>/` as part of the protocol crate's ordinary tests.
//!
//! Only `ringcast_protocol`, `bytes` and `std` are used, so that including this file in the
//! protocol crate's tests adds no dependency to the crate.
#![forbid(unsafe_code)]

#[path = "api_auth.rs"]
pub mod api_auth;
#[path = "frame_decoder.rs"]
pub mod frame_decoder;
#[path = "handshake.rs"]
pub mod handshake;
#[path = "pusher_message.rs"]
pub mod pusher_message;

/// One fuzz target: its name (the directory of its corpus and the name of its binary) and the
/// function that runs one input.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("frame_decoder", frame_decoder::run),
    ("handshake", handshake::run),
    ("pusher_message", pusher_message::run),
    ("api_auth", api_auth::run),
];

/// A small deterministic generator (SplitMix64) for the choices a target derives from its
/// input, such as where to split a byte stream. Seeded from input bytes, so a failing input
/// replays the same choices.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Cuts `data` into consecutive pieces whose lengths are chosen by `rng`: mostly short pieces
/// (1 to 8 bytes, which split headers and UTF-8 sequences), sometimes long ones, sometimes
/// empty ones (a read that returned nothing new). Concatenated, the pieces are `data`.
pub fn split<'d>(data: &'d [u8], rng: &mut SplitMix) -> Vec<&'d [u8]> {
    let mut pieces = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let len = match rng.below(8) {
            0 => 0,
            1 => 1 + rng.below(rest.len()),
            2 => rest.len(),
            _ => 1 + rng.below(8),
        }
        .min(rest.len());
        let (piece, tail) = rest.split_at(len);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}
