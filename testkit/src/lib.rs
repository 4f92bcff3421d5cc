//! `tandem-testkit`: helpers that several crates' test suites share (a dev-dependency only).
//!
//! The fuzz tests start from a valid input (a signed tx, a proposal, a payload transaction)
//! and change it the ways a hostile or broken peer would: [`mutation`] draws one such change.

use proptest::{prelude::*, test_runner::Config};

/// One change to a valid byte string.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// XOR the byte at `index % len` with a non-zero `mask`.
    Flip {
        /// Position (taken modulo the length).
        index: usize,
        /// Bits to flip; never zero.
        mask: u8,
    },
    /// Keep only the first `len % original length` bytes.
    Truncate {
        /// New length (taken modulo the length).
        len: usize,
    },
    /// Insert `byte` before position `index % (len + 1)`.
    Insert {
        /// Position (taken modulo the length plus one).
        index: usize,
        /// The inserted byte.
        byte: u8,
    },
    /// Replace everything with these bytes.
    Replace(Vec<u8>),
}

impl Mutation {
    /// The changed copy of `valid`, which must not be empty.
    pub fn apply(&self, valid: &[u8]) -> Vec<u8> {
        let mut bytes = valid.to_vec();
        match self {
            Self::Flip { index, mask } => bytes[index % valid.len()] ^= mask,
            Self::Truncate { len } => bytes.truncate(len % valid.len()),
            Self::Insert { index, byte } => bytes.insert(index % (valid.len() + 1), *byte),
            Self::Replace(other) => bytes.clone_from(other),
        }
        bytes
    }
}

/// Mostly single-byte flips, then truncations, insertions and wholesale replacements by up
/// to `max_replacement` arbitrary bytes.
pub fn mutation(max_replacement: usize) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1..=u8::MAX).prop_map(|(index, mask)| Mutation::Flip { index, mask }),
        1 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(index, byte)| Mutation::Insert { index, byte }),
        1 => proptest::collection::vec(any::<u8>(), 0..max_replacement).prop_map(Mutation::Replace),
    ]
}

/// `n` cases and no regression files (the suites' inputs are built at run time).
pub fn cases(n: u32) -> Config {
    Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutation_changes_or_keeps_length_as_described() {
        let valid = [1_u8, 2, 3, 4];
        assert_eq!(
            Mutation::Flip {
                index: 5,
                mask: 0xff
            }
            .apply(&valid),
            [1, 0xfd, 3, 4]
        );
        assert_eq!(Mutation::Truncate { len: 6 }.apply(&valid), [1, 2]);
        assert_eq!(
            Mutation::Insert { index: 4, byte: 9 }.apply(&valid),
            [1, 2, 3, 4, 9]
        );
        assert_eq!(Mutation::Replace(vec![]).apply(&valid), Vec::<u8>::new());
    }
}
