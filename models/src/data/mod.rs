//! The data pipeline: datasets, long-tailed subsets, augmentation and batching.
//!
//! Everything here works on plain `u8`/`f32` buffers; the trainer wraps batches into
//! tensors.

pub mod cifar;
pub mod dataset;
pub mod error;
pub mod longtail;
pub mod seed;

pub use cifar::{load_cifar, CifarKind, Split};
pub use dataset::Dataset;
pub use error::DataError;
pub use longtail::{longtail_counts, longtail_subset, LongTailSubset};
pub use seed::DataRng;
