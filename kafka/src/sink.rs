//! The `kafka` sink: produces each event as a record to a Kafka topic.
//!
//! The producer is idempotent with `acks=all`: a record counts as delivered
//! only once every in-sync replica has it, and librdkafka's own retries never
//! write it twice or out of order. `write` returns only when every record of
//! the batch is acknowledged (see [`produce`](crate::produce)), so the runtime
//! commits the take only after the whole batch is in Kafka. A broker that is
//! away is waited for, with back-off: nothing is lost and, within a
//! partition, nothing is reordered.
//!
//! The topic is a template rendered per event (`logs-{service}`); the key,
//! when set, is the text of one field, so that events with the same key go to
//! the same partition and keep their order there.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use sluice_core::prelude::*;
use sluice_core::template::Template;

use crate::client::{client_config, Brokers, Compression, Format, Options};
use crate::codec;
use crate::produce::{millis, safe_defaults, Deliverer, Record};

/// The `kafka` sink's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bootstrap brokers, `host:port`: a list or a comma-separated string.
    pub brokers: Brokers,
    /// The topic, a template rendered per event (`logs-{service}`).
    pub topic: Template,
    /// A field whose text is the record key (same key, same partition);
    /// absent: no key, records are spread over the partitions.
    #[serde(default)]
    pub key: Option<String>,
    /// How an event becomes a record: `text` (the body), `json` (timestamp,
    /// message and fields as one JSON object) or `native` (body, with the
    /// timestamp and typed fields in headers, for a `kafka` source with
    /// `format: native`).
    #[serde(default)]
    pub format: Format,
    /// Compression of record batches: `none`, `gzip`, `snappy`, `lz4`.
    #[serde(default)]
    pub compression: Compression,
    /// How long the producer waits to fill a record batch.
    #[serde(default = "default_linger")]
    pub linger: Duration,
    /// Largest record batch sent to one partition.
    #[serde(default = "default_batch_bytes")]
    pub max_batch_bytes: ByteSize,
    /// Further librdkafka producer properties; they win over Sluice's.
    #[serde(default)]
    pub options: Options,
}

fn default_linger() -> Duration {
    Duration(std::time::Duration::from_millis(5))
}

fn default_batch_bytes() -> ByteSize {
    ByteSize(1 << 20)
}

impl SinkConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        self.brokers.validate(&mut problems);
        if self.topic.as_str().is_empty() {
            problems.push(Problem::at("topic", "name a topic"));
        } else if self.topic.is_static() {
            if let Some(why) = invalid_topic(self.topic.as_str()) {
                problems.push(Problem::at("topic", why));
            }
        }
        if self.key.as_deref() == Some("") {
            problems.push(Problem::at("key", "name a field, or leave `key` out"));
        }
        if self.max_batch_bytes.0 == 0 {
            problems.push(Problem::at("max_batch_bytes", "must be greater than 0"));
        }
        problems
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let config = client_config(
            &self.brokers,
            &cx.id,
            &safe_defaults(
                self.compression.name(),
                self.linger.get().as_millis() as u64,
                self.max_batch_bytes.0,
            ),
            &self.options,
        );
        let deliverer = Deliverer::new(&cx.id, config)
            .map_err(|e| BuildError::Other(format!("cannot create the Kafka producer: {e}")))?;
        Ok(Box::new(KafkaSink {
            topic: self.topic.clone(),
            key: self.key.clone(),
            format: self.format,
            deliverer,
            topics: Vec::new(),
            topic_index: HashMap::new(),
            records: Vec::new(),
            scratch: String::new(),
        }))
    }
}

/// The running `kafka` sink (see the [module docs](self)).
pub struct KafkaSink {
    topic: Template,
    key: Option<String>,
    format: Format,
    deliverer: Deliverer,
    /// This batch's distinct topics, in order of first appearance.
    topics: Vec<String>,
    topic_index: HashMap<String, usize>,
    /// This batch's records; the vector is reused.
    records: Vec<Record>,
    scratch: String,
}

impl KafkaSink {
    fn topic_of(&mut self, event: &Event) -> usize {
        if self.topic.is_static() {
            if self.topics.is_empty() {
                self.topics.push(self.topic.as_str().to_string());
            }
            return 0;
        }
        self.scratch.clear();
        self.topic.render(event, &mut self.scratch);
        if let Some(&i) = self.topic_index.get(self.scratch.as_str()) {
            return i;
        }
        let i = self.topics.len();
        self.topics.push(self.scratch.clone());
        self.topic_index.insert(self.scratch.clone(), i);
        i
    }

