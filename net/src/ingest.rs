//! The path from many connections to one [`SourceContext`].
//!
//! A listening source runs one task per connection; each hands its batches
//! to the source's own task through a small bounded queue of [`Job`]s, and
//! the source task emits them one after the other. The queue's bound is the
//! backpressure: while the channels are full, `emit` waits, the queue fills,
//! connection tasks wait in [`Ingest::send`] and stop reading their sockets.
//! A job may carry a reply: it is answered `true` once the channels have
//! accepted the batch (what an acknowledging receiver waits for).

use std::time::Duration;

use sluice_core::prelude::*;
use tokio::sync::{mpsc, oneshot};

/// A batch for the source task, with an optional reply.
pub(crate) struct Job {
    batch: Batch,
    reply: Option<oneshot::Sender<bool>>,
}

/// Batches waiting in the queue at most.
const QUEUE: usize = 4;

/// The connection side of the queue.
#[derive(Clone)]
pub(crate) struct Ingest {
    tx: mpsc::Sender<Job>,
}

/// Why a batch did not get in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue stayed full for the whole wait: the channels are full.
    Busy,
    /// The source is stopping or a channel refused the batch.
    Closed,
}

impl Ingest {
    /// A queue and its receiving end, for [`pump`].
    pub(crate) fn new() -> (Ingest, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Ingest { tx }, rx)
    }

    /// Queues a batch without waiting for it to be accepted; waits while the
    /// queue is full. `false` once the source task is gone.
    pub(crate) async fn send(&self, batch: Batch) -> bool {
        if batch.is_empty() {
            return true;
        }
        self.tx.send(Job { batch, reply: None }).await.is_ok()
    }

    /// Queues a batch and waits until the channels accepted it. With
    /// `busy_wait`, gives up (nothing ingested) when the queue stays full
    /// that long.
    pub(crate) async fn deliver(&self, batch: Batch, busy_wait: Option<Duration>) -> Result<(), Refused> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            batch,
            reply: Some(reply),
        };
        match busy_wait {
            Some(wait) => self.tx.send_timeout(job, wait).await.map_err(|e| match e {
                mpsc::error::SendTimeoutError::Timeout(_) => Refused::Busy,
                mpsc::error::SendTimeoutError::Closed(_) => Refused::Closed,
            })?,
            None => self.tx.send(job).await.map_err(|_| Refused::Closed)?,
        }
        match answer.await {
            Ok(true) => Ok(()),
            _ => Err(Refused::Closed),
        }
    }
}

/// The source task's loop: emits every queued batch until every [`Ingest`]
/// handle is gone, answering replies.
pub(crate) async fn pump(mut rx: mpsc::Receiver<Job>, cx: &mut SourceContext) -> Result<(), ComponentError> {
    while let Some(job) = rx.recv().await {
        match cx.emit(job.batch).await {
            Ok(()) => {
                if let Some(r) = job.reply {
                    let _ = r.send(true);
                }
            }
            Err(e) => {
                if let Some(r) = job.reply {
                    let _ = r.send(false);
                }
                rx.close();
                return Err(e.into());
            }
        }
    }
    Ok(())
}
