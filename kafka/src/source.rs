//! The `kafka` source: reads topics as a member of a consumer group.
//!
//! Any number of agents with the same `group_id` share the topics' partitions:
//! Kafka assigns each partition to one member and moves them when a member
//! joins, leaves or dies. That is how Sluice scales past one machine.
//!
//! # Delivery
//!
//! Records are collected into a batch (up to `batch_size`, or what arrived
//! within `batch_timeout`) and emitted; only once the channels accepted the
//! batch are its offsets committed. When partitions are revoked, the accepted
//! offsets of those partitions are committed at once and what was read from
//! them but not yet emitted is dropped, for the new owner to read (see
//! [`consume`](crate::consume)). A crash (`kill -9`) loses nothing: the group
//! re-reads from the last commit, so what was accepted after it arrives a
//! second time (at-least-once).
//!
//! Each event's body is the record's value; the record's topic, partition,
//! offset, key, timestamp and headers go into the `kafka` field.

use std::num::NonZeroUsize;
use std::sync::Arc;

use async_trait::async_trait;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use serde::Deserialize;
use sluice_core::prelude::*;

use crate::client::{client_config, Brokers, Format, Options};
use crate::consume::{Collector, Decode, GroupContext};

/// Where a group with no committed offset starts.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// The oldest record still in the topic.
    #[default]
    Earliest,
    /// Only records produced from now on.
    Latest,
}

impl StartFrom {
    fn name(self) -> &'static str {
        match self {
            StartFrom::Earliest => "earliest",
            StartFrom::Latest => "latest",
        }
    }
}

/// The `kafka` source's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bootstrap brokers, `host:port`: a list or a comma-separated string.
    pub brokers: Brokers,
    /// Topics to read.
    pub topics: Vec<String>,
    /// The consumer group: agents with the same group share the partitions.
    pub group_id: String,
    /// Where to start when the group has no committed offset: `earliest`
    /// (default) or `latest`.
    #[serde(default)]
    pub start_from: StartFrom,
    /// `text` (the value is the body) or `native` (events written by a
    /// `kafka` sink with `format: native`, fields and all).
    #[serde(default)]
    pub format: Format,
    /// Events per batch at most.
    #[serde(default = "sluice_core::defaults::batch_size")]
    pub batch_size: NonZeroUsize,
    /// How long to wait for a batch to fill before emitting what there is.
    #[serde(default = "default_batch_timeout")]
    pub batch_timeout: Duration,
    /// Whether to add the `kafka` field (topic, partition, offset, key,
    /// timestamp, headers).
    #[serde(default = "default_true")]
    pub metadata: bool,
    /// Further librdkafka consumer properties; they win over Sluice's.
    #[serde(default)]
    pub options: Options,
}

fn default_batch_timeout() -> Duration {
    Duration(std::time::Duration::from_millis(100))
}

fn default_true() -> bool {
    true
}

/// librdkafka settings for a group member that commits by itself.
pub(crate) fn consumer_defaults(group_id: &str, start_from: &str) -> Vec<(&'static str, String)> {
    vec![
        ("group.id", group_id.to_string()),
        ("enable.auto.commit", "false".into()),
        ("enable.auto.offset.store", "false".into()),
        ("auto.offset.reset", start_from.to_string()),
        ("session.timeout.ms", "10000".into()),
        ("heartbeat.interval.ms", "1000".into()),
        ("enable.partition.eof", "false".into()),
        // A topic created after the subscription is seen within seconds.
        ("topic.metadata.refresh.interval.ms", "5000".into()),
    ]
}

