//! The [`Channel`] trait: a bounded, transactional buffer between tasks.
//!
//! Channels are the only edges of a pipeline. Writers (sources and processor
//! stages) [`put`](Channel::put) batches; readers (processor stages and sinks)
//! [`take`](Channel::take) a batch under a [`Transaction`] and
//! [`commit`](Transaction::commit) it once the batch is safely passed on.
//! A transaction that is [rolled back](Transaction::rollback) or dropped makes
//! its events available again, ahead of everything else, as in Flume.

use async_trait::async_trait;

use crate::event::Batch;

/// Why a put or take failed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The channel was closed: no more writers, or the pipeline is stopping.
    /// The batch is handed back so that the caller can decide what to do.
    #[error("channel is closed")]
    Closed(Batch),
    /// An I/O error of a durable channel. Retrying may help.
    #[error("channel I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The put was abandoned because a reload is stopping the task that
    /// made it (see the cancel safety of [`Channel`]); nothing is handed
    /// back. The caller ends without recording progress for the batch.
    #[error("the put was abandoned: the component is being stopped by a reload")]
    Stopped,
    /// The channel cannot work any more (a durable channel's writer thread
    /// is gone): no retry can help. A task that meets it fails at once with
    /// this error instead of retrying.
    #[error("{0}")]
    Broken(String),
    /// Anything else a channel implementation reports. Retrying may help.
    #[error("{0}")]
    Other(String),
}

impl ChannelError {
    /// Whether no retry of the same call can succeed: the channel is
    /// [`Broken`](Self::Broken) (or [`Closed`](Self::Closed), for a put).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ChannelError::Broken(_) | ChannelError::Closed(_) | ChannelError::Stopped
        )
    }
}

/// What a channel reports about itself (for metrics and `sluice top`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Events held, including taken but uncommitted ones.
    pub events: u64,
    /// Approximate bytes held.
    pub bytes: u64,
    /// Capacity in events; `None` when the channel sets no bound on events
    /// (a disk channel without `capacity`, a kafka channel).
    pub capacity: Option<u64>,
    /// Capacity in bytes, when bounded by bytes.
    pub max_bytes: Option<u64>,
    /// Events accepted since start.
    pub put_events: u64,
    /// Events committed by readers since start.
    pub committed_events: u64,
    /// Events discarded because the channel was full (`when_full: drop_newest`).
    pub discarded_events: u64,
}

impl ChannelStats {
    /// How full the channel is, from 0 to 1: the larger of `events /
    /// capacity` and `bytes / max_bytes`, over the bounds the channel has.
    /// `None` when it has neither bound.
    pub fn fill(&self) -> Option<f64> {
        let ratio = |used: u64, cap: u64| (used as f64 / cap.max(1) as f64).min(1.0);
        let by_events = self.capacity.map(|c| ratio(self.events, c));
        let by_bytes = self.max_bytes.map(|m| ratio(self.bytes, m));
        match (by_events, by_bytes) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A bounded, transactional channel.
///
/// # Contract
///
/// * `put` returns once the channel has accepted the whole batch (for a
///   durable channel: written and synced per its policy). While the channel is
///   full it waits: that wait is backpressure. A channel configured to drop
///   instead returns at once and counts what it dropped.
/// * `take` waits until at least one event is available and hands out at most
///   `max` events under a [`Transaction`]. It returns `Ok(None)` once the
///   channel is closed and everything in it has been committed.
/// * Events taken but not yet committed still count against the capacity, so
///   memory stays bounded by it whatever the input rate.
/// * `close` is called by the runtime when the last writer is gone; later
///   puts fail with [`ChannelError::Closed`].
///
/// # Cancel safety
///
/// * `take` is cancel safe: a cancelled `take` has taken nothing.
/// * `put` is not all-or-nothing when cancelled, and its caller cannot tell
///   how much went in. A cancelled `put` may have put none of the batch,
///   part of it (the memory channel admits a batch larger than its whole
///   capacity in pieces as room appears), or all of it (the disk channel
///   hands the batch to its writer thread, which appends it even when the
///   waiting caller is gone). Only the batch is lost to the caller, as with
///   tokio's `Sender::send`. The runtime cancels a put only when a reload
///   stops the task, and then rolls the input back (a stage) or lets the
///   source read again from its checkpoint: the events are delivered again,
///   at least once, never lost.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// Puts a batch, waiting while the channel is full.
    async fn put(&self, batch: Batch) -> Result<(), ChannelError>;

    /// Takes at most `max` events; `Ok(None)` once closed and drained.
    async fn take(&self, max: usize) -> Result<Option<Transaction>, ChannelError>;

    /// Marks the channel closed for writers (readers drain what is left).
    fn close(&self);

    /// Current statistics.
    fn stats(&self) -> ChannelStats;

    /// Whether what `put` accepted survives a crash of the process (a disk
    /// channel). Sinks reading a durable channel make their writes durable
    /// before acknowledging them, so that nothing committed is lost.
    fn is_durable(&self) -> bool {
        false
    }

    /// Why the channel cannot currently make progress on its own, while it
    /// cannot: a disk channel on a full disk, whose writers wait for room
    /// (`disk full: ...`). `None` while it works normally. The API reports
    /// such a channel, and the agent as `degraded`.
    fn degraded(&self) -> Option<String> {
        None
    }

    /// Whether the channel is closed with nothing left to take: what a
    /// reader holds is all there will be. A sink holding takes while it
    /// waits to fill a batch (`batch_timeout`) writes them then, rather
    /// than waiting out the timeout; a channel that cannot tell answers
    /// `false` (the default) and the sink waits.
    fn drained(&self) -> bool {
        false
    }
}

/// The channel's side of a transaction: what commit and rollback do.
#[async_trait]
pub trait TransactionHandle: Send + 'static {
    /// Removes the taken events for good.
    async fn commit(self: Box<Self>) -> Result<(), ChannelError>;
    /// Makes the taken events available again. `batch` is the batch as it
    /// was handed out when the holder still has it; `None` when the holder
    /// consumed it (a durable channel re-reads it from storage; a memory
    /// channel can then only release the capacity).
    fn rollback(self: Box<Self>, batch: Option<Batch>);
}

