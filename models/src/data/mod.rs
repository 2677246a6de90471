//! The data pipeline: datasets, long-tailed subsets, augmentation and batching.
//!
//! Everything here works on plain `u8`/`f32` buffers; the trainer wraps batches into
//! tensors. A reader's path: [`cifar`] or [`synthetic`] or [`imagefolder`] produce
//! samples, [`longtail`] picks the long-tailed subset, [`augment`] (or the image-folder
//! transforms) turn a sample into normalised f32, [`loader`] batches them in parallel
//! ahead of the trainer, and [`mod@mixup`] mixes a batch.

pub mod augment;
pub mod cifar;
pub mod cifar_pickle;
pub mod dataset;
pub mod error;
pub mod fetch;
pub mod folder;
pub mod hints;
pub mod imagefolder;
pub mod loader;
pub mod longtail;
pub mod mixup;
pub mod mt19937;
pub mod seed;
pub mod synthetic;

pub use augment::{CifarSamples, CifarTransform, Normalisation, CIFAR_NORMALISATION};
pub use cifar::{load_cifar, CifarKind, Split};
pub use dataset::Dataset;
pub use error::DataError;
pub use loader::{Batch, Loader, LoaderConfig, LoaderState, SampleSource};
pub use longtail::{longtail_counts, longtail_subset, LongTailSubset, REFERENCE_SUBSET_SEED};
pub use mixup::{mixup, Mixup};
pub use seed::DataRng;
pub use synthetic::{generate_synthetic, SyntheticConfig, SyntheticLt};
