//! # sluice
//!
//! The `sluice` binary and the default component registry.
//!
//! [`registry`] returns a [`Registry`] holding every built-in source, channel,
//! processor and sink. A crate that adds its own components registers them
//! into that registry and hands it to [`cli::main`], which is the whole
//! command-line interface: `run`, `validate`, `test`, `graph`, `components`
//! and the rest.
//!
//! ```no_run
//! let registry = sluice::registry();
//! // registry.add_source::<MySourceConfig>("my_source").unwrap();
//! std::process::exit(sluice::cli::main(registry));
//! ```

pub mod cli;
pub mod graph;
pub mod settings;

pub use sluice_core::registry::Registry;

/// A registry of every built-in component type.
///
/// # Panics
///
/// Never in practice: the built-in crates register distinct names (a test
/// checks it).
pub fn registry() -> Registry {
    let mut r = Registry::new();
    try_register_builtins(&mut r).expect("built-in component names are distinct");
    r
}

/// Registers every built-in component type into `registry`.
///
/// # Errors
///
/// When one of the names is already taken.
pub fn try_register_builtins(
    registry: &mut Registry,
) -> Result<(), sluice_core::registry::DuplicateType> {
    sluice_sources::register(registry)?;
    sluice_channels::register(registry)?;
    sluice_processors::register(registry)?;
    sluice_sinks::register(registry)?;
    sluice_net::register(registry)?;
    sluice_anomaly::register(registry)?;
    sluice_store::register(registry)?;
    sluice_postgres::register(registry)?;
    sluice_kafka::register(registry)?;
    sluice_clickhouse::register(registry)?;
    Ok(())
}
