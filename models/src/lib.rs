//! ResNets, datasets, trainer and metrics.
