//! The `kafka` channel: a durable channel kept in a Kafka topic, as Flume's
//! Kafka channel.
//!
//! * `put` produces the batch to the topic in the `native` format (body,
//!   timestamp and typed fields survive) with an idempotent `acks=all`
//!   producer, and returns once every record is acknowledged: what `put`
//!   accepted survives a crash of the agent, and of the broker as far as its
//!   replication goes.
//! * `take` reads from the topic as a member of the channel's consumer group.
//! * `commit` commits the consumer offsets past the taken records.
//! * `rollback` seeks back to the first taken offset of each partition, so
//!   the records are read again.
//!
//! Several agents running a pipeline with the same channel share it: their
//! puts go to one topic, and their takes split its partitions through the
//! consumer group (one partition is read by one agent at a time). A crash
//! after a take and before its commit makes the group read those records
//! again: at-least-once.
//!
//! When the channel is closed (the pipeline's sources have ended), `take`
//! returns `None` once this member has read every partition assigned to it
//! up to its end. Holding no partition, it returns `None` once the group has
//! committed every record, or after `drain_wait` (other members hold the
//! partitions and keep reading them). What stays in the topic is kept there
//! for the next run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use sluice_core::prelude::*;

use crate::client::{client_config, Brokers, Compression, Options};
use crate::codec;
use crate::consume::{Collector, Decode, GroupContext, Span};
use crate::produce::{millis, safe_defaults, Deliverer, Record};
use crate::source::{consumer_defaults, StartFrom};

/// The `kafka` channel's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bootstrap brokers, `host:port`: a list or a comma-separated string.
    pub brokers: Brokers,
    /// The topic holding the channel's events.
    pub topic: String,
    /// The consumer group of the channel's readers; default
    /// `sluice-channel-<topic>`. Agents sharing the channel use the same.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Where a group with no committed offset starts: `earliest` (default)
    /// or `latest`.
    #[serde(default)]
    pub start_from: StartFrom,
    /// Compression of record batches: `none`, `gzip`, `snappy`, `lz4`.
    #[serde(default)]
    pub compression: Compression,
    /// How long the producer waits to fill a record batch.
    #[serde(default = "default_linger")]
    pub linger: Duration,
    /// How long a closed channel whose reader holds no partition, while the
    /// group has records left to read, waits for one before it reports
    /// itself drained.
    #[serde(default = "default_drain_wait")]
    pub drain_wait: Duration,
    /// Further librdkafka properties for both the producer and the consumer.
    #[serde(default)]
    pub options: Options,
}

fn default_linger() -> Duration {
    Duration(StdDuration::from_millis(5))
}

fn default_drain_wait() -> Duration {
    Duration(StdDuration::from_secs(20))
}

impl ChannelConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        self.brokers.validate(&mut problems);
        if self.topic.is_empty() {
            problems.push(Problem::at("topic", "name a topic"));
        }
        if self.group_id.as_deref() == Some("") {
            problems.push(Problem::at("group_id", "name a group, or leave it out"));
        }
        problems
    }

    fn build(&self, cx: &BuildContext) -> Result<Arc<dyn Channel>, BuildError> {
        let producer = client_config(
            &self.brokers,
            &cx.id,
            &safe_defaults(
                self.compression.name(),
                self.linger.get().as_millis() as u64,
                1 << 20,
            ),
            &self.options,
        );
        let deliverer = Deliverer::new(&cx.id, producer)
            .map_err(|e| BuildError::Other(format!("cannot create the Kafka producer: {e}")))?;
        let group = self
            .group_id
            .clone()
            .unwrap_or_else(|| format!("sluice-channel-{}", self.topic));
        let consumer: StreamConsumer<GroupContext> = client_config(
            &self.brokers,
            &cx.id,
            &consumer_defaults(
                &group,
                match self.start_from {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            ),
            &self.options,
        )
        .create_with_context(GroupContext::new(&cx.id))
        .map_err(|e| BuildError::Other(format!("cannot create the Kafka consumer: {e}")))?;
        consumer
            .subscribe(&[self.topic.as_str()])
            .map_err(|e| BuildError::Other(format!("cannot subscribe to `{}`: {e}", self.topic)))?;
        Ok(Arc::new(KafkaChannel {
            topics: vec![self.topic.clone()],
            deliverer: tokio::sync::Mutex::new(deliverer),
            consumer: Arc::new(consumer),
            reader: tokio::sync::Mutex::new(Reader {
                collector: Collector::new(Decode::Native { metadata: false }),
                closed_at: None,
                seen_revocations: 0,
            }),
            shared: Arc::new(Shared::default()),
            drain_wait: self.drain_wait.get(),
        }))
    }
}

