//! ResNets, datasets, trainer and metrics.
pub mod analysis;
pub mod config;
pub mod data;
pub mod error;
pub mod layers;
pub mod loss;
pub mod metrics;
pub mod predict;
pub mod presets;
pub mod resnet;
pub mod train;
pub mod weights;
