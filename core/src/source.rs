//! The [`Source`] trait and the [`SourceContext`] it runs with.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::channel::ChannelError;
use crate::checkpoint::CheckpointStore;
use crate::event::Batch;
use crate::metrics::ComponentMetrics;

/// Why a component's task ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// An I/O error (reading a file, a socket).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A channel refused a batch (closed while the pipeline stops).
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Reads events from somewhere and emits them in batches.
///
/// # Contract
///
/// * `run` reads until its input ends (a bounded source returns `Ok(())`) or
///   until [`SourceContext::shutdown`] is cancelled. On shutdown it stops
///   reading, emits what it has already read, records its checkpoint, and
///   returns `Ok(())`.
/// * It records a checkpoint only after [`SourceContext::emit`] returned: by
///   then the channels have accepted the batch.
/// * `emit` waits while a channel is full (backpressure); a source should not
///   read further meanwhile.
/// * An error ends this source only; the rest of the pipeline drains and the
///   agent exits non-zero.
#[async_trait]
pub trait Source: Send + 'static {
    /// Runs the source to completion.
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), ComponentError>;
}

/// What a running source is given by the runtime.
pub struct SourceContext {
    /// The source's id in the pipeline file.
    pub id: Arc<str>,
    /// Cancelled when the pipeline is asked to stop, or when a reload
    /// stops this source (its declaration changed or it was removed).
    pub shutdown: CancellationToken,
    /// Where to keep offsets across restarts.
    pub checkpoints: CheckpointStore,
    /// The source's own directory under the pipeline's `data_dir`.
    pub data_dir: PathBuf,
    /// Counters for this source.
    pub metrics: Arc<ComponentMetrics>,
    /// Where emitted batches go (the runtime's inline processors, selector
    /// and channels).
    emitter: Arc<dyn Emit>,
}

/// Where a source's batches go: the runtime runs the inline processors on
/// them, applies the selector and puts them into the channels, counting
/// them on the source's metrics. The runtime implements it; a source calls
/// it through [`SourceContext::emit`] and [`SourceContext::emit_before`].
#[async_trait]
pub trait Emit: Send + Sync {
    /// See [`SourceContext::emit`]; `batch` is not empty.
    async fn emit(&self, batch: Batch) -> Result<(), ChannelError>;
    /// See [`SourceContext::emit_before`]; `batch` is not empty.
    async fn emit_before(
        &self,
        batch: Batch,
        deadline: tokio::time::Instant,
    ) -> Result<bool, ChannelError>;
}

impl SourceContext {
    /// The context of source `id`, emitting through `emitter`; the runtime
    /// (or a test) makes it.
    pub fn new(
        id: &str,
        shutdown: CancellationToken,
        checkpoints: CheckpointStore,
        data_dir: PathBuf,
        metrics: Arc<ComponentMetrics>,
        emitter: Arc<dyn Emit>,
    ) -> Self {
        SourceContext {
            id: id.into(),
            shutdown,
            checkpoints,
            data_dir,
            metrics,
            emitter,
        }
    }

    /// Runs the inline processors on `batch`, applies the selector and puts
    /// the result into the source's channels. Waits while a channel is full.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Closed`] when the pipeline is being torn down and the
    /// channels no longer accept events; [`ChannelError::Stopped`] when a
    /// reload stops this source and a channel stayed full for a second
    /// after the stop (the batch may have been put in part). Either way the
    /// source should return without recording a checkpoint for the batch.
    pub async fn emit(&mut self, batch: Batch) -> Result<(), ChannelError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.emitter.emit(batch).await
    }

    /// Like [`emit`](Self::emit), but gives up at `deadline` when giving up
    /// leaves nothing of the batch anywhere: `Ok(false)` then, with nothing
    /// put and nothing counted. That holds for a source with one channel and
    /// no inline processors (a cancelled [`Channel::put`] has put nothing),
    /// the case of a request-answering source such as `http`. With inline
    /// processors or several channels, part of the batch may be in when the
    /// time is up, so once the put has started it is waited for, as by
    /// `emit`.
    ///
    /// [`Channel::put`]: crate::channel::Channel::put
    ///
    /// # Errors
    ///
    /// As [`emit`](Self::emit).
    pub async fn emit_before(
        &mut self,
        batch: Batch,
        deadline: tokio::time::Instant,
    ) -> Result<bool, ChannelError> {
        if batch.is_empty() {
            return Ok(true);
        }
        self.emitter.emit_before(batch, deadline).await
    }
}
