//! [`Divisor`]: `x / d` and `x % d` for a `d` fixed over a whole product, as a shift and a
//! mask when `d` is a power of two (the output planes and rows of every ResNet shape).
//!
//! Why: the store callbacks of the tiles get a flat offset and some split it back into
//! channel, row and column. Those were three 64-bit divisions per stored vector in the
//! stride-2 input grad, where a tile of the short 1x2 sub-kernel does only 64 steps;
//! as shifts, that pass ran 4-12% faster at AVX2 and -2 to +5% at AVX-512, the 32→64
//! one 5-8% and 0-8% (`conv_kernels/<shape>/dx-<level>`, three alternated runs each,
//! 2-core Xeon VM).

/// A divisor, with its shift and mask when it is a power of two.
#[derive(Clone, Copy, Debug)]
pub struct Divisor {
    d: usize,
    /// `log2(d)` when `d` is a power of two.
    shift: Option<u32>,
}

impl Divisor {
    pub fn new(d: usize) -> Self {
        assert!(d > 0, "a divisor of zero");
        Divisor {
            d,
            shift: d.is_power_of_two().then(|| d.trailing_zeros()),
        }
    }

    /// `(x / d, x % d)`.
    #[inline(always)]
    pub fn div_rem(self, x: usize) -> (usize, usize) {
        match self.shift {
            Some(s) => (x >> s, x & (self.d - 1)),
            None => (x / self.d, x % self.d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Divisor;

    #[test]
    fn divides_like_the_operators() {
        for d in [1, 2, 3, 7, 8, 16, 24, 64, 100, 256, 1 << 20] {
            let div = Divisor::new(d);
            for x in (0..5000).chain([usize::MAX - 1, usize::MAX]) {
                assert_eq!(div.div_rem(x), (x / d, x % d), "{x} / {d}");
            }
        }
    }
}
