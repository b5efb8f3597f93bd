//! Helpers for testing components without a whole pipeline.
//!
//! [`Collector`] is an unbounded channel that keeps everything put into it;
//! [`source_context`] builds a [`SourceContext`] that emits into collectors.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::channel::{Channel, ChannelError, ChannelStats, Transaction};
use crate::checkpoint::CheckpointStore;
use crate::event::{Batch, Event};
use crate::metrics::ComponentMetrics;
use crate::source::SourceContext;
use crate::topology::emit::{Emitter, Route};

/// A channel that keeps every event put into it. `take` is not supported.
#[derive(Default)]
pub struct Collector {
    events: Mutex<Vec<Event>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Collector {
    /// A new, empty collector.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Everything put so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The bodies put so far, as strings.
    pub fn bodies(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| String::from_utf8_lossy(&e.body).into_owned())
            .collect()
    }

    /// How many events were put.
    pub fn len(&self) -> usize {
        self.events.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether nothing was put.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Channel for Collector {
    async fn put(&self, batch: Batch) -> Result<(), ChannelError> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ChannelError::Closed(batch));
        }
        if let Ok(mut e) = self.events.lock() {
            e.extend(batch.events);
        }
        Ok(())
    }
    async fn take(&self, _max: usize) -> Result<Option<Transaction>, ChannelError> {
        Err(ChannelError::Other(
            "a Collector cannot be taken from".into(),
        ))
    }
    fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    fn stats(&self) -> ChannelStats {
        ChannelStats {
            events: self.len() as u64,
            ..Default::default()
        }
    }
}

/// A [`SourceContext`] whose events go to `output`, with its data under
/// `data_dir`, stopped through `shutdown`.
pub fn source_context(
    id: &str,
    data_dir: impl Into<PathBuf>,
    output: Arc<dyn Channel>,
    shutdown: CancellationToken,
) -> SourceContext {
    let data_dir = data_dir.into();
    let metrics = Arc::new(ComponentMetrics::default());
    SourceContext {
        id: id.into(),
        shutdown,
        checkpoints: CheckpointStore::new(data_dir.join("checkpoint.json")),
        data_dir,
        metrics: metrics.clone(),
        emitter: Arc::new(tokio::sync::Mutex::new(Emitter::new(
            id,
            Vec::new(),
            Route::Replicating,
            vec![output],
            metrics,
        ))),
    }
}
