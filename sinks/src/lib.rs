//! # sluice-sinks
//!
//! The built-in sinks of Sluice: where events leave the pipeline.
//!
//! * [`file`]: appends events to files whose path is a
//!   [`Template`](sluice_core::template::Template) (`./out/{app}/%Y-%m-%d.log`),
//!   one `write` per file per batch, keeping a bounded set of files open;
//!   optionally rotated by size and age and compressed (gzip, zstd).
//! * [`console`]: writes events to stdout or stderr, one write and one flush
//!   per batch; a closed pipe stops the pipeline with a clear error.
//! * [`null`]: discards everything (for benchmarks and drafts).
//!
//! `file` and `console` share the [`encode`] module: `text` (the body and a
//! newline) or `json` (one `{"timestamp","message","fields"}` object per line,
//! or `flat` with the fields at the top level, with `only_fields` /
//! `except_fields` and a `timestamp_format`: see [`encode::Encoding`]).
//!
//! Each sink is one file named after its YAML `type`, with a `Config` that
//! implements [`SinkConfig`](sluice_core::registry::SinkConfig). [`register`]
//! lists them all:
//!
//! ```
//! let mut registry = sluice_core::registry::Registry::new();
//! sluice_sinks::register(&mut registry).unwrap();
//! assert_eq!(registry.names("sink"), ["console", "file", "null"]);
//! ```

use sluice_core::registry::{DuplicateType, Registry};

pub mod console;
pub mod encode;
pub mod file;
pub mod null;

/// Registers every sink of this crate under its YAML `type`.
///
/// # Errors
///
/// When one of the names is already registered.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateType> {
    registry.add_sink::<file::Config>("file")?;
    registry.add_sink::<console::Config>("console")?;
    registry.add_sink::<null::Config>("null")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn repo(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
    }

    #[test]
    fn documented_and_registered_sinks_match() {
        let mut registry = Registry::new();
        register(&mut registry).unwrap();
        let docs = std::fs::read_to_string(repo("docs/sinks.md")).unwrap();
        let documented: Vec<&str> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("## `")?.strip_suffix('`'))
            .collect();
        // docs/sinks.md also documents sinks of other crates; the binary's
        // tests check every heading against the whole registry.
        for name in registry.names("sink") {
            assert!(
                documented.contains(&name),
                "{name} is registered, not documented"
            );
        }
    }

    #[test]
    fn a_second_registration_fails() {
        let mut registry = Registry::new();
        register(&mut registry).unwrap();
        assert!(register(&mut registry).is_err());
    }
}
