//! numpy's legacy random generator, exactly: MT19937 seeded by `init_genrand`
//! (`np.random.seed(n)` with an integer), and `np.random.shuffle` of a 1-D array.
//!
//! The reference draws its CIFAR-LT subset with these two calls, so reproducing them bit
//! for bit is what makes arbor train on the reference's images. The generator is
//! Matsumoto and Nishimura's MT19937 (1998); the shuffle is numpy's Fisher–Yates from the
//! last element down, each swap partner drawn by `random_interval`: the smallest
//! all-ones mask covering the bound, 32-bit draws masked and rejected until one is within
//! the bound.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// The 32-bit Mersenne Twister with numpy's integer seeding.
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; N],
    /// Next word of `state` to temper; `N` means the block must be regenerated first.
    pos: usize,
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mt19937 {{ pos: {} }}", self.pos)
    }
}

impl Mt19937 {
    /// `init_genrand(seed)`, what `np.random.seed(seed)` does for an integer seed below 2^32.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, pos: N }
    }

    /// Regenerates the whole block of 624 words (the "twist").
    fn twist(&mut self) {
        let s = &mut self.state;
        for i in 0..N {
            let y = (s[i] & UPPER_MASK) | (s[(i + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            s[i] = s[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// The next 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.twist();
        }
        let mut y = self.state[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A uniform integer in `0..=max`, as numpy's `random_interval`.
    ///
    /// Bounds above `u32::MAX` would need numpy's 64-bit path; no dataset comes close.
    pub fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16] {
            mask |= mask >> shift;
        }
        loop {
            let value = self.next_u32() & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// `np.random.shuffle(items)` for a 1-D array.
    ///
    /// Panics if `items` has more than 2^32 elements (see [`Mt19937::interval`]).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        assert!(
            items.len() as u64 <= u64::from(u32::MAX) + 1,
            "numpy shuffle emulation covers arrays of up to 2^32 elements"
        );
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u32) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent of numpy: `init_genrand(5489)` (the authors' default seed) first gives
    /// 3499211612, and the C++ standard ([rand.predef]) requires the 10000th output of a
    /// default-constructed `std::mt19937` to be 4123659995.
    #[test]
    fn matches_the_published_mt19937_outputs() {
        let mut mt = Mt19937::new(5489);
        assert_eq!(mt.next_u32(), 3_499_211_612);
        let mut last = 0;
        for _ in 1..10_000 {
            last = mt.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn interval_stays_in_bounds_and_reaches_both_ends() {
        let mut mt = Mt19937::new(1);
        for max in [1u32, 2, 5, 7, 8, 100, 4999] {
            let draws: Vec<u32> = (0..20_000).map(|_| mt.interval(max)).collect();
            assert!(draws.iter().all(|&d| d <= max));
            if max < 200 {
                assert!(draws.contains(&0) && draws.contains(&max), "max {max}");
            }
        }
        assert_eq!(mt.interval(0), 0);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut items: Vec<usize> = (0..1000).collect();
        Mt19937::new(0).shuffle(&mut items);
        let mut sorted = items.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(items, sorted);
    }
}
