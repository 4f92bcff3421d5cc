//! Keccak-256 of many independent messages at once.
//!
//! A block of an Ethereum chain hashes tens of thousands of short, independent messages: the
//! transactions, the trie keys of the touched accounts, and the leaves of the state,
//! transactions and receipts tries. One Keccak-f\[1600\] permutation is a long chain of
//! dependent steps, so a single message leaves most of a modern core idle. On a CPU with
//! AVX-512, [`keccak256_many`] runs eight messages through one permutation side by side, one
//! in each 64-bit lane of the 25 registers that hold the state. The result is the same
//! Keccak-256 as [`alloy_primitives::keccak256`], which every other CPU (and every message
//! that has no partner of its length) uses instead.
//!
//! Messages share a pass when they have the same number of 136-byte blocks once padded; the
//! messages of one block are alike in length (accounts, transactions of one kind), so nearly
//! every pass is full.

#![deny(unsafe_code)]

use alloy_primitives::{keccak256, B256};

/// Bytes absorbed per permutation by Keccak-256.
const RATE: usize = 136;

/// How many messages share one pass of the batched kernel on this CPU: 8 with AVX-512, 1 when
/// every message is hashed on its own.
pub fn lanes() -> usize {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        return x86::LANES;
    }
    1
}

/// The Keccak-256 hash of every message, in order.
pub fn keccak256_many<T: AsRef<[u8]>>(messages: &[T]) -> Vec<B256> {
    let mut out = vec![B256::ZERO; messages.len()];
    keccak256_many_into(messages, &mut out);
    out
}

/// Writes the Keccak-256 hash of `messages[i]` to `out[i]`.
///
/// # Panics
/// When `out` is shorter than `messages`.
pub fn keccak256_many_into<T: AsRef<[u8]>>(messages: &[T], out: &mut [B256]) {
    assert!(
        out.len() >= messages.len(),
        "{} messages but room for {} hashes",
        messages.len(),
        out.len()
    );
    #[cfg(target_arch = "x86_64")]
    if messages.len() >= x86::MIN_LANES && x86::available() {
        x86::hash_all(messages, out);
        return;
    }
    for (message, hash) in messages.iter().zip(out) {
        *hash = keccak256(message.as_ref());
    }
}

/// The number of permutations Keccak-256 runs for a message of `len` bytes.
const fn blocks(len: usize) -> usize {
    len / RATE + 1
}

