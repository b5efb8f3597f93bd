//! # sluice-channels
//!
//! The built-in channels of Sluice. A channel is the only edge between two
//! tasks of a pipeline: bounded, transactional (take, then commit or roll
//! back), as described by [`sluice_core::channel::Channel`].
//!
//! * [`memory`]: events held in memory, bounded by events and bytes. Fast;
//!   nothing is lost on a graceful stop, but a crash loses what it held.
//! * [`disk`]: a segmented write-ahead log under the pipeline's `data_dir`;
//!   what it accepted survives a crash, and taken but uncommitted events are
//!   delivered again after a restart.
//!
//! [`register`] lists every channel type this crate provides.
//!
//! ```
//! let mut registry = sluice_core::registry::Registry::new();
//! sluice_channels::register(&mut registry).unwrap();
//! assert!(registry.channel("memory").is_some());
//! ```

pub mod disk;
pub mod memory;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use sluice_core::registry::{DuplicateType, Registry};

/// Registers every channel type of this crate under its YAML `type`.
///
/// # Errors
///
/// When a type of the same name is already registered.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateType> {
    registry.add_channel::<memory::MemoryConfig>("memory")?;
    registry.add_channel::<disk::DiskConfig>("disk")?;
    Ok(())
}
