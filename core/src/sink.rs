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
}
