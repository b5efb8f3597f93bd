//! # sluice-anomaly
//!
//! Unsupervised anomaly detection inside a Sluice pipeline, as three
//! processors that follow one another:
//!
//! * `template` ([`template`]): mines log templates online with Drain
//!   ([`drain`]) after masking variable parts ([`mask`]); each event gets a
//!   stable `template_id` and its `template`.
//! * `session` and `window` ([`session`]): group events by a key (a field, or
//!   every regex match in the body) or by time or count windows, and emit one
//!   feature event per closed group: counts per template id (a sparse map)
//!   and statistics of numeric fields ([`features`]).
//! * `anomaly` ([`anomaly`]): turns feature events into vectors
//!   ([`vectorize`]), learns a model ([`iforest`]: isolation forest;
//!   [`kmeans`]: k-means from linfa) from the first vectors or from a model
//!   file, and adds `anomaly_score` and `anomaly` to each event; the
//!   threshold comes from [`threshold`], and [`explain`] names the
//!   templates that drove a flagged event's score.
//!
//! Both `template` and `anomaly` report to the agent's API what the
//! dashboard shows ([`report`]): the mined templates, and the latest scores
//! and flagged groups with their templates in text.
//!
//! [`eval`] holds the measures (grouping accuracy, precision and recall) the
//! tests and the `sluice evaluate` command use.
//!
//! ```
//! use sluice_core::prelude::*;
//!
//! let mut registry = Registry::new();
//! sluice_anomaly::register(&mut registry).unwrap();
//! assert!(registry.processor("template").is_some());
//! ```

use sluice_core::registry::{DuplicateType, Registry};

pub mod anomaly;
pub mod drain;
pub mod eval;
pub mod explain;
pub mod features;
pub mod iforest;
pub mod kmeans;
pub mod mask;
pub mod model;
pub mod report;
pub mod session;
pub mod template;
pub mod threshold;
pub mod vectorize;

/// Registers `template`, `session`, `window` and `anomaly`.
///
/// # Errors
///
/// When one of these names is already registered.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateType> {
    registry.add_processor::<template::Config>("template")?;
    registry.add_processor::<session::SessionConfig>("session")?;
    registry.add_processor::<session::WindowConfig>("window")?;
    registry.add_processor::<anomaly::Config>("anomaly")?;
    Ok(())
}

#[cfg(test)]
mod loghub_tests;

#[cfg(test)]
pub(crate) mod test_util {
    pub use sluice_runtime::testing::processor::*;
}