/// Counters shared with transactions.
#[derive(Default)]
struct Shared {
    in_flight: AtomicU64,
    put_events: AtomicU64,
    committed_events: AtomicU64,
    closed: AtomicBool,
}

struct Reader {
    collector: Collector,
    /// When `take` first saw the channel closed.
    closed_at: Option<Instant>,
    /// The revocation count last handled.
    seen_revocations: u64,
}

/// The running `kafka` channel (see the [module docs](self)).
pub struct KafkaChannel {
    topics: Vec<String>,
    deliverer: tokio::sync::Mutex<Deliverer>,
    consumer: Arc<StreamConsumer<GroupContext>>,
    reader: tokio::sync::Mutex<Reader>,
    shared: Arc<Shared>,
    drain_wait: StdDuration,
}

/// How long a take waits for more records once it has one.
const FILL_WAIT: StdDuration = StdDuration::from_millis(100);
/// How often a take on a closed channel checks whether it is drained.
const DRAIN_CHECK: StdDuration = StdDuration::from_millis(500);

impl KafkaChannel {
    /// Whether this member has read every partition assigned to it to its
    /// end. Holding none (the group has not yet given it any, or others hold
    /// them all), whether the group as a whole has committed everything, or
    /// `drain_wait` has passed.
    async fn drained(&self, closed_at: Instant) -> bool {
        let consumer = self.consumer.clone();
        let topic = self.topics[0].clone();
        let wait = self.drain_wait;
        let check = tokio::task::spawn_blocking(move || -> Result<bool, String> {
            let timeout = StdDuration::from_secs(5);
            let assignment = consumer.assignment().map_err(|e| e.to_string())?;
            let holding = assignment.count() > 0;
            let (partitions, positions) = if !holding {
                // The group's committed offsets for every partition.
                let md = consumer
                    .fetch_metadata(Some(&topic), timeout)
                    .map_err(|e| e.to_string())?;
                let mut all = TopicPartitionList::new();
                for t in md.topics() {
                    for p in t.partitions() {
                        all.add_partition(t.name(), p.id());
                    }
                }
                (all, TopicPartitionList::new())
            } else {
                (assignment, consumer.position().map_err(|e| e.to_string())?)
            };
            let committed = consumer
                .committed_offsets(partitions.clone(), timeout)
                .map_err(|e| e.to_string())?;
            for el in partitions.elements() {
                let (t, p) = (el.topic(), el.partition());
                let (low, high) = consumer
                    .fetch_watermarks(t, p, timeout)
                    .map_err(|e| e.to_string())?;
                let at =
                    |tpl: &TopicPartitionList| match tpl.find_partition(t, p).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => Some(o),
                        _ => None,
                    };
                let pos = at(&positions).or_else(|| at(&committed)).unwrap_or(low);
                if pos < high {
                    // Records left: ours to read, or, holding nothing, for
                    // the group to hand us or for others to read.
                    return Ok(!holding && closed_at.elapsed() >= wait);
                }
            }
            Ok(true)
        });
        match check.await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                self.consumer
                    .context()
                    .warn(format_args!("checking whether the channel is drained: {e}"));
                false
            }
            Err(_) => false,
        }
    }
}

