//! # sluice-runtime
//!
//! What runs a pipeline, built on the contract of `sluice-core`:
//!
//! * [`pipeline`] reads and validates the pipeline file through the
//!   [`Registry`](sluice_core::registry::Registry), keeping line and column
//!   for every problem ([`load_pipeline`](pipeline::load_pipeline)).
//! * [`topology`] plans the tasks of a pipeline (one
//!   [`TaskKey`](topology::TaskKey) each), builds them, runs every one as a
//!   tokio task with channels as the only edges, and applies reloads.
//! * `testing` (the `testing` feature, or this crate's own tests): helpers
//!   for component tests.

pub mod pipeline;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod topology;
