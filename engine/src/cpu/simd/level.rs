//! Which instruction set the kernels use: the best the CPU has, or the one `ARBOR_SIMD`
//! forces (`avx512`, `avx2` or `portable`), so that every tier can be measured and tested
//! on one machine. The variable is read once, on first use.
use crate::error::Error;
use std::sync::OnceLock;

/// A dispatch level, from the plainest up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// No target features beyond the compiler's baseline (SSE2 on x86-64, NEON on
    /// aarch64): LLVM vectorises the lane arrays for whatever that is.
    Portable,
    /// AVX2 and FMA: 8 f32 lanes.
    Avx2,
    /// AVX-512 F, VL, BW and DQ (with AVX2 and FMA): 16 f32 lanes.
    Avx512,
}

/// The environment variable that forces a level.
pub const ENV: &str = "ARBOR_SIMD";

impl Level {
    pub const ALL: [Level; 3] = [Level::Portable, Level::Avx2, Level::Avx512];

    /// The name `ARBOR_SIMD` takes and `repro` records (`"avx2"`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the level's code.
    pub fn is_supported(self) -> bool {
        match self {
            Level::Portable => true,
            Level::Avx2 => super::has_avx2_fma(),
            Level::Avx512 => super::has_avx512(),
        }
    }

    /// The best level this CPU supports.
    pub fn detected() -> Level {
        Level::ALL
            .into_iter()
            .rev()
            .find(|l| l.is_supported())
            .unwrap_or(Level::Portable)
    }

    /// Every level this CPU supports, plainest first (what the kernel tests run at).
    pub fn supported() -> Vec<Level> {
        Level::ALL
            .into_iter()
            .filter(|l| l.is_supported())
            .collect()
    }

    /// The level `value` of `ARBOR_SIMD` names, if this CPU supports it.
    pub fn parse(value: &str) -> Result<Level, Error> {
        Level::parse_among(value, &Level::supported())
    }

    /// [`Level::parse`] on a CPU that supports `supported`.
    fn parse_among(value: &str, supported: &[Level]) -> Result<Level, Error> {
        let level = Level::ALL
            .into_iter()
            .find(|l| l.name() == value.trim().to_ascii_lowercase())
            .ok_or_else(|| Error::Device {
                op: "simd",
                msg: format!("{ENV}={value:?} is not a level: use avx512, avx2 or portable"),
            })?;
        if !supported.contains(&level) {
            return Err(Error::Device {
                op: "simd",
                msg: format!(
                    "{ENV}={} asks for instructions this CPU lacks (it supports: {})",
                    level.name(),
                    supported
                        .iter()
                        .map(|l| l.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        Ok(level)
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The active level: `ARBOR_SIMD` when set (and non-empty), else the best detected.
/// Programs call this once at start-up so that a bad value is reported as an error
/// before any kernel runs.
pub fn try_level() -> Result<Level, Error> {
    static LEVEL: OnceLock<Result<Level, Error>> = OnceLock::new();
    LEVEL
        .get_or_init(|| match std::env::var(ENV) {
            Ok(v) if !v.trim().is_empty() => Level::parse(&v),
            _ => Ok(Level::detected()),
        })
        .clone()
}

/// The active level, for the kernels. A bad `ARBOR_SIMD` stops here with its message
/// rather than run instructions the CPU lacks (an illegal-instruction crash) or quietly
/// measure another level; `repro` and the benches check [`try_level`] first.
pub fn level() -> Level {
    match try_level() {
        Ok(level) => level,
        Err(e) => panic!("{e}"),
    }
}

/// The active level's name, as `repro` records it (`"avx2"`).
pub fn level_name() -> &'static str {
    level().name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_names_are_errors() {
        for l in Level::supported() {
            assert_eq!(Level::parse(l.name()).unwrap(), l);
            assert_eq!(Level::parse(&l.name().to_uppercase()).unwrap(), l);
        }
        let e = Level::parse("sse9").unwrap_err().to_string();
        assert!(e.contains("ARBOR_SIMD") && e.contains("sse9"), "{e}");
        assert_eq!(Level::supported()[0], Level::Portable);
        assert_eq!(*Level::supported().last().unwrap(), Level::detected());
    }

    #[test]
    fn an_unsupported_level_is_an_error_naming_what_the_cpu_has() {
        let avx2_cpu = [Level::Portable, Level::Avx2];
        let e = Level::parse_among("avx512", &avx2_cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lacks") && e.contains("portable, avx2"), "{e}");
        assert_eq!(Level::parse_among("avx2", &avx2_cpu).unwrap(), Level::Avx2);
        for l in Level::ALL.into_iter().filter(|l| !l.is_supported()) {
            assert!(Level::parse(l.name()).is_err());
        }
    }
}
