//! Placeholder until the CUDA issue lands.
