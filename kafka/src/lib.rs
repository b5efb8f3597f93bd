//! # sluice-kafka
//!
//! Kafka for Sluice, on librdkafka: how a pipeline reaches past one machine.
//!
//! * [`sink`]: the `kafka` sink produces events to a topic (templated from
//!   fields) with an idempotent `acks=all` producer; a take is committed only
//!   once every record of the batch is acknowledged.
//! * [`source`]: the `kafka` source reads topics in a consumer group; offsets
//!   are committed only after the channels accepted the batch, and revoked
//!   partitions are handed over cleanly.
//! * [`channel`]: the `kafka` channel keeps a pipeline's channel in a topic:
//!   put = produce, take = consume, commit = offset commit.
//!
//! [`produce`] and [`consume`] hold what these share; [`codec`] is the
//! `native` record format that carries whole events (typed fields and all).
//!
//! ```
//! let mut registry = sluice_core::registry::Registry::new();
//! sluice_kafka::register(&mut registry).unwrap();
//! assert!(registry.sink("kafka").is_some());
//! assert!(registry.source("kafka").is_some());
//! assert!(registry.channel("kafka").is_some());
//! ```

pub mod channel;
pub mod client;
pub mod codec;
pub mod consume;
pub mod produce;
pub mod sink;
pub mod source;

use sluice_core::registry::{DuplicateType, Registry};

/// Registers the `kafka` source, sink and channel.
///
/// # Errors
///
/// When a type of the same name is already registered.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateType> {
    registry.add_source::<source::Config>("kafka")?;
    registry.add_sink::<sink::Config>("kafka")?;
    registry.add_channel::<channel::Config>("kafka")?;
    Ok(())
}
