//! The crate's error type. Every failure — no driver, no GPU, no NVRTC, a kernel that does
//! not compile, a shape mismatch — is an [`Error`] value with a message a user can act on;
//! nothing in this crate panics because CUDA is missing.

use std::fmt;

/// Errors from compiling, loading or launching CUDA kernels.
#[derive(Debug)]
pub enum Error {
    /// No usable GPU: the driver library is missing, or it reports no device.
    NoGpu(String),
    /// The NVRTC library could not be loaded, so kernels cannot be compiled.
    NvrtcMissing(String),
    /// NVRTC rejected a kernel file; `log` is its compiler output.
    Compile {
        /// The `.cu` file that failed.
        file: String,
        /// NVRTC's diagnostic log.
        log: String,
    },
    /// A CUDA driver call failed.
    Driver(cudarc::driver::DriverError),
    /// A cuBLAS call failed, or cuBLAS could not be loaded.
    Cublas(String),
    /// Buffer lengths or shapes passed to a kernel wrapper do not fit together.
    Shape(String),
    /// A tensor too large for the kernels' 32-bit indexing (2^31 elements or more).
    TooLarge(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoGpu(why) => write!(f, "no usable CUDA GPU: {why}"),
            Error::NvrtcMissing(why) => write!(f, "NVRTC is not available: {why}"),
            Error::Compile { file, log } => write!(f, "NVRTC failed to compile {file}:\n{log}"),
            Error::Driver(e) => write!(f, "CUDA driver error: {e}"),
            Error::Cublas(why) => write!(f, "cuBLAS error: {why}"),
            Error::Shape(why) => write!(f, "shape mismatch: {why}"),
            Error::TooLarge(why) => write!(f, "tensor too large for the CUDA kernels: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<cudarc::driver::DriverError> for Error {
    fn from(e: cudarc::driver::DriverError) -> Self {
        Error::Driver(e)
    }
}

impl From<cudarc::cublas::result::CublasError> for Error {
    fn from(e: cudarc::cublas::result::CublasError) -> Self {
        Error::Cublas(format!("{e:?}"))
    }
}

/// Shorthand for a [`Error::Shape`] with a formatted message.
pub(crate) fn shape_error(message: impl Into<String>) -> Error {
    Error::Shape(message.into())
}
