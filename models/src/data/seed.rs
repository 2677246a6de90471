//! Deriving independent random streams from a base seed.
//!
//! Anything random that may run in parallel (augmenting sample `i` of epoch `e`,
//! drawing synthetic image `i`) gets its own generator seeded from the tuple that names
//! it, so results depend only on that tuple and never on thread count or scheduling.

use rand::rngs::StdRng;
use rand::SeedableRng;

/// The generator type used throughout the data pipeline.
pub type DataRng = StdRng;

/// Mixes `parts` into one 64-bit seed (SplitMix64 finaliser applied after each part), so
/// nearby tuples such as `(0, 1, 2)` and `(0, 2, 1)` give unrelated streams.
pub fn derive_seed(parts: &[u64]) -> u64 {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for &part in parts {
        state = splitmix64(state ^ part);
    }
    state
}

/// A generator for the stream named by `parts`.
pub fn derived_rng(parts: &[u64]) -> DataRng {
    DataRng::seed_from_u64(derive_seed(parts))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
