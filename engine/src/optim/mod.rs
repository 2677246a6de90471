//! Optimisers and learning-rate schedules.
pub mod schedule;
pub mod sgd;

pub use schedule::LrSchedule;
pub use sgd::{ParamGroup, Sgd, SgdState};
