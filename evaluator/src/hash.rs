//! Bucketing hashes: Reflag's SHA-256 rollout hash and MurmurHash3 x86 32-bit.

use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

/// `@reflag/flag-evaluation` `hashInt`: SHA-256, first 4 bytes little-endian, low 20 bits,
/// scaled to 0..=100000 (the integer form equals `floor(v / 1048575 * 100000)` for every v).
pub fn reflag_hash(input: &str) -> u32 {
    let digest = Sha256::digest(input.as_bytes());
    let v = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0xfffff;
    ((u64::from(v) * 100_000) / 0xfffff) as u32
}

/// Reflag rollout hash of `"{key}.{value}"` without allocating a joined string.
///
/// A rollout input almost always fits one SHA-256 block (55 bytes and less): that block is
/// padded here and run through the compression function once, which skips the streaming
/// hasher's buffering and finalization (a third of the cost of a hash, and W2 hashes about 150
/// times per context). Longer inputs take the streaming path.
pub fn reflag_hash_parts(key: &str, value: &str) -> u32 {
    let digest_head = match one_block_digest_head(key.as_bytes(), value.as_bytes()) {
        Some(head) => head,
        None => {
            let mut h = Sha256::new();
            h.update(key.as_bytes());
            h.update(b".");
            h.update(value.as_bytes());
            let digest = h.finalize();
            [digest[0], digest[1], digest[2], digest[3]]
        }
    };
    let v = u32::from_le_bytes(digest_head) & 0xfffff;
    ((u64::from(v) * 100_000) / 0xfffff) as u32
}

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// The first 4 digest bytes of SHA-256(`key` "." `value`) when the message fits one block with
/// its padding (at most 55 bytes); `None` otherwise.
fn one_block_digest_head(key: &[u8], value: &[u8]) -> Option<[u8; 4]> {
    let len = key.len() + 1 + value.len();
    if len > 55 {
        return None;
    }
    let mut block = [0u8; 64];
    let (k, rest) = block.split_at_mut(key.len());
    k.copy_from_slice(key);
    let (dot, rest) = rest.split_first_mut()?;
    *dot = b'.';
    let (v, rest) = rest.split_at_mut(value.len());
    v.copy_from_slice(value);
    // Padding: a 1 bit, zeros, then the message length in bits as a big-endian u64.
    *rest.first_mut()? = 0x80;
    let (_, bits) = block.split_at_mut(56);
    bits.copy_from_slice(&((len as u64) * 8).to_be_bytes());
    let mut state = SHA256_IV;
    sha2::compress256(&mut state, std::slice::from_ref(GenericArray::from_slice(&block)));
    // The digest is the state words big-endian; the hash reads its first 4 bytes.
    Some(state[0].to_be_bytes())
}

/// MurmurHash3 x86 32-bit of the given bytes.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut k: u32 = 0;
        for (i, b) in tail.iter().enumerate() {
            k |= u32::from(*b) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_known_values() {
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514E_28B7);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(murmur3_32(b"The quick brown fox jumps over the lazy dog", 0), 0x2e4f_f723);
    }

    #[test]
    fn reflag_hash_range_and_parts_agree() {
        for s in ["", "a", "flag.user-1", "EEuoT8KShb"] {
            let h = reflag_hash(s);
            assert!(h <= 100_000);
            if let Some((k, v)) = s.split_once('.') {
                assert_eq!(reflag_hash_parts(k, v), h);
            }
        }
        assert_eq!(reflag_hash("EEuoT8KShb"), 38026);
    }

    /// The streaming hasher, as `reflag_hash_parts` was before its one-block path.
    fn streamed(key: &str, value: &str) -> u32 {
        let mut h = Sha256::new();
        h.update(key.as_bytes());
        h.update(b".");
        h.update(value.as_bytes());
        let digest = h.finalize();
        let v = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0xfffff;
        ((u64::from(v) * 100_000) / 0xfffff) as u32
    }

    #[test]
    fn one_block_path_agrees_at_every_length_around_the_block_edge() {
        // 54..=56 bytes straddle the last length that fits one block with its padding.
        for total in 0..=130usize {
            for key_len in [0, 1, total / 2, total.saturating_sub(1)] {
                if key_len + 1 > total.max(1) {
                    continue;
                }
                let key = "k".repeat(key_len);
                let value = "v".repeat(total.saturating_sub(key_len + 1));
                assert_eq!(reflag_hash_parts(&key, &value), streamed(&key, &value), "{key}.{value}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn one_block_path_is_the_streamed_hash(key in "\\PC{0,40}", value in "\\PC{0,40}") {
            proptest::prop_assert_eq!(reflag_hash_parts(&key, &value), streamed(&key, &value));
        }
    }
}

/// A 128-bit fingerprint of `data` (XXH3-128) for ETags: not cryptographic, but collisions are
/// out of reach for accidental input, and it costs a small fraction of a SHA-2 pass over an answer.
pub fn fingerprint(data: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(data)
}

#[cfg(test)]
mod fingerprint_tests {
    use super::fingerprint;

    #[test]
    fn xxh3_128_reference_values() {
        // xxhsum -H2 of the empty input.
        assert_eq!(fingerprint(b""), 0x99aa06d3014798d86001c324468d497f);
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
    }
}
