//! arbor: a reverse-mode autodiff tensor engine that reproduces the ARB-Loss experiments.
pub use arbor_cuda as cuda;
pub use arbor_engine as engine;
pub use arbor_models as models;
