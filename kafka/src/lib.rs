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

#[cfg(test)]
mod tests {
    use sluice_core::config::from_yaml_str;
    use sluice_core::registry::{ChannelConfig, SinkConfig, SourceConfig};

    use crate::client::{Compression, Format};

    #[test]
    fn sink_config_parses_and_rejects_unknown_keys_and_bad_brokers() {
        let c: crate::sink::Config = from_yaml_str(
            "brokers: [a:9092, b:9092]\ntopic: logs-{service}\nkey: host\nformat: native\ncompression: gzip\nlinger: 20ms\n",
        )
        .unwrap();
        assert_eq!(c.brokers.0, ["a:9092", "b:9092"]);
        assert_eq!(
            (c.format, c.compression),
            (Format::Native, Compression::Gzip)
        );
        assert!(c.validate().is_empty());
        let c: crate::sink::Config = from_yaml_str("brokers: 'a:1, b:2'\ntopic: t\n").unwrap();
        assert_eq!(c.brokers.0, ["a:1", "b:2"]);
        assert_eq!(c.compression, Compression::Lz4);
        let c: crate::sink::Config = from_yaml_str("brokers: nohost\ntopic: t\n").unwrap();
        assert_eq!(c.validate()[0].key.as_deref(), Some("brokers"));
        let e = from_yaml_str::<crate::sink::Config>("brokers: a:1\ntopic: t\nacks: 1\n")
            .expect_err("unknown key");
        assert!(e.to_string().contains("acks"), "{e}");
    }

    #[test]
    fn source_and_channel_configs_validate() {
        let c: crate::source::Config =
            from_yaml_str("brokers: a:1\ntopics: [x]\ngroup_id: g\nstart_from: latest\n").unwrap();
        assert!(c.validate().is_empty());
        let c: crate::source::Config =
            from_yaml_str("brokers: a:1\ntopics: []\ngroup_id: ''\nformat: json\n").unwrap();
        let keys: Vec<_> = c.validate().into_iter().filter_map(|p| p.key).collect();
        assert_eq!(keys, ["topics", "group_id", "format"]);
        assert!(from_yaml_str::<crate::source::Config>("brokers: a:1\ntopics: [x]\n").is_err());
        let c: crate::channel::Config = from_yaml_str("brokers: a:1\ntopic: buf\n").unwrap();
        assert!(c.validate().is_empty());
        let c: crate::channel::Config = from_yaml_str("brokers: []\ntopic: ''\n").unwrap();
        assert_eq!(c.validate().len(), 2);
    }
}
