//! The [`Sink`] trait: delivery of batches to a destination.

use async_trait::async_trait;

use crate::event::Batch;

/// Why a write failed, and what the runtime should do about it.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A transient failure (I/O error, destination unavailable): nothing of
    /// the batch may be assumed delivered. The runtime backs off and writes
    /// the same batch again.
    #[error("{0}")]
    Retry(String),
    /// Some events were rejected for good (the destination refused them);
    /// every other event of the batch was delivered. Each entry is the index
    /// of an event in the batch and the reason. The runtime sends those events
    /// to the dead-letter channel, or counts and logs them.
    #[error("{} event(s) rejected", .0.len())]
    Rejected(Vec<(usize, String)>),
    /// The sink cannot go on (misconfiguration discovered at run time). The
    /// batch is rolled back and the pipeline stops with an error.
    #[error("{0}")]
    Fatal(String),
}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        SinkError::Retry(e.to_string())
    }
}

/// Delivers batches somewhere.
///
/// # Contract
///
/// * The runtime loop is: take a batch from the sink's channel, `write` it,
///   commit the take only when `write` returned `Ok` (or `Rejected`, after
///   handling the rejected events). So `write` returns `Ok` only once the
///   batch is delivered: the file written, the broker's ack received, the row
///   committed.
/// * After `Err(Retry)` the same batch is written again after a back-off, so
///   a sink must tolerate seeing a batch twice (at-least-once).
/// * `flush` is called once when the channel is closed and drained, before
///   the task ends; after it, `write` is not called again.
///
/// # Acknowledging later
///
/// A sink whose destination makes writes durable in bulk (an index commit
/// every second) may return `Ok` from `write` before the batch is durable,
/// by answering `true` from [`acknowledges_later`](Self::acknowledges_later).
/// Nothing is acknowledged before it is durable: the runtime keeps each
/// written batch's take open, in order, and commits it only once
/// [`durable`](Self::durable) counts it. It calls [`sync`](Self::sync) to
/// make everything written durable when the oldest open take has waited
/// [`sync_interval`](Self::sync_interval), when the open takes fill half of
/// the input channel, when the input ends and when the task is stopped.
/// After an `Err` from `write` or `sync`, every batch written since the
/// last durable one counts as lost: the sink forgets them (`durable` and
/// its count of writes agree again), and the runtime rolls their takes back
/// so that they are written again. In a sink group, `sync` follows every
/// write.
///
/// # Cancel safety
///
/// `write` need not be cancel safe: the runtime only cancels it when the
/// drain timeout has passed, and then the take is rolled back.
#[async_trait]
pub trait Sink: Send + 'static {
    /// Delivers a batch.
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError>;

    /// Flushes and closes the destination at the end of the run.
    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Whether `write` may return before the batch is durable (see
    /// "Acknowledging later" above). Default: `false`, `Ok` means delivered.
    fn acknowledges_later(&self) -> bool {
        false
    }

    /// For a sink that acknowledges later: how many of the batches written
    /// with `Ok` since the sink was built are durable. Never more than
    /// were written.
    fn durable(&self) -> u64 {
        0
    }

    /// For a sink that acknowledges later: makes every batch written so far
    /// durable.
    async fn sync(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// For a sink that acknowledges later: how long a written batch may
    /// wait before the runtime asks for a [`sync`](Self::sync).
    fn sync_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
}
