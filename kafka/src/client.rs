//! What every Kafka component shares: the connection options, the client
//! configuration handed to librdkafka, the record formats, and a back-off.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::Deserialize;
use sluice_core::config::{address_problem, AddressUse};
use sluice_core::prelude::*;

/// One or more bootstrap brokers, `host:port`, written as a list or as one
/// comma-separated string.
#[derive(Clone, Debug, Default)]
pub struct Brokers(pub Vec<String>);

impl<'de> Deserialize<'de> for Brokers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let list = match Raw::deserialize(d)? {
            Raw::One(s) => s.split(',').map(|b| b.trim().to_string()).collect(),
            Raw::Many(v) => v.into_iter().map(|b| b.trim().to_string()).collect(),
        };
        Ok(Brokers(list))
    }
}

impl Brokers {
    /// Problems with the list, reported against the `brokers` option.
    pub fn validate(&self, problems: &mut Vec<Problem>) {
        if self.0.is_empty() {
            problems.push(Problem::at(
                "brokers",
                "name at least one broker, such as `127.0.0.1:9092`",
            ));
        }
        for b in &self.0 {
            problems.extend(address_problem("brokers", b, AddressUse::Connect));
        }
    }
}

/// Further librdkafka properties given by the user (`options:`).
pub type Options = BTreeMap<String, String>;

/// A librdkafka configuration: the brokers, then `defaults` (Sluice's
/// settings for the component), then the user's `options`, which win.
pub fn client_config(
    brokers: &Brokers,
    id: &str,
    defaults: &[(&str, String)],
    options: &Options,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers.0.join(","))
        .set("client.id", format!("sluice-{id}"));
    for (k, v) in defaults {
        c.set(*k, v.as_str());
    }
    for (k, v) in options {
        c.set(k.as_str(), v.as_str());
    }
    c
}

/// How events are laid out in Kafka records.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The record's value is the body; nothing else travels.
    #[default]
    Text,
    /// The value is one JSON object: `timestamp`, `message` (the body) and
    /// `fields`, as the `file` sink writes it. (Sink only.)
    Json,
    /// The value is the body, the timestamp and typed fields travel in
    /// headers (see [`codec`](crate::codec)): a `kafka` source with
    /// `format: native` gets back the very event.
    Native,
}

/// Compression of produced record batches.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4 (the default: cheap and effective on log lines).
    #[default]
    Lz4,
}

impl Compression {
    /// The librdkafka name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
        }
    }
}

/// Exponential back-off between retries: 100 ms doubling up to 5 s.
pub(crate) struct Backoff {
    next: std::time::Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff {
            next: std::time::Duration::from_millis(100),
        }
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(std::time::Duration::from_secs(5));
    }
}
