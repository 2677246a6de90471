//! One error type for the engine. Every message names the shapes, dtypes or devices involved,
//! because "shape mismatch" alone sends a user hunting.
use std::fmt;

/// Everything that can go wrong in an engine call.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Two shapes that had to agree did not (op name, then what was seen).
    Shape { op: &'static str, msg: String },
    /// Operands of different dtypes.
    DType { op: &'static str, msg: String },
    /// Operands on different devices, or a device that is not available.
    Device { op: &'static str, msg: String },
    /// An axis outside the tensor's rank.
    Axis {
        op: &'static str,
        axis: isize,
        rank: usize,
    },
    /// Misuse of the tape: backward from a non-scalar without a gradient, backward twice, ...
    Tape(String),
    /// An argument that makes no sense (negative padding, zero stride, an index out of range...).
    Invalid { op: &'static str, msg: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { op, msg } => write!(f, "{op}: shape mismatch: {msg}"),
            Error::DType { op, msg } => write!(f, "{op}: dtype mismatch: {msg}"),
            Error::Device { op, msg } => write!(f, "{op}: device error: {msg}"),
            Error::Axis { op, axis, rank } => {
                write!(
                    f,
                    "{op}: axis {axis} is out of range for a tensor of rank {rank}"
                )
            }
            Error::Tape(msg) => write!(f, "autodiff: {msg}"),
            Error::Invalid { op, msg } => write!(f, "{op}: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

/// The engine's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for building an [`Error::Invalid`] (also used by the experiments' losses in
/// `arbor_models::loss`, whose errors are the engine's).
pub fn invalid<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid {
        op,
        msg: msg.into(),
    })
}

/// Shorthand for building an [`Error::Shape`].
pub(crate) fn shape_err<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::Shape {
        op,
        msg: msg.into(),
    })
}
