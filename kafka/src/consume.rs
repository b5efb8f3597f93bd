//! What the source and the channel share on the consuming side: the
//! consumer-group context that commits on revocation, and the collector that
//! turns records into events.
//!
//! # Offsets and rebalances
//!
//! A reader records in [`GroupContext::accept`] the next offset of each
//! partition whose records were accepted downstream, and commits those
//! offsets. When the group takes partitions away from this member (another
//! agent joined, or this one is leaving), librdkafka calls
//! [`pre_rebalance`](ConsumerContext::pre_rebalance) before giving them up:
//! the accepted offsets of those partitions are committed there,
//! synchronously, and the partitions are listed as revoked so that the
//! reader drops what it has read from them but not passed on. Their new owner
//! starts from the committed offset and reads that again: nothing accepted is
//! read twice by the group, nothing read but not accepted is lost.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers as _, Message as _};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice_core::prelude::*;

use crate::codec;
use sluice_core::warn::WarnLimiter;

/// A topic and partition.
pub(crate) type Tp = (String, i32);

/// The consumer's context (see the module docs).
pub(crate) struct GroupContext {
    id: String,
    /// Next offset per partition of records accepted downstream, not yet
    /// known to be committed.
    accepted: Mutex<HashMap<Tp, i64>>,
    /// Partitions taken away since the reader last looked.
    revoked: Mutex<HashSet<Tp>>,
    /// Bumped at every revocation, so that the reader checks `revoked` only
    /// when it changed.
    revocations: AtomicU64,
    warn: Mutex<WarnLimiter>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GroupContext {
    pub(crate) fn new(id: &str) -> Self {
        GroupContext {
            id: id.to_string(),
            accepted: Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashSet::new()),
            revocations: AtomicU64::new(0),
            warn: Mutex::new(WarnLimiter::every(std::time::Duration::from_secs(5))),
        }
    }

    /// Records that everything before `next` in `tp` was accepted.
    pub(crate) fn accept(&self, tp: Tp, next: i64) {
        let mut a = lock(&self.accepted);
        let e = a.entry(tp).or_insert(next);
        *e = (*e).max(next);
    }

    /// The accepted offsets, as a list to commit.
    pub(crate) fn accepted_list(&self) -> TopicPartitionList {
        let a = lock(&self.accepted);
        let mut tpl = TopicPartitionList::with_capacity(a.len());
        for ((t, p), o) in a.iter() {
            let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
        }
        tpl
    }

    /// The revocation counter (cheap to poll).
    pub(crate) fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::Acquire)
    }

    /// The partitions revoked since the last call.
    pub(crate) fn take_revoked(&self) -> HashSet<Tp> {
        std::mem::take(&mut *lock(&self.revoked))
    }

    pub(crate) fn warn(&self, what: std::fmt::Arguments<'_>) {
        if let Some(held) = lock(&self.warn).allow() {
            // Errors may quote what the broker or a record held.
            let what = what.to_string();
            tracing::warn!(id = %self.id, held_back_warnings = held, "{}", sluice_core::quote::quoted(&what).max(1000));
        }
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning => {
                self.warn(format_args!("librdkafka {fac}: {message}"))
            }
            _ => tracing::debug!(id = %self.id, "librdkafka {fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.warn(format_args!("Kafka client error: {error}: {reason}"));
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let mut commit = TopicPartitionList::new();
        let mut gone = Vec::new();
        {
            let mut accepted = lock(&self.accepted);
            for el in tpl.elements() {
                let tp = (el.topic().to_string(), el.partition());
                if let Some(o) = accepted.remove(&tp) {
                    let _ = commit.add_partition_offset(&tp.0, tp.1, Offset::Offset(o));
                }
                gone.push(tp);
            }
        }
        if commit.count() > 0 {
            if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                self.warn(format_args!(
                    "committing offsets of revoked partitions failed: {e}; their new owner reads them again"
                ));
            }
        }
        tracing::info!(id = %self.id, partitions = gone.len(), "partitions revoked");
        lock(&self.revoked).extend(gone);
        self.revocations.fetch_add(1, Ordering::AcqRel);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(id = %self.id, partitions = tpl.count(), "partitions assigned");
        }
    }
}

/// How records become events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decode {
    /// Body = value; the record's metadata goes into a `kafka` field.
    Text { metadata: bool },
    /// The event as a `native` producer wrote it, plus (optionally) the
    /// record's metadata in a `kafka` field.
    Native { metadata: bool },
}

/// One record read but not yet turned into an event.
struct Pending {
    topic: usize,
    partition: i32,
    offset: i64,
    /// Kafka timestamp (ms), when the record has one.
    timestamp_ms: Option<i64>,
    /// Ranges into the collector's buffer.
    payload: std::ops::Range<usize>,
    key: Option<std::ops::Range<usize>>,
    /// Header names and value ranges (other than Sluice's own).
    headers: Vec<(String, std::ops::Range<usize>)>,
    native_ts: Option<i64>,
    native_fields: Option<std::ops::Range<usize>>,
}

