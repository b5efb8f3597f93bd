//! # sluice-store
//!
//! The embedded searchable log store of Sluice: a sink that writes events
//! into a [tantivy](https://docs.rs/tantivy) index on the local disk, and the
//! search over it that `sluice search` runs.
//!
//! * [`sink`]: the `store` sink. One index commit per batch; the channel's
//!   take is committed only after it. Retention by age and size. With
//!   `dedupe_by`, re-delivered events replace themselves.
//! * [`search`](mod@search): [`StoreReader`] opens an index read-only and
//!   answers queries (newest first, or counts per time bucket) as a
//!   [`SearchResult`] that serializes to JSON; [`search()`] is the one-call
//!   form.
//! * [`schema`]: the index layout shared by both.
//!
//! ```
//! let mut registry = sluice_core::registry::Registry::new();
//! sluice_store::register(&mut registry).unwrap();
//! assert_eq!(registry.names("sink"), ["store"]);
//! ```

use sluice_core::registry::{DuplicateType, Registry};

pub mod route;
pub mod schema;
pub mod search;
pub mod sink;

pub use search::{search, Bucket, Hit, OptionError, SearchOptions, SearchResult, StoreReader};

#[cfg(test)]
mod tests;

/// What went wrong with a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The index cannot be opened (missing, or not a store).
    #[error("cannot open the store: {0}")]
    Open(String),
    /// The query is not valid.
    #[error("bad query: {0}")]
    Query(String),
    /// Reading or writing the index failed.
    #[error("{0}")]
    Io(String),
}

/// Registers the `store` sink.
///
/// # Errors
///
/// When a sink named `store` is already registered.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateType> {
    registry.add_sink::<sink::Config>("store")
}
