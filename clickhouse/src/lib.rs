//! # sluice-clickhouse
//!
//! The `clickhouse` sink of Sluice: events as rows of a ClickHouse table,
//! one `INSERT ... FORMAT JSONEachRow` over HTTP per batch, for logs that
//! outgrow one machine (a `Distributed` table spreads them over shards).
//!
//! * [`config`]: the options ([`config::Config`]), checked without I/O,
//!   and which event part goes to which column.
//! * [`encode`]: the column types the sink tells apart and how a value is
//!   written for each, into one buffer per batch.
//! * [`http`]: the HTTP/1.1 client: one connection, kept while in use,
//!   gzip bodies, basic auth, a time limit per request.
//! * [`sink`]: writing a batch, and what a refusal means: a server away is
//!   retried; rows the server refuses are found by bisecting the batch and
//!   rejected, the rest is inserted once.
//!
//! Only what ClickHouse 18.16 already had is used (the HTTP interface,
//! `JSONEachRow`, `DESCRIBE TABLE`, gzip request bodies, basic auth), so
//! every release since then works.
//!
//! ```
//! let mut registry = sluice_core::registry::Registry::new();
//! sluice_clickhouse::register(&mut registry).unwrap();
//! assert_eq!(registry.names("sink"), ["clickhouse"]);
//! ```

use sluice_core::registry::{DuplicateType, Registry};

pub mod config;
pub mod encode;
pub mod http;
pub mod sink;

/// Registers the `clickhouse` sink.
///
/// # Errors
///
/// When a sink named `clickhouse` is already registered.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateType> {
    registry.add_sink::<config::Config>("clickhouse")
}

#[cfg(test)]
mod tests;