#[async_trait]
impl Channel for KafkaChannel {
    async fn put(&self, batch: Batch) -> Result<(), ChannelError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(ChannelError::Closed(batch));
        }
        let mut fields = Vec::new();
        let mut ends = Vec::with_capacity(batch.len());
        for e in batch.iter() {
            // Empty fields too: the header carries the format's version.
            codec::encode_fields(&e.fields, &mut fields);
            ends.push(fields.len());
        }
        let fields = bytes::Bytes::from(fields);
        let mut start = 0;
        let records: Vec<Record> = batch
            .iter()
            .zip(&ends)
            .map(|(e, &end)| {
                let f = (end > start).then(|| fields.slice(start..end));
                start = end;
                Record {
                    topic: 0,
                    key: None,
                    payload: e.body.clone(),
                    timestamp_ms: millis(e.timestamp),
                    native: Some((e.timestamp.0, f)),
                }
            })
            .collect();
        let refused = self
            .deliverer
            .lock()
            .await
            .deliver(&self.topics, &records)
            .await;
        if let Some((i, why)) = refused.first() {
            return Err(ChannelError::Other(format!(
                "Kafka refused {} event(s) for good (event {i}: {why})",
                refused.len()
            )));
        }
        self.shared
            .put_events
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn take(&self, max: usize) -> Result<Option<Transaction>, ChannelError> {
        let max = max.max(1);
        let mut reader = self.reader.lock().await;
        let ctx = self.consumer.context().clone();
        loop {
            let wait = if reader.collector.is_empty() {
                DRAIN_CHECK
            } else {
                FILL_WAIT
            };
            let r = tokio::time::timeout(wait, self.consumer.recv()).await;
            // A rebalance runs inside `recv`: first drop what was read from
            // partitions taken away, then keep the new record (read after
            // the rebalance, it is valid even if its partition came back).
            if ctx.revocations() != reader.seen_revocations {
                reader.seen_revocations = ctx.revocations();
                reader.collector.drop_partitions(&ctx.take_revoked());
            }
            match r {
                Ok(Ok(m)) => reader.collector.push(&m),
                Ok(Err(e)) => ctx.warn(format_args!("reading from Kafka: {e}")),
                Err(_) => {
                    if !reader.collector.is_empty() {
                        break;
                    }
                    if self.shared.closed.load(Ordering::Acquire)
                        && self.shared.in_flight.load(Ordering::Acquire) == 0
                    {
                        let closed_at = *reader.closed_at.get_or_insert_with(Instant::now);
                        if self.drained(closed_at).await {
                            return Ok(None);
                        }
                    }
                }
            }
            if reader.collector.len() >= max {
                break;
            }
        }
        let (batch, span, bad, first_error) = reader.collector.finish();
        if bad > 0 {
            ctx.warn(format_args!(
                "{bad} record(s) with malformed Sluice headers taken as plain events; first: {}",
                first_error.unwrap_or_default()
            ));
        }
        self.shared
            .in_flight
            .fetch_add(batch.len() as u64, Ordering::AcqRel);
        let handle = Handle {
            consumer: self.consumer.clone(),
            shared: self.shared.clone(),
            events: batch.len() as u64,
            span,
        };
        Ok(Some(Transaction::new(batch, Box::new(handle))))
    }

    fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
    }

    fn stats(&self) -> ChannelStats {
        ChannelStats {
            events: self.shared.in_flight.load(Ordering::Relaxed),
            bytes: 0,
            capacity: None,
            max_bytes: None,
            put_events: self.shared.put_events.load(Ordering::Relaxed),
            committed_events: self.shared.committed_events.load(Ordering::Relaxed),
            discarded_events: 0,
        }
    }

    fn is_durable(&self) -> bool {
        true
    }
}

/// A take's records: the offsets to commit or to seek back to.
struct Handle {
    consumer: Arc<StreamConsumer<GroupContext>>,
    shared: Arc<Shared>,
    events: u64,
    span: Span,
}