impl SourceConfig for Config {
    /// Its consumer group membership: a reload lets the old member leave
    /// before the new one joins, and never builds a consumer on trial.
    fn resources(&self, _cx: &BuildContext) -> Vec<Resource> {
        vec![Resource::ConsumerGroup(self.group_id.clone())]
    }
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        self.brokers.validate(&mut problems);
        if self.topics.is_empty() || self.topics.iter().any(String::is_empty) {
            problems.push(Problem::at("topics", "name at least one topic"));
        }
        if self.group_id.is_empty() {
            problems.push(Problem::at("group_id", "name the consumer group"));
        }
        if self.format == Format::Json {
            problems.push(Problem::at(
                "format",
                "a source reads `text` or `native`; parse JSON values with the `parse_json` processor",
            ));
        }
        problems.extend(self.batch_timeout.zero_problem("batch_timeout", "100ms"));
        problems
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let config = client_config(
            &self.brokers,
            &cx.id,
            &consumer_defaults(&self.group_id, self.start_from.name()),
            &self.options,
        );
        let context = GroupContext::new(&cx.id);
        let consumer: StreamConsumer<GroupContext> = config
            .create_with_context(context)
            .map_err(|e| BuildError::Other(format!("cannot create the Kafka consumer: {e}")))?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| BuildError::Other(format!("cannot subscribe to {topics:?}: {e}")))?;
        let decode = match self.format {
            Format::Native => Decode::Native {
                metadata: self.metadata,
            },
            _ => Decode::Text {
                metadata: self.metadata,
            },
        };
        Ok(Box::new(KafkaSource {
            consumer: Arc::new(consumer),
            decode,
            batch_size: self.batch_size.get(),
            batch_timeout: self.batch_timeout.get(),
        }))
    }
}

/// The running `kafka` source (see the [module docs](self)).
pub struct KafkaSource {
    consumer: Arc<StreamConsumer<GroupContext>>,
    decode: Decode,
    batch_size: usize,
    batch_timeout: std::time::Duration,
}

#[async_trait]
impl Source for KafkaSource {
    async fn run(self: Box<Self>, mut cx: SourceContext) -> Result<(), ComponentError> {
        let consumer = self.consumer;
        let ctx = consumer.context().clone();
        let mut collector = Collector::new(self.decode);
        let mut seen_revocations = ctx.revocations();
        let mut stopping = false;
        while !stopping {
            let deadline = tokio::time::Instant::now() + self.batch_timeout;
            while collector.len() < self.batch_size {
                tokio::select! {
                    biased;
                    _ = cx.shutdown.cancelled() => {
                        stopping = true;
                        break;
                    }
                    r = tokio::time::timeout_at(deadline, consumer.recv()) => {
                        // A rebalance runs inside `recv`: first drop what
                        // was read from partitions taken away, then keep
                        // the new record (read after the rebalance, it is
                        // valid even if its partition came back to us).
                        if ctx.revocations() != seen_revocations {
                            seen_revocations = ctx.revocations();
                            collector.drop_partitions(&ctx.take_revoked());
                        }
                        match r {
                            Err(_) => break,
                            Ok(Ok(m)) => collector.push(&m),
                            Ok(Err(e)) => ctx.warn(format_args!("reading from Kafka: {e}")),
                        }
                    }
                }
            }
            if ctx.revocations() != seen_revocations {
                seen_revocations = ctx.revocations();
                collector.drop_partitions(&ctx.take_revoked());
            }
            if collector.is_empty() {
                continue;
            }
            let (batch, span, bad, first_error) = collector.finish();
            if bad > 0 {
                cx.metrics.record_errors(bad);
                ctx.warn(format_args!(
                    "{bad} record(s) with malformed Sluice headers passed on as plain events; first: {}",
                    first_error.unwrap_or_default()
                ));
            }
            cx.emit(batch).await?;
            for (tp, (_, next)) in span {
                ctx.accept(tp, next);
            }
            let tpl = ctx.accepted_list();
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                ctx.warn(format_args!(
                    "committing offsets: {e}; retried with the next batch"
                ));
            }
        }
        // Stopping: commit what was accepted, synchronously, then leave the
        // group (dropping the consumer) so its partitions move at once.
        let tpl = ctx.accepted_list();
        if tpl.count() > 0 {
            let c = consumer.clone();
            let done = tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync)).await;
            if let Ok(Err(e)) = done {
                tracing::warn!(
                    "committing offsets at stop failed: {e}; the group reads them again"
                );
            }
        }
        tokio::task::spawn_blocking(move || drop(consumer))
            .await
            .map_err(|e| ComponentError::Other(format!("closing the consumer: {e}")))?;
        Ok(())
    }
}
