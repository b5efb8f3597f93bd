//! Delivering a batch of records: what the sink's `write` and the channel's
//! `put` both do.
//!
//! [`Deliverer::deliver`] hands every record to librdkafka, then waits for
//! every acknowledgement. The producer is idempotent with `acks=all`, so
//! librdkafka itself retries what the broker did not take, keeps the order
//! within a partition and writes nothing twice. What still fails (a message
//! timed out while the broker was away) is sent again, in the original order,
//! after a back-off, until it is acknowledged: the call returns only when
//! every record is in the broker, except records the broker refuses for good
//! (too large, invalid), which are returned by index.
//!
//! Within a partition an idempotent producer fails a suffix of what was in
//! flight (a later record never lands before an earlier failed one), so
//! sending the failed records again keeps the partition's order.

use std::time::Duration as StdDuration;

use bytes::Bytes;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::ClientConfig;

use sluice_core::warn::WarnLimiter;

use crate::client::Backoff;
use crate::codec;

/// One record to produce. Bodies and keys are shared, not copied, until
/// librdkafka copies them into its queue.
pub(crate) struct Record {
    /// Index into the topic list handed to [`Deliverer::deliver`].
    pub topic: usize,
    /// The record key, when there is one (it picks the partition).
    pub key: Option<Bytes>,
    /// The record value.
    pub payload: Bytes,
    /// Kafka timestamp, milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// For the native format: the event's timestamp in nanoseconds and its
    /// encoded fields.
    pub native: Option<(i64, Option<Bytes>)>,
}

/// A producer that delivers whole batches (see the module docs).
pub(crate) struct Deliverer {
    producer: FutureProducer,
    /// Kept to build a new producer after a fatal error.
    config: ClientConfig,
    /// Component id, for messages.
    id: String,
    warn: WarnLimiter,
}

/// The producer settings that make delivery safe, before the user's options.
pub(crate) fn safe_defaults(
    compression: &str,
    linger_ms: u64,
    batch_bytes: u64,
) -> Vec<(&'static str, String)> {
    vec![
        ("enable.idempotence", "true".into()),
        ("acks", "all".into()),
        ("compression.type", compression.into()),
        ("linger.ms", linger_ms.to_string()),
        ("batch.size", batch_bytes.to_string()),
        // A record not acknowledged within this long is reported failed and
        // sent again by `deliver`; librdkafka retries on its own before that.
        ("message.timeout.ms", "120000".into()),
        ("retry.backoff.ms", "100".into()),
        ("retry.backoff.max.ms", "1000".into()),
    ]
}

/// Whether the broker refused a record for good.
fn is_permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTopic
        )
    )
}

