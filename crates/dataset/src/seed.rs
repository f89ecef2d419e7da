//! One seeding scheme for the whole workspace: every random generator is
//! seeded from the user's seed, a named [`Stream`] and an index (a class,
//! an epoch, a step), so two generators never share a seed by arithmetic
//! accident (as "weight init 0x1a1" and "dropout 0xd0 + step 209" once did)
//! and runs are reproducible whatever the thread count.

/// The random streams, each with its own salt.
///
/// The split's and the synthetic gems' salts are 0 and their indices
/// disjoint by construction (classes below 2^32 for splits; class and
/// image packed as `class << 32 | image` for gems, where every split index
/// is class 0): they keep the values of earlier versions, so the same seed
/// still gives the same split of the same photos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The order of a class's photos before a split (index: class).
    SplitClass,
    /// A synthetic gem (index: `class << 32 | image`).
    SyntheticGem,
    /// The training images' order in an epoch (index: epoch).
    EpochOrder,
    /// The network's initial weights (index: 0).
    WeightInit,
    /// The augmenter's base seed (index: 0; it derives per epoch and image).
    Augment,
    /// Dropout and drop-connect masks (index: step).
    Dropout,
    /// Mixup's mixing weights and pairs (index: step).
    Mixup,
}

impl Stream {
    /// The salt mixed into the user's seed: distinct for every stream but
    /// the two documented above.
    fn salt(self) -> u64 {
        match self {
            Self::SplitClass | Self::SyntheticGem => 0,
            // Kept from earlier versions: the same epoch orders.
            Self::EpochOrder => 0x5eed_0fde,
            Self::WeightInit => 0x8c3f_29d1_7e5a_b604,
            Self::Augment => 0x2b97_e1a4_c05d_3f78,
            Self::Dropout => 0xd4e1_6a0b_93c7_2f15,
            Self::Mixup => 0x61f8_b3c2_0e97_a4d9,
        }
    }
}

/// The seed of element `index` of `stream` under the user's `seed`.
pub fn seed_for(seed: u64, stream: Stream, index: u64) -> u64 {
    derive_seed(seed ^ stream.salt(), index)
}

/// A seed for stream `stream` of a generator seeded with `seed` (SplitMix64
/// of the two): a bijection of `seed` for a fixed `stream`, and of
/// `stream` for a fixed `seed`. [`seed_for`] names the streams.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn streams_do_not_share_seeds_over_long_runs() {
        // Every (stream, index) a long training and a large split use.
        let mut seen: HashMap<u64, (Stream, u64)> = HashMap::new();
        let streams = [
            (Stream::SplitClass, 0..1_000u64),
            (Stream::EpochOrder, 0..1_000),
            (Stream::WeightInit, 0..1),
            (Stream::Augment, 0..1),
            (Stream::Dropout, 0..200_000),
            (Stream::Mixup, 0..200_000),
        ];
        for seed in [0u64, 1337, u64::MAX] {
            seen.clear();
            for (stream, range) in streams.clone() {
                for i in range {
                    if let Some(other) = seen.insert(seed_for(seed, stream, i), (stream, i)) {
                        panic!("seed {seed}: {stream:?} {i} collides with {other:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn splits_and_epoch_orders_keep_their_seeds() {
        assert_eq!(seed_for(1337, Stream::SplitClass, 5), derive_seed(1337, 5));
        assert_eq!(seed_for(1337, Stream::EpochOrder, 3), derive_seed(1337 ^ 0x5eed_0fde, 3));
    }
}
