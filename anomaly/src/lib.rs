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
//!   file, and adds `anomaly_score` and `anomaly` to each event.
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
pub mod features;
pub mod iforest;
pub mod kmeans;
pub mod mask;
pub mod model;
pub mod session;
pub mod template;
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
    use sluice_core::prelude::*;

    /// A build context for tests, with no state directory of its own.
    pub fn cx() -> BuildContext {
        BuildContext {
            id: "test".into(),
            pipeline_data_dir: ".".into(),
            data_dir: ".".into(),
            durable_input: false,
        }
    }

    /// Parses a config from YAML, panicking with the error.
    pub fn config<C: serde::de::DeserializeOwned>(yaml: &str) -> C {
        match sluice_core::config::from_yaml_str(yaml) {
            Ok(c) => c,
            Err(e) => panic!("{yaml}: {e} at {:?}", e.pos),
        }
    }

    /// Builds the processor from YAML after checking that it validates.
    pub fn build<C: ProcessorConfig>(yaml: &str) -> Box<dyn Processor> {
        let c: C = config(yaml);
        let problems = c.validate();
        assert!(problems.is_empty(), "{problems:?}");
        match c.build(&cx()) {
            Ok(p) => p,
            Err(e) => panic!("build: {e}"),
        }
    }

    /// The unknown-key error of a config, as text.
    pub fn unknown_key<C: serde::de::DeserializeOwned>(yaml: &str) -> String {
        match sluice_core::config::from_yaml_str::<C>(yaml) {
            Ok(_) => panic!("{yaml} should not parse"),
            Err(e) => e.message,
        }
    }

    /// A batch of events with these bodies, stamped 0.
    pub fn batch(bodies: &[&str]) -> Batch {
        bodies
            .iter()
            .map(|b| Event::new(b.to_string(), Timestamp(0)))
            .collect::<Vec<_>>()
            .into()
    }

    /// Runs a processor over a batch; returns the failures.
    pub fn run(p: &mut dyn Processor, batch: &mut Batch) -> Vec<(usize, String)> {
        let mut cx = ProcessContext::new();
        p.process(batch, &mut cx);
        cx.take_failures()
    }
}