    /// Builds this batch's records; events whose topic renders to a name
    /// Kafka refuses ([`invalid_topic`]) are returned as rejected.
    fn records(&mut self, batch: &Batch) -> Vec<(usize, String)> {
        self.topics.clear();
        self.topic_index.clear();
        self.records.clear();
        let mut rejected = Vec::new();
        // The JSON of a whole batch goes into one buffer, sliced per record.
        let mut json = Vec::new();
        let mut json_ends = Vec::new();
        if self.format == Format::Json {
            for e in batch.iter() {
                write_json(e, &mut json);
                json_ends.push(json.len());
            }
        }
        let json = Bytes::from(json);
        let mut fields_buf = Vec::new();
        let mut fields_ends = Vec::new();
        if self.format == Format::Native {
            for e in batch.iter() {
                // Empty fields too: the header carries the format's version.
                codec::encode_fields(&e.fields, &mut fields_buf);
                fields_ends.push(fields_buf.len());
            }
        }
        let fields_buf = Bytes::from(fields_buf);
        for (i, e) in batch.iter().enumerate() {
            let topic = self.topic_of(e);
            if let Some(why) = invalid_topic(&self.topics[topic]) {
                rejected.push((
                    i,
                    format!(
                        "the topic template `{}` renders `{}` for this event: {why}",
                        self.topic, self.topics[topic]
                    ),
                ));
                continue;
            }
            let key = self.key.as_deref().and_then(|k| e.get(k)).map(|v| match v {
                Value::String(s) => s.clone(),
                other => Bytes::from(other.to_text().into_owned()),
            });
            let payload = match self.format {
                Format::Json => {
                    let start = if i == 0 { 0 } else { json_ends[i - 1] };
                    json.slice(start..json_ends[i])
                }
                _ => e.body.clone(),
            };
            let native = (self.format == Format::Native).then(|| {
                let start = if i == 0 { 0 } else { fields_ends[i - 1] };
                let end = fields_ends[i];
                (
                    e.timestamp.0,
                    (end > start).then(|| fields_buf.slice(start..end)),
                )
            });
            self.records.push(Record {
                topic,
                key,
                payload,
                timestamp_ms: millis(e.timestamp),
                native,
            });
        }
        rejected
    }
}

/// Why Kafka would refuse `topic` as a topic name, if it would: a name is
/// 1 to 249 characters from `a-z A-Z 0-9 . _ -`, and not `.` or `..`. A
/// broker refuses any other name whatever the retries, so an event whose
/// topic renders so is rejected before it is produced.
fn invalid_topic(topic: &str) -> Option<&'static str> {
    if topic.is_empty() {
        return Some("an empty topic name");
    }
    if topic.len() > 249 {
        return Some("a topic name is at most 249 characters");
    }
    if topic == "." || topic == ".." {
        return Some("`.` and `..` are not topic names");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Some("a topic name holds only letters, digits, `.`, `_` and `-`");
    }
    None
}

/// One JSON object: `timestamp` (RFC 3339), `message` (the body, lossily
/// UTF-8) and `fields`.
fn write_json(e: &Event, out: &mut Vec<u8>) {
    #[derive(serde::Serialize)]
    struct Json<'a> {
        timestamp: String,
        message: std::borrow::Cow<'a, str>,
        fields: &'a Fields,
    }
    let j = Json {
        timestamp: e.timestamp.to_string(),
        message: String::from_utf8_lossy(&e.body),
        fields: &e.fields,
    };
    // Serializing plain strings and values into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, &j);
}

#[async_trait]
impl Sink for KafkaSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut rejected = self.records(batch);
        if !self.records.is_empty() {
            // Record i of `records` is the i-th event not rejected above.
            let mut index = Vec::with_capacity(self.records.len());
            let mut skip = 0;
            for i in 0..batch.len() {
                if rejected.get(skip).is_some_and(|r| r.0 == i) {
                    skip += 1;
                } else {
                    index.push(i);
                }
            }
            let refused = self.deliverer.deliver(&self.topics, &self.records).await;
            rejected.extend(refused.into_iter().map(|(i, why)| (index[i], why)));
        }
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(SinkError::Rejected(rejected))
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.deliverer
            .flush()
            .await
            .map_err(|e| SinkError::Retry(format!("flushing the producer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_kafka_refuses_are_found_before_producing() {
        for ok in ["logs", "logs-web.v2_x", &"a".repeat(249)] {
            assert_eq!(invalid_topic(ok), None, "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "logs web",
            "logs/web",
            "lögs",
            &"a".repeat(250),
        ] {
            assert!(invalid_topic(bad).is_some(), "{bad}");
        }
        let c: Config =
            sluice_core::config::from_yaml_str("brokers: [localhost:9092]\ntopic: 'a b'\n")
                .unwrap();
        assert_eq!(c.validate().len(), 1);
        let c: Config =
            sluice_core::config::from_yaml_str("brokers: [localhost:9092]\ntopic: 'logs-{app}'\n")
                .unwrap();
        assert!(c.validate().is_empty());
    }
}
