//! Defaults that several components share, so that none imports another
//! component's: every source that cuts a stream into lines keeps lines up to
//! [`max_line_bytes`] and emits batches of at most [`batch_size`] events
//! unless its options say otherwise.
//!
//! The functions are for `#[serde(default = "...")]`:
//!
//! ```
//! use std::num::NonZeroUsize;
//! use sluice_core::config::ByteSize;
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     #[serde(default = "sluice_core::defaults::max_line_bytes")]
//!     max_line_bytes: ByteSize,
//!     #[serde(default = "sluice_core::defaults::batch_size")]
//!     batch_size: NonZeroUsize,
//! }
//! # let c: Config = serde_json::from_str("{}").unwrap();
//! # assert_eq!(c.batch_size.get(), sluice_core::defaults::BATCH_SIZE);
//! ```

use std::num::NonZeroUsize;

use crate::config::ByteSize;

/// Events per batch, for a source or a pipeline that does not say.
pub const BATCH_SIZE: usize = 1000;

/// The longest line kept, in bytes, for a source that does not say.
pub const MAX_LINE_BYTES: u64 = 1 << 20;

/// [`BATCH_SIZE`] as an option's default.
pub fn batch_size() -> NonZeroUsize {
    NonZeroUsize::new(BATCH_SIZE).unwrap_or(NonZeroUsize::MIN)
}

/// [`MAX_LINE_BYTES`] as an option's default.
pub fn max_line_bytes() -> ByteSize {
    ByteSize(MAX_LINE_BYTES)
}

/// [`DEFAULT_MAX_FIELDS`](crate::event::DEFAULT_MAX_FIELDS) as an option's
/// default (`max_fields` of the decoders that build fields from input).
pub fn max_fields() -> NonZeroUsize {
    NonZeroUsize::new(crate::event::DEFAULT_MAX_FIELDS).unwrap_or(NonZeroUsize::MIN)
}
