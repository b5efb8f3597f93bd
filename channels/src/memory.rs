//! The `memory` channel: a bounded in-memory queue of batches.
//!
//! Batches are moved, never copied: a put pushes the batch onto a queue, a
//! take pops whole batches (splitting only the last one to honour `max`).
//! One lock per batch, none per event. Taken but uncommitted events keep
//! counting against the capacity, so memory stays bounded by `capacity` and
//! `max_bytes` whatever the input rate. A rollback puts the events back at the
//! front, so a single reader sees them again in order.
//!
//! Guarantee: on a graceful stop the runtime drains the channel, so nothing
//! is lost; on a crash whatever the channel held is lost (use a durable
//! channel where that matters).

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::prelude::*;
use tokio::sync::Notify;

/// What a full channel does with a new batch.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// The writer waits until there is room (backpressure).
    #[default]
    Block,
    /// What does not fit is dropped and counted; the writer does not wait.
    DropNewest,
}

/// Options of the `memory` channel.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Maximum number of events held (queued plus taken but uncommitted).
    #[serde(default = "default_capacity")]
    pub capacity: NonZeroUsize,
    /// Maximum approximate bytes held (bodies plus fields); unbounded if unset.
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
    /// What to do when full: `block` (default) or `drop_newest`.
    #[serde(default)]
    pub when_full: WhenFull,
}

fn default_capacity() -> NonZeroUsize {
    NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN)
}

impl ChannelConfig for MemoryConfig {
    fn validate(&self) -> Vec<Problem> {
        match self.max_bytes {
            Some(ByteSize(0)) => vec![Problem::at("max_bytes", "must be greater than 0")],
            _ => Vec::new(),
        }
    }

    fn build(&self, _cx: &BuildContext) -> Result<Arc<dyn Channel>, BuildError> {
        Ok(Arc::new(MemoryChannel::new(self)))
    }
}

#[derive(Default)]
struct State {
    /// Batches waiting to be taken, oldest first, each with its size (so a
    /// take of whole batches measures nothing).
    queue: VecDeque<(Batch, usize)>,
    /// Events in `queue`.
    queued: usize,
    /// Events taken and not yet committed or rolled back.
    in_flight: usize,
    /// Approximate bytes of queued plus in-flight events.
    bytes: usize,
    /// No more puts accepted.
    closed: bool,
    put_events: u64,
    committed_events: u64,
    discarded_events: u64,
}

struct Inner {
    state: Mutex<State>,
    /// Woken when events become available (put, rollback) or the channel
    /// closes or drains.
    readers: Notify,
    /// Woken when room is freed (commit, lost rollback) or the channel closes.
    writers: Notify,
    capacity: usize,
    max_bytes: Option<usize>,
    when_full: WhenFull,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters only; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the byte bound counts: bodies and fields when `max_bytes` is
    /// set, else bodies only (for the statistics).
    fn size(&self, events: &[Event]) -> usize {
        if self.max_bytes.is_some() {
            events.iter().map(Event::size_of).sum()
        } else {
            events.iter().map(|e| e.body.len()).sum()
        }
    }

    /// How many leading events of `batch` fit now, and their size.
    fn room_for(&self, st: &State, batch: &Batch) -> (usize, usize) {
        let free = self.capacity.saturating_sub(st.queued + st.in_flight);
        let n = free.min(batch.len());
        match self.max_bytes {
            None => (n, batch.events[..n].iter().map(|e| e.body.len()).sum()),
            Some(max) => {
                let mut free_bytes = max.saturating_sub(st.bytes);
                let mut size = 0;
                for (i, e) in batch.events[..n].iter().enumerate() {
                    let s = e.size_of();
                    if s > free_bytes {
                        // An event larger than the whole bound still passes
                        // alone through an empty channel, or it would block forever.
                        if i == 0 && st.queued + st.in_flight == 0 {
                            return (1, s);
                        }
                        return (i, size);
                    }
                    free_bytes -= s;
                    size += s;
                }
                (n, size)
            }
        }
    }
}

/// A bounded in-memory channel. See the module docs.
pub struct MemoryChannel {
    inner: Arc<Inner>,
}

impl MemoryChannel {
    /// A channel with the given options.
    pub fn new(config: &MemoryConfig) -> Self {
        MemoryChannel {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                readers: Notify::new(),
                writers: Notify::new(),
                capacity: config.capacity.get(),
                max_bytes: config.max_bytes.map(|b| b.0 as usize),
                when_full: config.when_full,
            }),
        }
    }
}