/// Collects records into one buffer and turns them into a batch with one
/// allocation for all bodies.
pub(crate) struct Collector {
    decode: Decode,
    buf: BytesMut,
    pending: Vec<Pending>,
    topics: Vec<(String, Bytes)>,
}

/// Where a batch's records came from: first and next offset per partition.
pub(crate) type Span = HashMap<Tp, (i64, i64)>;

impl Collector {
    pub(crate) fn new(decode: Decode) -> Self {
        Collector {
            decode,
            buf: BytesMut::new(),
            pending: Vec::new(),
            topics: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn copy(&mut self, bytes: &[u8]) -> std::ops::Range<usize> {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        start..self.buf.len()
    }

    /// Copies a record in.
    pub(crate) fn push(&mut self, m: &BorrowedMessage<'_>) {
        let topic = match self.topics.iter().position(|(t, _)| t == m.topic()) {
            Some(i) => i,
            None => {
                let t = m.topic().to_string();
                self.topics.push((t.clone(), Bytes::from(t)));
                self.topics.len() - 1
            }
        };
        let payload = self.copy(m.payload().unwrap_or_default());
        let key = m.key().map(|k| self.copy(k));
        let mut headers = Vec::new();
        let mut native_ts = None;
        let mut native_fields = None;
        let native = matches!(self.decode, Decode::Native { .. });
        if let Some(hs) = m.headers() {
            for h in hs.iter() {
                let value = h.value.unwrap_or_default();
                if native && h.key == codec::TIMESTAMP_HEADER && value.len() == 8 {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(value);
                    native_ts = Some(i64::from_be_bytes(a));
                } else if native && h.key == codec::FIELDS_HEADER {
                    native_fields = Some(self.copy(value));
                } else {
                    let r = self.copy(value);
                    headers.push((h.key.to_string(), r));
                }
            }
        }
        self.pending.push(Pending {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis(),
            payload,
            key,
            headers,
            native_ts,
            native_fields,
        });
    }

    /// Forgets the records of the given partitions.
    pub(crate) fn drop_partitions(&mut self, gone: &HashSet<Tp>) {
        let topics = &self.topics;
        self.pending
            .retain(|p| !gone.contains(&(topics[p.topic].0.clone(), p.partition)));
    }

    /// Turns what was collected into a batch, and tells which offsets it
    /// spans. Records whose Sluice headers are malformed still become events
    /// (body and metadata); their number is returned with the first error.
    pub(crate) fn finish(&mut self) -> (Batch, Span, usize, Option<String>) {
        let buf = std::mem::take(&mut self.buf).freeze();
        let mut batch = Batch::with_capacity(self.pending.len());
        let mut span: Span = HashMap::new();
        let mut bad = 0;
        let mut first_error = None;
        let (native, metadata) = match self.decode {
            Decode::Text { metadata } => (false, metadata),
            Decode::Native { metadata } => (true, metadata),
        };
        for p in self.pending.drain(..) {
            let (topic, topic_bytes) = &self.topics[p.topic];
            let e = span
                .entry((topic.clone(), p.partition))
                .or_insert((p.offset, p.offset + 1));
            e.0 = e.0.min(p.offset);
            e.1 = e.1.max(p.offset + 1);
            let kafka_ts = p
                .timestamp_ms
                .map(|ms| Timestamp(ms.saturating_mul(1_000_000)));
            let ts = p
                .native_ts
                .map(Timestamp)
                .or(kafka_ts)
                .unwrap_or_else(Timestamp::now);
            let mut event = Event::new(buf.slice(p.payload), ts);
            if native {
                if let Some(r) = p.native_fields {
                    match codec::decode_fields(&buf.slice(r)) {
                        Ok(f) => event.fields = f,
                        Err(err) => {
                            bad += 1;
                            first_error.get_or_insert_with(|| {
                                format!("{topic}/{}@{}: {err}", p.partition, p.offset)
                            });
                        }
                    }
                }
            }
            if metadata {
                let mut k = Fields::with_capacity(6);
                k.insert("topic", Value::String(topic_bytes.clone()));
                k.insert("partition", Value::Integer(i64::from(p.partition)));
                k.insert("offset", Value::Integer(p.offset));
                if let Some(r) = p.key {
                    k.insert("key", Value::String(buf.slice(r)));
                }
                if let Some(t) = kafka_ts {
                    k.insert("timestamp", Value::Timestamp(t));
                }
                if !p.headers.is_empty() {
                    let mut h = Fields::with_capacity(p.headers.len());
                    for (name, r) in p.headers {
                        h.insert(name, Value::String(buf.slice(r)));
                    }
                    k.insert("headers", Value::Map(h));
                }
                event.fields.insert("kafka", Value::Map(k));
            }
            batch.push(event);
        }
        (batch, span, bad, first_error)
    }
}
