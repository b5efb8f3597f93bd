//! # sluice-postgres
//!
//! The `postgres` sink of Sluice: events into a PostgreSQL table, one
//! transaction per batch, for teams that already run a database.
//!
//! * [`sink`]: the sink, its options ([`sink::Config`]) and how it handles
//!   a lost connection (retry after back-off, reconnect) and a refused row
//!   (rejected alone; the rest of the batch is committed).
//!
//! ```
//! let mut registry = sluice_core::registry::Registry::new();
//! sluice_postgres::register(&mut registry).unwrap();
//! assert_eq!(registry.names("sink"), ["postgres"]);
//! ```

use sluice_core::registry::{DuplicateType, Registry};

pub mod sink;

/// Registers the `postgres` sink.
///
/// # Errors
///
/// When a sink named `postgres` is already registered.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateType> {
    registry.add_sink::<sink::Config>("postgres")
}