#[async_trait]
impl TransactionHandle for Handle {
    async fn commit(self: Box<Self>) -> Result<(), ChannelError> {
        let Handle {
            consumer,
            shared,
            events,
            span,
        } = *self;
        let ctx = consumer.context().clone();
        let mut tpl = TopicPartitionList::with_capacity(span.len());
        for ((t, p), (_, next)) in span {
            let _ = tpl.add_partition_offset(&t, p, Offset::Offset(next));
            ctx.accept((t, p), next);
        }
        let c = consumer.clone();
        let result = tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync)).await;
        shared.in_flight.fetch_sub(events, Ordering::AcqRel);
        match result {
            Ok(Ok(())) => {
                shared.committed_events.fetch_add(events, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => Err(ChannelError::Other(format!(
                "committing offsets: {e}; the records may be read again"
            ))),
            Err(e) => Err(ChannelError::Other(format!("committing offsets: {e}"))),
        }
    }

    fn rollback(self: Box<Self>, _batch: Option<Batch>) {
        for ((t, p), (first, _)) in &self.span {
            if let Err(e) = self
                .consumer
                .seek(t, *p, Offset::Offset(*first), StdDuration::ZERO)
            {
                // The partition moved to another member: it reads from the
                // committed offset, which is before these records.
                tracing::debug!("seek back in {t}/{p} failed: {e}");
            }
        }
        self.shared
            .in_flight
            .fetch_sub(self.events, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod conformance {
    use std::sync::Arc;

    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use sluice_channels::testing::{one_writer_one_reader, Rng, Run};
    use sluice_runtime::testing::processor::{config, cx};

    use super::*;

    /// The broker the tests run against; `scripts/test.sh` starts one.
    fn brokers() -> String {
        std::env::var("SLUICE_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
            panic!(
                "SLUICE_TEST_KAFKA_BROKERS is not set: the kafka channel is checked against a \
                 real broker (scripts/test.sh starts one and sets it)"
            )
        })
    }

    async fn create_topic(brokers: &str, name: &str) {
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .expect("admin client");
        let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(StdDuration::from_secs(30)));
        for r in admin
            .create_topics([&topic], &opts)
            .await
            .expect("create topics")
        {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
    }

    fn batch(range: std::ops::Range<u32>) -> Batch {
        range
            .map(|i| Event::new(i.to_string(), Timestamp(i64::from(i))))
            .collect::<Vec<_>>()
            .into()
    }

    fn numbers(b: &Batch) -> Vec<u32> {
        b.iter()
            .map(|e| {
                std::str::from_utf8(&e.body)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u32::MAX)
            })
            .collect()
    }

    /// The randomized check of the memory and disk channels, on a one-
    /// partition topic of a real broker: random puts, takes, commits and
    /// rollbacks (seeking back) lose, duplicate and reorder nothing, and the
    /// drained channel counts nothing in flight.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_randomized_channel_check_passes_on_a_real_broker() {
        let brokers = brokers();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for seed in 1..=3u64 {
            let topic = format!("sluice-conformance-{seed}-{}-{nanos}", std::process::id());
            create_topic(&brokers, &topic).await;
            let c: Config = config(&format!(
                "brokers: {brokers}\ntopic: {topic}\ndrain_wait: 30s\nlinger: 1ms"
            ));
            assert!(c.validate().is_empty());
            let ch = ChannelConfig::build(&c, &cx()).expect("build");
            let run = Run {
                seed,
                total: 3000,
                max_put: 200,
                max_take: 300,
                rollback_without_batch: seed % 2 == 0,
            };
            let mut rng = Rng(seed * 7919);
            one_writer_one_reader(
                Arc::new(ChannelRef(ch)),
                &mut rng,
                &run,
                batch,
                numbers,
                |s| {
                    assert!(s.events <= u64::from(run.total), "{s:?}");
                },
            )
            .await;
        }
    }

    /// `Arc<dyn Channel>` as a `Channel` (the check takes a concrete type).
    struct ChannelRef(Arc<dyn Channel>);

    #[async_trait]
    impl Channel for ChannelRef {
        async fn put(&self, batch: Batch) -> Result<(), ChannelError> {
            self.0.put(batch).await
        }
        async fn take(&self, max: usize) -> Result<Option<Transaction>, ChannelError> {
            self.0.take(max).await
        }
        fn close(&self) {
            self.0.close()
        }
        fn stats(&self) -> ChannelStats {
            self.0.stats()
        }
    }
}
