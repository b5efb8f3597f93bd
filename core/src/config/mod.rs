//! Configuration: reading YAML into a spanned tree and typed option values
//! (the pipeline model and its validation are `sluice-runtime`'s).
//!
//! Why not `serde_yaml`: it is archived, and its errors carry positions only
//! for syntax and type errors. Sluice reads the file with `saphyr-parser` (a
//! maintained YAML 1.2 parser) into a tree of [`Node`]s that keep their line
//! and column, and deserializes component configs from that tree with serde,
//! so semantic errors found later (a missing channel, a cycle) point at the
//! exact place too.

pub mod address;
pub mod de;
pub mod node;
pub mod suggest;
pub mod types;

pub use address::{address_problem, check_address, AddressUse};
pub use de::{field_names, from_node, ConfigError};
pub use node::{Node, NodeKind, Pos};
pub use types::{ByteSize, Duration};

/// Deserializes a typed config from YAML text (no `${VAR}` substitution):
/// handy in component tests.
///
/// # Errors
///
/// The first problem, with its position.
pub fn from_yaml_str<T: serde::de::DeserializeOwned>(yaml: &str) -> Result<T, ConfigError> {
    let node = node::parse(yaml, &|_| None).map_err(|mut p| {
        let first = p.remove(0);
        ConfigError::at(first.pos, first.message)
    })?;
    from_node(&node)
}
