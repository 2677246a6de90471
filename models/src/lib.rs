//! ResNets, datasets, trainer and metrics.

pub mod data;
pub mod metrics;