/// A batch taken from a channel, not yet committed.
///
/// Dropping it without [`commit`](Self::commit) rolls it back.
pub struct Transaction {
    batch: Option<Batch>,
    handle: Option<Box<dyn TransactionHandle>>,
}

impl Transaction {
    /// Wraps a taken batch and the channel's handle for it.
    pub fn new(batch: Batch, handle: Box<dyn TransactionHandle>) -> Self {
        Transaction {
            batch: Some(batch),
            handle: Some(handle),
        }
    }

    /// The taken events (empty once [`take_batch`](Self::take_batch) moved them out).
    pub fn batch(&self) -> &Batch {
        static EMPTY: Batch = Batch { events: Vec::new() };
        self.batch.as_ref().unwrap_or(&EMPTY)
    }

    /// Number of events taken.
    pub fn len(&self) -> usize {
        self.batch().len()
    }

    /// Whether no events were taken.
    pub fn is_empty(&self) -> bool {
        self.batch().is_empty()
    }

    /// Moves the events out, for a holder that transforms them in place. A
    /// later rollback cannot hand them back (see [`TransactionHandle::rollback`]).
    pub fn take_batch(&mut self) -> Batch {
        self.batch.take().unwrap_or_default()
    }

    /// Commits: the events are gone from the channel.
    pub async fn commit(mut self) -> Result<(), ChannelError> {
        self.batch = None;
        match self.handle.take() {
            Some(h) => h.commit().await,
            None => Ok(()),
        }
    }

    /// Hands the events back after [`take_batch`](Self::take_batch) moved
    /// them out (a copy kept aside), so that a rollback returns them.
    pub fn restore(&mut self, batch: Batch) {
        self.batch = Some(batch);
    }

    /// Joins takes of one channel, oldest first, into one: its batch holds
    /// their events in order; a commit commits each in order, a rollback
    /// hands each its own events back, newest first, so that the channel
    /// keeps its order. A sink that waits to fill a batch (`batch_timeout`)
    /// writes and acknowledges its takes as one.
    pub fn join(mut parts: Vec<Transaction>) -> Transaction {
        if parts.len() == 1 {
            if let Some(only) = parts.pop() {
                return only;
            }
        }
        let mut batch = Batch::new();
        let mut joined = Joined {
            parts: Vec::with_capacity(parts.len()),
        };
        for mut t in parts {
            let mut b = t.take_batch();
            let handle = t.handle.take();
            joined.parts.push((b.len(), handle));
            batch.events.append(&mut b.events);
        }
        Transaction::new(batch, Box::new(joined))
    }

    /// Rolls back: the events become available again.
    pub fn rollback(mut self) {
        if let Some(h) = self.handle.take() {
            h.rollback(self.batch.take());
        }
    }
}

/// The handles of joined takes, each with its number of events.
struct Joined {
    parts: Vec<(usize, Option<Box<dyn TransactionHandle>>)>,
}

#[async_trait]
impl TransactionHandle for Joined {
    async fn commit(self: Box<Self>) -> Result<(), ChannelError> {
        for (_, handle) in self.parts {
            if let Some(h) = handle {
                h.commit().await?;
            }
        }
        Ok(())
    }

    fn rollback(self: Box<Self>, mut batch: Option<Batch>) {
        // Only a batch of the joined length can be cut back into the parts.
        let total: usize = self.parts.iter().map(|(n, _)| n).sum();
        if batch.as_ref().is_some_and(|b| b.len() != total) {
            batch = None;
        }
        for (n, handle) in self.parts.into_iter().rev() {
            let part = batch.as_mut().map(|b| Batch {
                events: b.events.split_off(b.events.len() - n),
            });
            if let Some(h) = handle {
                h.rollback(part);
            }
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.rollback(self.batch.take());
        }
    }
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("events", &self.len())
            .finish()
    }
}