/// Block `index` of `message` after Keccak's padding (`0x01`, zeros, `0x80`), as the 17
/// little-endian words the sponge absorbs; the message has `total` blocks.
fn padded_block(message: &[u8], index: usize, total: usize, words: &mut [u64; RATE / 8]) {
    let start = index * RATE;
    let mut block = [0u8; RATE];
    if start < message.len() {
        let end = message.len().min(start + RATE);
        block[..end - start].copy_from_slice(&message[start..end]);
    }
    if (start..start + RATE).contains(&message.len()) {
        block[message.len() - start] ^= 0x01;
    }
    if index + 1 == total {
        block[RATE - 1] ^= 0x80;
    }
    for (word, bytes) in words.iter_mut().zip(block.chunks_exact(8)) {
        *word = u64::from_le_bytes(bytes.try_into().expect("8-byte chunk"));
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The eight-lane AVX-512 kernel.

    use std::arch::x86_64::{
        __m512i, _mm256_extract_epi64, _mm512_extracti64x4_epi64, _mm512_rol_epi64,
        _mm512_set1_epi64, _mm512_set_epi64, _mm512_setzero_si512, _mm512_ternarylogic_epi64,
        _mm512_xor_si512,
    };

    use alloy_primitives::{keccak256, B256};

    use super::{blocks, padded_block, RATE};

    /// Messages per pass.
    pub(super) const LANES: usize = 8;
    /// Fewer messages than this of one length are hashed one by one: a pass costs about as
    /// much as two single hashes.
    pub(super) const MIN_LANES: usize = 3;
    /// Longer messages (rare in a block) are hashed one by one.
    const MAX_BLOCKS: usize = 16;

    /// Keccak-f\[1600\] round constants.
    const ROUND_CONSTANTS: [u64; 24] = [
        0x0000_0000_0000_0001,
        0x0000_0000_0000_8082,
        0x8000_0000_0000_808A,
        0x8000_0000_8000_8000,
        0x0000_0000_0000_808B,
        0x0000_0000_8000_0001,
        0x8000_0000_8000_8081,
        0x8000_0000_0000_8009,
        0x0000_0000_0000_008A,
        0x0000_0000_0000_0088,
        0x0000_0000_8000_8009,
        0x0000_0000_8000_000A,
        0x0000_0000_8000_808B,
        0x8000_0000_0000_008B,
        0x8000_0000_0000_8089,
        0x8000_0000_0000_8003,
        0x8000_0000_0000_8002,
        0x8000_0000_0000_0080,
        0x0000_0000_0000_800A,
        0x8000_0000_8000_000A,
        0x8000_0000_8000_8081,
        0x8000_0000_0000_8080,
        0x0000_0000_8000_0001,
        0x8000_0000_8000_8008,
    ];

    /// Whether this CPU runs the kernel (detected once, then cached by `std`).
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// `ternarylogic` truth tables: `a ^ b ^ c`, and χ's `a ^ (!b & c)`.
    const XOR3: i32 = 0x96;
    const CHI: i32 = 0xD2;

    /// Rotates every lane left by `N` bits.
    macro_rules! rol {
        ($v:expr, $n:literal) => {
            if $n == 0 {
                $v
            } else {
                _mm512_rol_epi64::<$n>($v)
            }
        };
    }

    /// Keccak-f\[1600\] on eight states at once; `a[x + 5 * y]` holds lane (x, y) of each.
    #[target_feature(enable = "avx512f")]
    fn permute(a: &mut [__m512i; 25]) {
        for constant in ROUND_CONSTANTS {
            // θ
            let mut c = [_mm512_setzero_si512(); 5];
            for (x, column) in c.iter_mut().enumerate() {
                let partial = _mm512_ternarylogic_epi64::<XOR3>(a[x], a[x + 5], a[x + 10]);
                *column = _mm512_ternarylogic_epi64::<XOR3>(partial, a[x + 15], a[x + 20]);
            }
            let d: [__m512i; 5] =
                std::array::from_fn(|x| _mm512_xor_si512(c[(x + 4) % 5], rol!(c[(x + 1) % 5], 1)));
            // θ's last step, then ρ and π: lane (x, y) takes in D[x], rotates and moves to
            // (y, 2x + 3y).
            macro_rules! step {
                ($i:literal, $n:literal) => {
                    rol!(_mm512_xor_si512(a[$i], d[$i % 5]), $n)
                };
            }
            let b: [__m512i; 25] = [
                step!(0, 0),
                step!(6, 44),
                step!(12, 43),
                step!(18, 21),
                step!(24, 14),
                step!(3, 28),
                step!(9, 20),
                step!(10, 3),
                step!(16, 45),
                step!(22, 61),
                step!(1, 1),
                step!(7, 6),
                step!(13, 25),
                step!(19, 8),
                step!(20, 18),
                step!(4, 27),
                step!(5, 36),
                step!(11, 10),
                step!(17, 15),
                step!(23, 56),
                step!(2, 62),
                step!(8, 55),
                step!(14, 39),
                step!(15, 41),
                step!(21, 2),
            ];
            // χ
            macro_rules! chi {
                ($i:literal, $j:literal, $k:literal) => {
                    a[$i] = _mm512_ternarylogic_epi64::<CHI>(b[$i], b[$j], b[$k]);
                };
            }
            chi!(0, 1, 2);
            chi!(1, 2, 3);
            chi!(2, 3, 4);
            chi!(3, 4, 0);
            chi!(4, 0, 1);
            chi!(5, 6, 7);
            chi!(6, 7, 8);
            chi!(7, 8, 9);
            chi!(8, 9, 5);
            chi!(9, 5, 6);
            chi!(10, 11, 12);
            chi!(11, 12, 13);
            chi!(12, 13, 14);
            chi!(13, 14, 10);
            chi!(14, 10, 11);
            chi!(15, 16, 17);
            chi!(16, 17, 18);
            chi!(17, 18, 19);
            chi!(18, 19, 15);
            chi!(19, 15, 16);
            chi!(20, 21, 22);
            chi!(21, 22, 23);
            chi!(22, 23, 24);
            chi!(23, 24, 20);
            chi!(24, 20, 21);
            // ι
            a[0] = _mm512_xor_si512(a[0], _mm512_set1_epi64(constant.cast_signed()));
        }
    }

    /// The Keccak-256 hashes of eight messages of `total` blocks each.
    #[target_feature(enable = "avx512f")]
    fn hash8(messages: [&[u8]; LANES], total: usize) -> [B256; LANES] {
        let mut state = [_mm512_setzero_si512(); 25];
        let mut words = [[0u64; RATE / 8]; LANES];
        for index in 0..total {
            for (message, words) in messages.iter().zip(&mut words) {
                padded_block(message, index, total, words);
            }
            for (w, lane) in state.iter_mut().take(RATE / 8).enumerate() {
                let word = |l: usize| words[l][w].cast_signed();
                let block = _mm512_set_epi64(
                    word(7),
                    word(6),
                    word(5),
                    word(4),
                    word(3),
                    word(2),
                    word(1),
                    word(0),
                );
                *lane = _mm512_xor_si512(*lane, block);
            }
            permute(&mut state);
        }
        let mut hashes = [B256::ZERO; LANES];
        for (w, lane) in state.iter().take(4).enumerate() {
            let low = _mm512_extracti64x4_epi64::<0>(*lane);
            let high = _mm512_extracti64x4_epi64::<1>(*lane);
            let words = [
                _mm256_extract_epi64::<0>(low),
                _mm256_extract_epi64::<1>(low),
                _mm256_extract_epi64::<2>(low),
                _mm256_extract_epi64::<3>(low),
                _mm256_extract_epi64::<0>(high),
                _mm256_extract_epi64::<1>(high),
                _mm256_extract_epi64::<2>(high),
                _mm256_extract_epi64::<3>(high),
            ];
            for (hash, word) in hashes.iter_mut().zip(words) {
                hash[w * 8..w * 8 + 8].copy_from_slice(&word.cast_unsigned().to_le_bytes());
            }
        }
        hashes
    }

    /// Hashes `messages` into `out`: messages of equal block count go through [`hash8`] eight
    /// at a time, in order of arrival; each count's last few, and long messages, one by one.
    pub(super) fn hash_all<T: AsRef<[u8]>>(messages: &[T], out: &mut [B256]) {
        assert!(available(), "the caller checked for AVX-512");
        // SAFETY: `hash_all_avx512` only needs AVX-512F, which the CPU was just found to have.
        #[allow(unsafe_code)]
        unsafe {
            hash_all_avx512(messages, out);
        }
    }

    #[target_feature(enable = "avx512f")]
    fn hash_all_avx512<T: AsRef<[u8]>>(messages: &[T], out: &mut [B256]) {
        // Indices waiting for a pass, by block count.
        let mut pending = [[0usize; LANES]; MAX_BLOCKS];
        let mut waiting = [0usize; MAX_BLOCKS];
        let run = |indices: &[usize], total: usize, out: &mut [B256]| {
            let lane = |l: usize| messages[indices[l.min(indices.len() - 1)]].as_ref();
            let hashes = hash8(std::array::from_fn(lane), total);
            for (index, hash) in indices.iter().zip(hashes) {
                out[*index] = hash;
            }
        };
        for (index, message) in messages.iter().enumerate() {
            let total = blocks(message.as_ref().len());
            if total > MAX_BLOCKS {
                out[index] = keccak256(message.as_ref());
                continue;
            }
            let slot = total - 1;
            pending[slot][waiting[slot]] = index;
            waiting[slot] += 1;
            if waiting[slot] == LANES {
                run(&pending[slot], total, out);
                waiting[slot] = 0;
            }
        }
        for (slot, indices) in pending.iter().enumerate() {
            let indices = &indices[..waiting[slot]];
            if indices.len() >= MIN_LANES {
                // The spare lanes repeat the last message; their results are dropped.
                run(indices, slot + 1, out);
            } else {
                for index in indices {
                    out[*index] = keccak256(messages[*index].as_ref());
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::tests::byte;

        #[test]
        fn eight_lanes_of_every_length_match_keccak256() {
            if !available() {
                return;
            }
            // Around every block boundary the padding handles differently: the 0x01 and 0x80
            // in one byte (135), the 0x01 opening a new block (136), several blocks.
            let lengths: Vec<usize> = (0..=300).chain([407, 408, 409, 543, 544, 1000]).collect();
            for len in lengths {
                let messages: Vec<Vec<u8>> = (0..LANES)
                    .map(|l| (0..len).map(|i| byte(i * 31 + l * 7 + len)).collect())
                    .collect();
                let lanes: [&[u8]; LANES] = std::array::from_fn(|l| messages[l].as_slice());
                // SAFETY: the CPU has AVX-512F (checked above).
                #[allow(unsafe_code)]
                let hashes = unsafe { hash8(lanes, blocks(len)) };
                for (message, hash) in messages.iter().zip(hashes) {
                    assert_eq!(hash, keccak256(message), "length {len}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::b256;
    use proptest::prelude::*;

    fn one_by_one(messages: &[Vec<u8>]) -> Vec<B256> {
        messages.iter().map(keccak256).collect()
    }

    /// The low byte of `n`: test data.
    pub(crate) fn byte(n: usize) -> u8 {
        n.to_le_bytes()[0]
    }

    #[test]
    fn known_answers() {
        // Keccak-256 of "" and of "abc" (the original Keccak padding, not SHA3-256's).
        let empty = b256!("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
        let abc = b256!("4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
        let messages = [&b""[..], b"abc", b"", b"abc"];
        assert_eq!(keccak256_many(&messages), [empty, abc, empty, abc]);
    }

    #[test]
    fn the_batched_kernel_runs_on_this_machine_when_the_cpu_has_it() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            lanes(),
            if std::arch::is_x86_feature_detected!("avx512f") {
                8
            } else {
                1
            }
        );
    }

    #[test]
    fn mixed_lengths_and_partial_passes_keep_the_order() {
        // Lengths cycle through 1-, 2- and 3-block messages and one longer than the batched
        // kernel takes; every count from 0 to 40 leaves a different remainder per length.
        for count in 0..=40usize {
            let messages: Vec<Vec<u8>> = (0..count)
                .map(|i| {
                    let len = [20, 32, 150, 300, 3000][i % 5] + i % 3;
                    (0..len).map(|j| byte(i * 13 + j)).collect()
                })
                .collect();
            assert_eq!(
                keccak256_many(&messages),
                one_by_one(&messages),
                "{count} messages"
            );
        }
    }

    #[test]
    fn into_writes_only_the_first_hashes() {
        let messages = vec![vec![1u8; 40]; 9];
        let mut out = vec![B256::repeat_byte(0xee); 11];
        keccak256_many_into(&messages, &mut out);
        assert_eq!(&out[..9], one_by_one(&messages).as_slice());
        assert_eq!(out[9..], [B256::repeat_byte(0xee); 2]);
    }

    #[test]
    #[should_panic(expected = "3 messages but room for 2 hashes")]
    fn into_refuses_a_short_output() {
        keccak256_many_into(&[[0u8; 1]; 3], &mut [B256::ZERO; 2]);
    }

    proptest! {
        #[test]
        fn any_messages_hash_as_keccak256(
            messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..700), 0..40)
        ) {
            prop_assert_eq!(keccak256_many(&messages), one_by_one(&messages));
        }
    }
}