#[async_trait]
impl Channel for MemoryChannel {
    async fn put(&self, mut batch: Batch) -> Result<(), ChannelError> {
        let inner = &self.inner;
        // Measured once, outside the lock.
        let mut size = inner.size(&batch.events);
        loop {
            let notified = inner.writers.notified();
            tokio::pin!(notified);
            {
                let mut st = inner.lock();
                if st.closed {
                    return Err(ChannelError::Closed(batch));
                }
                let free = inner.capacity.saturating_sub(st.queued + st.in_flight);
                if batch.len() <= free && inner.max_bytes.is_none_or(|m| st.bytes + size <= m) {
                    // The common case: the whole batch fits.
                    st.queued += batch.len();
                    st.bytes += size;
                    st.put_events += batch.len() as u64;
                    st.queue.push_back((batch, size));
                    drop(st);
                    inner.readers.notify_waiters();
                    return Ok(());
                }
                // A batch larger than the whole channel goes in pieces as
                // room appears; a dropping channel keeps what fits.
                let larger =
                    batch.len() > inner.capacity || inner.max_bytes.is_some_and(|m| size > m);
                if larger || inner.when_full == WhenFull::DropNewest {
                    let (fit, fit_size) = inner.room_for(&st, &batch);
                    if fit > 0 {
                        let rest = Batch::from(batch.events.split_off(fit));
                        st.queued += fit;
                        st.bytes += fit_size;
                        st.put_events += fit as u64;
                        st.queue.push_back((batch, fit_size));
                        drop(st);
                        inner.readers.notify_waiters();
                        batch = rest;
                        size -= fit_size;
                        continue;
                    }
                    if inner.when_full == WhenFull::DropNewest {
                        st.discarded_events += batch.len() as u64;
                        return Ok(());
                    }
                }
                notified.as_mut().enable();
            }
            notified.await;
        }
    }

    async fn take(&self, max: usize) -> Result<Option<Transaction>, ChannelError> {
        let inner = &self.inner;
        let max = max.max(1);
        loop {
            let notified = inner.readers.notified();
            tokio::pin!(notified);
            {
                let mut st = inner.lock();
                if let Some((mut out, mut bytes)) = st.queue.pop_front() {
                    if out.len() > max {
                        let rest = out.events.split_off(max);
                        let rest_bytes = inner.size(&rest);
                        bytes -= rest_bytes;
                        st.queue.push_front((Batch::from(rest), rest_bytes));
                    }
                    while out.len() < max {
                        let room = max - out.len();
                        let Some((next, next_bytes)) = st.queue.front_mut() else {
                            break;
                        };
                        if next.len() <= room {
                            bytes += *next_bytes;
                            if let Some((next, _)) = st.queue.pop_front() {
                                out.events.extend(next.events);
                            }
                        } else {
                            let part_bytes = inner.size(&next.events[..room]);
                            *next_bytes -= part_bytes;
                            bytes += part_bytes;
                            out.events.extend(next.events.drain(..room));
                        }
                    }
                    let n = out.len();
                    st.queued -= n;
                    st.in_flight += n;
                    return Ok(Some(Transaction::new(
                        out,
                        Box::new(MemoryTxn {
                            inner: self.inner.clone(),
                            events: n,
                            bytes,
                        }),
                    )));
                }
                if st.closed && st.in_flight == 0 {
                    return Ok(None);
                }
                notified.as_mut().enable();
            }
            notified.await;
        }
    }

    fn drained(&self) -> bool {
        let st = self.inner.lock();
        st.closed && st.queued == 0
    }

    fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.readers.notify_waiters();
        self.inner.writers.notify_waiters();
    }

    fn stats(&self) -> ChannelStats {
        let st = self.inner.lock();
        ChannelStats {
            events: (st.queued + st.in_flight) as u64,
            bytes: st.bytes as u64,
            capacity: Some(self.inner.capacity as u64),
            max_bytes: self.inner.max_bytes.map(|b| b as u64),
            put_events: st.put_events,
            committed_events: st.committed_events,
            discarded_events: st.discarded_events,
        }
    }
}

struct MemoryTxn {
    inner: Arc<Inner>,
    events: usize,
    bytes: usize,
}

