//! The path from many connections to one [`SourceContext`].
//!
//! A listening source runs one task per connection; each hands its batches
//! to the source's own task through a small bounded queue of [`Job`]s, and
//! the source task emits them one after the other. The queue's bound is the
//! backpressure: while the channels are full, `emit` waits, the queue fills,
//! connection tasks wait in [`Ingest::send`] and stop reading their sockets.
//! A job may carry a reply: it is answered once the channels have accepted
//! the batch (what an acknowledging receiver waits for), and may carry a
//! deadline: a batch not in by then is given up, with nothing of it in the
//! channels (what an HTTP request answered `503` needs).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_core::prelude::*;
use tokio::sync::{mpsc, oneshot};

/// What became of a job with a reply.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The batch is in the channels.
    In,
    /// The deadline passed first; nothing of the batch is in.
    GaveUp,
}

/// A batch for the source task, with an optional reply.
pub(crate) struct Job {
    batch: Batch,
    reply: Option<oneshot::Sender<Outcome>>,
    /// When to give up a batch not yet in the channels.
    deadline: Option<tokio::time::Instant>,
    /// For a job that may be given up: `QUEUED`, then `STARTED` by the
    /// source task or `CANCELLED` by the waiting side, whichever comes first.
    state: Option<Arc<AtomicU8>>,
}

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;

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
        let job = Job {
            batch,
            reply: None,
            deadline: None,
            state: None,
        };
        self.tx.send(job).await.is_ok()
    }

    /// Queues a batch and waits until the channels accepted it. With
    /// `busy_wait`, gives up (nothing ingested) when the batch is not in
    /// within that time: still queued, or put into a single channel that
    /// stayed full (see [`SourceContext::emit_before`]; a put into several
    /// channels or through inline processors is waited for once started).
    pub(crate) async fn deliver(
        &self,
        batch: Batch,
        busy_wait: Option<Duration>,
    ) -> Result<(), Refused> {
        let (reply, mut answer) = oneshot::channel();
        let state = busy_wait.map(|_| Arc::new(AtomicU8::new(QUEUED)));
        let deadline = busy_wait.map(|w| tokio::time::Instant::now() + w);
        let job = Job {
            batch,
            reply: Some(reply),
            deadline,
            state: state.clone(),
        };
        let (Some(wait), Some(state), Some(deadline)) = (busy_wait, state, deadline) else {
            self.tx.send(job).await.map_err(|_| Refused::Closed)?;
            return match answer.await {
                Ok(Outcome::In) => Ok(()),
                Ok(Outcome::GaveUp) => Err(Refused::Busy),
                Err(_) => Err(Refused::Closed),
            };
        };
        self.tx.send_timeout(job, wait).await.map_err(|e| match e {
            mpsc::error::SendTimeoutError::Timeout(_) => Refused::Busy,
            mpsc::error::SendTimeoutError::Closed(_) => Refused::Closed,
        })?;
        let answered = match tokio::time::timeout_at(deadline, &mut answer).await {
            Ok(a) => a,
            Err(_) => {
                let give_up =
                    state.compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire);
                if give_up.is_ok() {
                    return Err(Refused::Busy);
                }
                answer.await
            }
        };
        match answered {
            Ok(Outcome::In) => Ok(()),
            Ok(Outcome::GaveUp) => Err(Refused::Busy),
            Err(_) => Err(Refused::Closed),
        }
    }
}

/// The source task's loop: emits every queued batch until every [`Ingest`]
/// handle is gone, answering replies.
pub(crate) async fn pump(
    mut rx: mpsc::Receiver<Job>,
    cx: &mut SourceContext,
) -> Result<(), ComponentError> {
    while let Some(job) = rx.recv().await {
        if let Some(state) = &job.state {
            if state
                .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // Given up by its sender, which answered "busy".
                continue;
            }
        }
        let put = match job.deadline {
            Some(deadline) => cx.emit_before(job.batch, deadline).await,
            None => cx.emit(job.batch).await.map(|()| true),
        };
        match put {
            Ok(put) => {
                if let Some(r) = job.reply {
                    let _ = r.send(if put { Outcome::In } else { Outcome::GaveUp });
                }
            }
            Err(e) => {
                // The reply is dropped: the sender sees `Closed`.
                rx.close();
                return Err(e.into());
            }
        }
    }
    Ok(())
}
