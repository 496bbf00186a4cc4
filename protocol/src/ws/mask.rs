//! Payload masking (RFC 6455 section 5.3).
//!
//! Every client frame is masked: "octet i of the transformed data ("transformed-octet-i") is
//! the XOR of octet i of the original data ("original-octet-i") with octet at index i modulo 4
//! of the masking key ("masking-key-octet-j")". Unmasking is the same operation.
//!
//! Every byte a client sends passes through here, so [`apply_mask`] works eight bytes at a time
//! (still in safe code: the compiler turns the fixed-size array conversions into plain loads
//! and stores). [`apply_mask_reference`] is the sentence above written as a loop; a test checks
//! that the two agree for every length and alignment that matters.

/// XORs `buf` in place with the repeating four-byte `key`, starting at key index 0.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // `chunks_exact_mut(8)` yields only 8-byte chunks, so the conversion always succeeds.
        if let Ok(bytes) = <&mut [u8; 8]>::try_from(chunk) {
            *bytes = (u64::from_ne_bytes(*bytes) ^ word).to_ne_bytes();
        }
    }
    // The tail starts at a multiple of 8, hence at key index 0.
    apply_mask_reference(chunks.into_remainder(), key);
}

/// XORs `buf` in place with the repeating four-byte `key`, one byte at a time: the RFC's
/// definition, kept as the reference for [`apply_mask`].
pub fn apply_mask_reference(buf: &mut [u8], key: [u8; 4]) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

/// The key to use for a slice that starts `offset` bytes into a masked payload.
pub fn key_at(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut k = key;
    k.rotate_left(offset % 4);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example() {
        // RFC 6455 section 5.7: a masked "Hello".
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut data = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut data, key);
        assert_eq!(&data, b"Hello");
    }

    #[test]
    fn fast_path_agrees_with_reference() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let source: Vec<u8> = (0..128).map(|_| next() as u8).collect();
        for key in [
            [0, 0, 0, 0],
            [0xff; 4],
            [1, 2, 3, 4],
            (next() as u32).to_be_bytes(),
        ] {
            for offset in 0..=8 {
                for len in 0..=100 {
                    let mut fast = source.clone();
                    let mut slow = source.clone();
                    apply_mask(&mut fast[offset..offset + len], key);
                    apply_mask_reference(&mut slow[offset..offset + len], key);
                    assert_eq!(fast, slow, "key {key:?} offset {offset} len {len}");
                }
            }
        }
    }

    #[test]
    fn masking_twice_is_identity_and_keys_rotate_with_offset() {
        let key = [9, 8, 7, 6];
        let original: Vec<u8> = (0..=255).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, key);
        for split in 0..20 {
            let mut parts = original.clone();
            let (a, b) = parts.split_at_mut(split);
            apply_mask(a, key);
            apply_mask(b, key_at(key, split));
            assert_eq!(parts, whole, "split at {split}");
        }
        apply_mask(&mut whole, key);
        assert_eq!(whole, original);
    }
}
