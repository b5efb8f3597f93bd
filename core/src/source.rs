//! The [`Source`] trait and the [`SourceContext`] it runs with.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::channel::ChannelError;
use crate::checkpoint::CheckpointStore;
use crate::event::Batch;
use crate::metrics::ComponentMetrics;
use crate::topology::emit::{Emitter, Route};

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
    pub(crate) emitter: Arc<tokio::sync::Mutex<Emitter>>,
}

impl SourceContext {
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
        self.metrics.record_in(&batch);
        self.emitter.lock().await.emit(batch).await
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
        let Ok(mut emitter) = tokio::time::timeout_at(deadline, self.emitter.lock()).await else {
            return Ok(false);
        };
        let single = emitter.chain.is_empty()
            && emitter.outputs.len() == 1
            && matches!(emitter.route, Route::Replicating);
        if !single {
            self.metrics.record_in(&batch);
            return emitter.emit(batch).await.map(|()| true);
        }
        let out = emitter.outputs[0].clone();
        let tapped = emitter.metrics.tap.is_tapped().then(|| batch.clone());
        let (n, bytes) = (batch.len() as u64, batch.body_bytes() as u64);
        match tokio::time::timeout_at(deadline, out.put(batch)).await {
            Err(_) => Ok(false),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => {
                use std::sync::atomic::Ordering::Relaxed;
                self.metrics.events_in.fetch_add(n, Relaxed);
                self.metrics.bytes_in.fetch_add(bytes, Relaxed);
                emitter.metrics.events_out.fetch_add(n, Relaxed);
                emitter.metrics.bytes_out.fetch_add(bytes, Relaxed);
                if let Some(b) = tapped {
                    emitter.metrics.tap.offer(&b);
                }
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use super::*;
    use crate::event::{Event, Timestamp};
    use crate::testing::{source_context, Collector, Full};

    fn batch(n: usize) -> Batch {
        let mut b = Batch::new();
        for i in 0..n {
            b.push(Event::new(i.to_string(), Timestamp::now()));
        }
        b
    }

    #[tokio::test]
    async fn emit_before_gives_up_a_put_into_a_full_channel_counting_nothing() {
        let dir = std::env::temp_dir();
        let mut cx = source_context("s", &dir, Arc::new(Full), CancellationToken::new());
        let deadline = tokio::time::Instant::now() + Duration::from_millis(30);
        assert!(!cx.emit_before(batch(3), deadline).await.expect("no error"));
        assert_eq!(cx.metrics.events_in.load(Relaxed), 0);
        assert_eq!(cx.metrics.events_out.load(Relaxed), 0);

        let out = Collector::new();
        let mut cx = source_context("s", &dir, out.clone(), CancellationToken::new());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        assert!(cx.emit_before(batch(3), deadline).await.expect("no error"));
        assert_eq!(out.events().len(), 3);
        assert_eq!(cx.metrics.events_in.load(Relaxed), 3);
        assert_eq!(cx.metrics.events_out.load(Relaxed), 3);
    }
}