/// Whether a broker may have refused a record for another record of the
/// same record batch: too large or invalid applies to the whole batch.
fn shared_fate(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

impl Deliverer {
    /// A deliverer with the given librdkafka configuration.
    pub(crate) fn new(id: &str, config: ClientConfig) -> Result<Self, KafkaError> {
        Ok(Deliverer {
            producer: config.create()?,
            config,
            id: id.to_string(),
            warn: WarnLimiter::every(std::time::Duration::from_secs(5)),
        })
    }

    /// Delivers every record (see the module docs). Returns the records the
    /// broker refused for good, by index, with the reason.
    ///
    /// A broker refuses a whole record batch for one record too large (or
    /// invalid), and librdkafka then fails every record of that batch with
    /// the same error. So records failed that way are sent again one at a
    /// time, after the others; only a record refused on its own is
    /// rejected. (Those records may then land after later records of their
    /// batch in the same partition.)
    pub(crate) async fn deliver(
        &mut self,
        topics: &[String],
        records: &[Record],
    ) -> Vec<(usize, String)> {
        let (mut rejected, suspects) = self
            .deliver_some(topics, records, (0..records.len()).collect(), false)
            .await;
        if !suspects.is_empty() {
            if let Some(held) = self.warn.allow() {
                tracing::warn!(
                    id = %self.id,
                    records = suspects.len(),
                    held_back_warnings = held,
                    "the broker refused records as too large or invalid with their record batch; \
                     sending them again one at a time (if this repeats, set max_batch_bytes \
                     below the broker's message.max.bytes)"
                );
            }
        }
        for i in suspects {
            let (refused, _) = self.deliver_some(topics, records, vec![i], true).await;
            rejected.extend(refused);
        }
        rejected.sort_unstable_by_key(|(i, _)| *i);
        rejected
    }

    /// Delivers the records `pending`, all in flight at once (`alone`: a
    /// single record, sent by itself). Returns the records refused for good
    /// and, unless `alone`, the records refused with an error a batch-mate
    /// may have caused ([`shared_fate`]), to be sent again alone.
    async fn deliver_some(
        &mut self,
        topics: &[String],
        records: &[Record],
        mut pending: Vec<usize>,
        alone: bool,
    ) -> (Vec<(usize, String)>, Vec<usize>) {
        let mut rejected = Vec::new();
        let mut suspects = Vec::new();
        let mut backoff = Backoff::new();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            attempt += 1;
            let mut in_flight = Vec::with_capacity(pending.len());
            let mut failed: Vec<usize> = Vec::new();
            let mut last_error = None;
            for &i in &pending {
                let r = &records[i];
                loop {
                    let mut rec = FutureRecord::to(&topics[r.topic])
                        .payload(&r.payload[..])
                        .timestamp(r.timestamp_ms);
                    if let Some(key) = &r.key {
                        rec = rec.key(&key[..]);
                    }
                    if let Some((ts, fields)) = &r.native {
                        let ts = ts.to_be_bytes();
                        let mut h = OwnedHeaders::new_with_capacity(2).insert(Header {
                            key: codec::TIMESTAMP_HEADER,
                            value: Some(&ts[..]),
                        });
                        if let Some(f) = fields {
                            h = h.insert(Header {
                                key: codec::FIELDS_HEADER,
                                value: Some(&f[..]),
                            });
                        }
                        rec = rec.headers(h);
                    }
                    match self.producer.send_result(rec) {
                        Ok(f) => {
                            in_flight.push((i, f));
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                            // librdkafka's queue is full: let it drain a little.
                            tokio::time::sleep(StdDuration::from_millis(5)).await;
                        }
                        Err((e, _)) if is_permanent(&e) => {
                            rejected.push((i, e.to_string()));
                            break;
                        }
                        Err((e, _)) => {
                            last_error = Some(e.to_string());
                            failed.push(i);
                            break;
                        }
                    }
                }
            }
            for (i, f) in in_flight {
                match f.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) if !alone && shared_fate(&e) => suspects.push(i),
                    Ok(Err((e, _))) if is_permanent(&e) => rejected.push((i, e.to_string())),
                    Ok(Err((e, _))) => {
                        last_error = Some(e.to_string());
                        failed.push(i);
                    }
                    Err(_) => {
                        last_error = Some("the producer dropped the record".into());
                        failed.push(i);
                    }
                }
            }
            if failed.is_empty() {
                break;
            }
            failed.sort_unstable();
            if let Some(held) = self.warn.allow() {
                tracing::warn!(
                    id = %self.id,
                    records = failed.len(),
                    attempt,
                    held_back_warnings = held,
                    "delivery failed: {}; sending again",
                    last_error.unwrap_or_default()
                );
            }
            if self.producer.client().fatal_error().is_some() {
                self.renew();
            }
            backoff.wait().await;
            pending = failed;
        }
        (rejected, suspects)
    }

    /// Replaces a producer that hit a fatal error with a new one.
    fn renew(&mut self) {
        match self.config.create::<FutureProducer>() {
            Ok(p) => {
                tracing::warn!(id = %self.id, "producer hit a fatal error; starting a new one");
                self.producer = p;
            }
            Err(e) => tracing::warn!(id = %self.id, "cannot start a new producer: {e}"),
        }
    }

    /// Waits (bounded) until librdkafka's queue is empty.
    pub(crate) async fn flush(&self) -> Result<(), KafkaError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(StdDuration::from_secs(30)))
            .await
            .unwrap_or(Ok(()))
    }
}

/// Milliseconds since the epoch of a Sluice timestamp.
pub(crate) fn millis(ts: sluice_core::event::Timestamp) -> i64 {
    ts.0.div_euclid(1_000_000)
}