#[async_trait]
impl TransactionHandle for MemoryTxn {
    async fn commit(self: Box<Self>) -> Result<(), ChannelError> {
        {
            let mut st = self.inner.lock();
            st.in_flight -= self.events;
            st.bytes = st.bytes.saturating_sub(self.bytes);
            st.committed_events += self.events as u64;
        }
        self.inner.writers.notify_waiters();
        self.inner.readers.notify_waiters();
        Ok(())
    }

    fn rollback(self: Box<Self>, batch: Option<Batch>) {
        let mut st = self.inner.lock();
        st.in_flight -= self.events;
        let back = batch.filter(|b| !b.is_empty());
        let back_events = back.as_ref().map_or(0, Batch::len);
        if let Some(b) = back {
            // The holder may have changed the batch: count what came back.
            let bytes = if b.len() == self.events {
                self.bytes
            } else {
                self.inner.size(&b.events)
            };
            st.bytes = st.bytes.saturating_sub(self.bytes) + bytes;
            st.queued += b.len();
            st.queue.push_front((b, bytes));
        } else {
            st.bytes = st.bytes.saturating_sub(self.bytes);
        }
        let lost = self.events - back_events.min(self.events);
        st.discarded_events += lost as u64;
        drop(st);
        if lost > 0 {
            tracing::warn!(events = lost, "memory channel: a rolled-back take did not hand back all its events; those are lost");
            self.inner.writers.notify_waiters();
        }
        self.inner.readers.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{one_writer_one_reader, Rng, Run};
    use std::time::Duration;

    fn batch(range: std::ops::Range<u32>) -> Batch {
        range
            .map(|i| Event::new(i.to_string(), Timestamp(0)))
            .collect::<Vec<_>>()
            .into()
    }

    fn bodies(b: &Batch) -> Vec<String> {
        b.iter()
            .map(|e| String::from_utf8_lossy(&e.body).into_owned())
            .collect()
    }

    fn chan(yaml: &str) -> MemoryChannel {
        MemoryChannel::new(&sluice_core::config::from_yaml_str::<MemoryConfig>(yaml).unwrap())
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        let c: MemoryConfig = sluice_core::config::from_yaml_str("{}").unwrap();
        assert_eq!(c.capacity.get(), 10_000);
        assert_eq!(c.when_full, WhenFull::Block);
        let c: MemoryConfig = sluice_core::config::from_yaml_str(
            "capacity: 5\nmax_bytes: 64MiB\nwhen_full: drop_newest",
        )
        .unwrap();
        assert_eq!(c.max_bytes, Some(ByteSize(64 << 20)));
        let e = sluice_core::config::from_yaml_str::<MemoryConfig>("capacty: 5").unwrap_err();
        assert!(
            e.message.contains("did you mean `capacity`"),
            "{}",
            e.message
        );
        assert!(sluice_core::config::from_yaml_str::<MemoryConfig>("capacity: 0").is_err());
    }

    #[tokio::test]
    async fn take_commit_in_order_and_drains_after_close() {
        let ch = chan("capacity: 100");
        ch.put(batch(0..5)).await.unwrap();
        ch.put(batch(5..10)).await.unwrap();
        let t = ch.take(7).await.unwrap().unwrap();
        assert_eq!(
            bodies(t.batch()),
            (0..7).map(|i| i.to_string()).collect::<Vec<_>>()
        );
        t.commit().await.unwrap();
        ch.close();
        assert!(ch.put(batch(0..1)).await.is_err());
        let t = ch.take(100).await.unwrap().unwrap();
        assert_eq!(t.len(), 3);
        t.commit().await.unwrap();
        assert!(ch.take(100).await.unwrap().is_none());
        assert_eq!(ch.stats().committed_events, 10);
    }

    #[tokio::test]
    async fn rollback_puts_events_back_first() {
        let ch = chan("capacity: 100");
        ch.put(batch(0..3)).await.unwrap();
        ch.put(batch(3..6)).await.unwrap();
        let t = ch.take(2).await.unwrap().unwrap();
        drop(t);
        let t = ch.take(100).await.unwrap().unwrap();
        assert_eq!(bodies(t.batch()), ["0", "1", "2", "3", "4", "5"]);
        assert_eq!(ch.stats().events, 6);
    }

    #[tokio::test]
    async fn joined_takes_roll_back_in_order_and_commit_together() {
        let ch = chan("capacity: 100");
        ch.put(batch(0..6)).await.unwrap();
        let parts = vec![
            ch.take(2).await.unwrap().unwrap(),
            ch.take(3).await.unwrap().unwrap(),
        ];
        let t = Transaction::join(parts);
        assert_eq!(bodies(t.batch()), ["0", "1", "2", "3", "4"]);
        t.rollback();
        assert_eq!(ch.stats().events, 6);
        let t = Transaction::join(vec![
            ch.take(1).await.unwrap().unwrap(),
            ch.take(100).await.unwrap().unwrap(),
        ]);
        assert_eq!(bodies(t.batch()), ["0", "1", "2", "3", "4", "5"]);
        ch.close();
        assert!(ch.drained(), "closed, and all of it is taken");
        t.commit().await.unwrap();
        assert_eq!(ch.stats().events, 0);
        assert!(ch.take(10).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn full_channel_blocks_until_commit() {
        let ch = Arc::new(chan("capacity: 4"));
        ch.put(batch(0..4)).await.unwrap();
        let c2 = ch.clone();
        let writer = tokio::spawn(async move { c2.put(batch(4..6)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!writer.is_finished(), "put must wait while full");
        let t = ch.take(2).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !writer.is_finished(),
            "taken events still count until commit"
        );
        t.commit().await.unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(ch.stats().events, 4);
    }

    #[tokio::test]
    async fn drop_newest_discards_overflow() {
        let ch = chan("capacity: 3\nwhen_full: drop_newest");
        ch.put(batch(0..5)).await.unwrap();
        ch.put(batch(5..6)).await.unwrap();
        let s = ch.stats();
        assert_eq!(s.events, 3);
        assert_eq!(s.discarded_events, 3);
    }

    #[tokio::test]
    async fn batch_larger_than_capacity_goes_in_pieces() {
        let ch = Arc::new(chan("capacity: 3"));
        let c2 = ch.clone();
        let writer = tokio::spawn(async move { c2.put(batch(0..10)).await });
        let mut seen = Vec::new();
        while seen.len() < 10 {
            let t = ch.take(2).await.unwrap().unwrap();
            seen.extend(bodies(t.batch()));
            t.commit().await.unwrap();
        }
        writer.await.unwrap().unwrap();
        assert_eq!(seen, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn byte_bound_blocks() {
        let ch = Arc::new(chan("capacity: 1000\nmax_bytes: 10"));
        ch.put(Batch::from(vec![Event::new("0123456789", Timestamp(0))]))
            .await
            .unwrap();
        let c2 = ch.clone();
        let writer = tokio::spawn(async move {
            c2.put(Batch::from(vec![Event::new("x", Timestamp(0))]))
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!writer.is_finished());
        ch.take(10).await.unwrap().unwrap().commit().await.unwrap();
        writer.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn take_waits_and_close_wakes_readers() {
        let ch = Arc::new(chan("capacity: 10"));
        let c2 = ch.clone();
        let reader = tokio::spawn(async move { c2.take(5).await.map(|t| t.is_none()) });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!reader.is_finished());
        ch.close();
        assert!(reader.await.unwrap().unwrap());
    }

    fn numbers(b: &Batch) -> Vec<u32> {
        b.iter()
            .map(|e| std::str::from_utf8(&e.body).unwrap().parse().unwrap())
            .collect()
    }

    /// A writer puts 0..N in random batch sizes while one reader takes
    /// random amounts and randomly commits or rolls back. Whatever the
    /// interleaving: the committed events are exactly 0..N in order, and the
    /// channel never holds more than its capacity.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_puts_takes_and_rollbacks_lose_and_duplicate_nothing() {
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let capacity = 1 + rng.below(50) as usize;
            // Odd seeds also bound bytes (bodies are 1 to 4 bytes; an event
            // over the bound still passes alone).
            let max_bytes = (seed % 2 == 1).then(|| 1 + rng.below(40));
            let config = match max_bytes {
                Some(m) => format!("capacity: {capacity}\nmax_bytes: {m}"),
                None => format!("capacity: {capacity}"),
            };
            let run = Run {
                seed,
                total: 2_000,
                max_put: 3 * capacity as u64,
                max_take: 2 * capacity as u64,
                rollback_without_batch: false,
            };
            one_writer_one_reader(
                Arc::new(chan(&config)),
                &mut rng,
                &run,
                batch,
                numbers,
                |stats| {
                    assert!(
                        stats.events <= capacity as u64,
                        "seed {seed}: {stats:?} over capacity {capacity}"
                    );
                    if let Some(m) = max_bytes {
                        assert!(
                            stats.bytes <= m.max(4),
                            "seed {seed}: {stats:?} over max_bytes {m}"
                        );
                    }
                },
            )
            .await;
        }
    }
}
