//! The loops of the tasks: a source's run, a processor stage's take-emit-
//! commit loop, a sink's take-write-commit loop (groups: [`group`](super::group)).
//!
//! # Stopping
//!
//! Each task owns its stop token (kept by the runtime under its
//! [`TaskKey`](super::TaskKey), cancelled by a reload) and looks at it at
//! every wait:
//!
//! * waiting for a batch (`take`): the task ends between two batches;
//! * backing off after a failed take, write or flush, and in a group's
//!   penalty wait: the batch in hand is rolled back (it stays in the channel
//!   for the next version) and the task ends;
//! * putting into a full channel (a source's or stage's emit): once the
//!   stop was asked for, a put still blocked after [`ABANDON_AFTER`] is
//!   abandoned. A stage rolls its input back; a source returns without
//!   recording its checkpoint, so the next version reads the batch again.
//!
//! A `write` in progress is never cancelled: the task ends after it.
//! Nothing taken from a channel is lost; a rolled back batch may be
//! delivered twice (at least once, as after any failed write). What
//! processors emit as they finish (`Processor::finish`) is put like any
//! batch, and so given up too when the put stays blocked after the stop.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::emit::{handle_failures, Emitter, SourceEmitter};
use super::WriterGuard;
use sluice_core::channel::{Channel, ChannelError, Transaction};
use sluice_core::event::Batch;
use sluice_core::metrics::ComponentMetrics;
use sluice_core::sink::{Sink, SinkError};
use sluice_core::source::{ComponentError, Source, SourceContext};
use sluice_core::warn::WarnLimiter;

/// How long a put blocked on a full channel may go on once its task was
/// asked to stop, before it is abandoned. Long enough for a healthy reader
/// to make room (so an ordinary reload abandons nothing), short enough that
/// a reader stuck in retries does not hold a reload up.
pub(crate) const ABANDON_AFTER: Duration = Duration::from_secs(1);

/// Resolves [`ABANDON_AFTER`] after `stop` was cancelled.
pub(crate) async fn abandon(stop: &CancellationToken) {
    stop.cancelled().await;
    tokio::time::sleep(ABANDON_AFTER).await;
}

/// What a reload cancels to stop one task.
#[derive(Clone, Debug, Default)]
pub(crate) struct StopHandle {
    /// The task's own stop token.
    pub stop: CancellationToken,
    /// A source's shutdown token (a child of the pipeline's): cancelled
    /// with `stop`, so that the source stops reading.
    pub source: Option<CancellationToken>,
}

impl StopHandle {
    /// Asks the task to stop.
    pub fn cancel(&self) {
        self.stop.cancel();
        if let Some(s) = &self.source {
            s.cancel();
        }
    }
}

pub(crate) async fn run_source(
    source: Box<dyn Source>,
    cx: SourceContext,
    emitter: Arc<SourceEmitter>,
    guards: Vec<WriterGuard>,
    stop: CancellationToken,
) -> Result<(), String> {
    tracing::debug!("started");
    // A put abandoned on a reload's stop ends the source cleanly.
    let ran = |r: Result<(), ComponentError>| match r {
        Err(ComponentError::Channel(ChannelError::Stopped)) => Ok(()),
        Err(e) if stop.is_cancelled() && matches!(e, ComponentError::Channel(_)) => {
            tracing::info!("stopped while emitting: {e}");
            Ok(())
        }
        r => r.map_err(|e| e.to_string()),
    };
    let interval = emitter.0.lock().await.tick_interval();
    let result = match interval {
        None => ran(source.run(cx).await),
        Some(every) => {
            // Ticks for the inline processors, stopped (between ticks, never
            // in the middle of one) once the source has returned.
            let done = CancellationToken::new();
            let ticks = async {
                let mut ticker = tokio::time::interval(every);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticker.tick().await;
                loop {
                    tokio::select! {
                        _ = done.cancelled() => return Ok(()),
                        _ = ticker.tick() => {}
                    }
                    emitter.0.lock().await.tick().await?;
                }
            };
            let run = async {
                let r = ran(source.run(cx).await);
                done.cancel();
                r
            };
            let (result, ticked): (_, Result<(), ChannelError>) = tokio::join!(run, ticks);
            result.and(stopped_ok(ticked, &stop).map_err(|e| e.to_string()))
        }
    };
    let finish = emitter.0.lock().await.finish().await;
    let finish = stopped_ok(finish, &stop).map_err(|e| e.to_string());
    drop(guards);
    tracing::debug!("finished");
    result.and(finish)
}

/// `Ok` for a put abandoned on a stop.
fn stopped_ok(r: Result<(), ChannelError>, stop: &CancellationToken) -> Result<(), ChannelError> {
    match r {
        Err(ChannelError::Stopped) if stop.is_cancelled() => Ok(()),
        r => r,
    }
}

/// What a take gave.
pub(crate) enum Taken {
    Batch(Transaction),
    /// Closed and drained, or stopped.
    End,
}

/// Takes up to `max` events, retrying failed takes after a back-off, until
/// `stop`. A permanent failure ([`ChannelError::is_permanent`]) ends the
/// task with an error: no retry can fix it.
pub(crate) async fn take(
    input: &dyn Channel,
    max: usize,
    backoff: &mut Backoff,
    stop: &CancellationToken,
) -> Result<Taken, String> {
    loop {
        let taken = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(Taken::End),
            taken = input.take(max) => taken,
        };
        match taken {
            Ok(Some(txn)) => return Ok(Taken::Batch(txn)),
            Ok(None) => return Ok(Taken::End),
            Err(e) if e.is_permanent() => {
                return Err(format!("cannot take from the input channel: {e}"))
            }
            Err(e) => {
                tracing::warn!("take failed: {e}; retrying");
                if !backoff.wait(stop).await {
                    return Ok(Taken::End);
                }
            }
        }
    }
}

/// Takes a sink's next batch: up to `size` events. With a `timeout` (the
/// sink's `batch_timeout`), a smaller take is joined with the next ones
/// until `size` events are in hand, `timeout` has passed since the first
/// arrived, the input is closed and drained, or the task stops; the events
/// stay taken (in the channel's count) while they wait.
pub(crate) async fn take_batch(
    input: &dyn Channel,
    size: usize,
    timeout: Option<Duration>,
    backoff: &mut Backoff,
    stop: &CancellationToken,
) -> Result<Taken, String> {
    let first = take(input, size, backoff, stop).await?;
    let (Some(timeout), Taken::Batch(txn)) = (timeout, &first) else {
        return Ok(first);
    };
    let mut held = txn.len();
    if held >= size {
        return Ok(first);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let Taken::Batch(txn) = first else {
        return Ok(first);
    };
    let mut parts = vec![txn];
    while held < size {
        let more = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => break,
            () = drained(input) => break,
            more = take(input, size - held, backoff, stop) => more?,
        };
        match more {
            Taken::Batch(t) => {
                held += t.len();
                parts.push(t);
            }
            Taken::End => break,
        }
    }
    Ok(Taken::Batch(Transaction::join(parts)))
}

/// Resolves once `input` is closed with nothing left to take (checked
/// every 20 ms, only while a sink waits to fill a batch).
async fn drained(input: &dyn Channel) {
    while !input.drained() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn run_stage(
    input: Arc<dyn Channel>,
    mut emitter: Emitter,
    metrics: Arc<ComponentMetrics>,
    batch_size: usize,
    guards: Vec<WriterGuard>,
    stop: CancellationToken,
) -> Result<(), String> {
    let mut backoff = Backoff::new();
    let mut ticker = emitter.tick_interval().map(|every| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    // A memory channel cannot give back events moved out of a transaction:
    // a copy is kept for a rollback while the emit may be abandoned.
    let keep_copy = !input.is_durable();
    let closed = || "an output channel closed while the stage was running".to_string();
    loop {
        // Take is cancel safe: a tick that wins the race loses no event.
        let taken = match ticker.as_mut() {
            None => take(&*input, batch_size, &mut backoff, &stop).await?,
            Some(t) => tokio::select! {
                taken = take(&*input, batch_size, &mut backoff, &stop) => taken?,
                _ = t.tick() => {
                    match stopped_ok(emitter.tick().await, &stop) {
                        Ok(()) => continue,
                        Err(ChannelError::Closed(_)) => return Err(closed()),
                        Err(e) => return Err(e.to_string()),
                    }
                }
            },
        };
        let Taken::Batch(mut txn) = taken else {
            break;
        };
        let mut batch = txn.take_batch();
        let copy = keep_copy.then(|| shared_copy(&mut batch));
        metrics.record_in(&batch);
        match emitter.emit(batch).await {
            Ok(()) => {}
            Err(ChannelError::Stopped) => {
                if let Some(copy) = copy {
                    txn.restore(copy);
                }
                txn.rollback();
                tracing::info!("stopped while emitting: the batch is rolled back");
                break;
            }
            Err(ChannelError::Closed(_)) => return Err(closed()),
            Err(e) => return Err(e.to_string()),
        }
        if let Err(e) = txn.commit().await {
            tracing::warn!("commit failed: {e}");
        }
        backoff.reset();
    }
    stopped_ok(emitter.finish().await, &stop).map_err(|e| e.to_string())?;
    drop(guards);
    Ok(())
}

/// A copy of `batch` to roll back with, at the cost of a reference count
/// per event rather than a copy of its fields: each event's fields become
/// shared with the copy, and are copied only by a processor that changes
/// them (one that only reads its input, such as `session`, copies nothing).
fn shared_copy(batch: &mut Batch) -> Batch {
    for e in batch.events.iter_mut().filter(|e| !e.fields.is_empty()) {
        e.fields = std::mem::take(&mut e.fields).into_shared();
    }
    batch.clone()
}

/// Exponential back-off between retries: 100 ms doubling up to 30 s.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Self {
        Backoff {
            next: Duration::from_millis(100),
        }
    }

    /// Waits the next back-off; `false` (at once) when `stop` comes first.
    pub async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let waited = tokio::select! {
            biased;
            _ = stop.cancelled() => false,
            _ = tokio::time::sleep(self.next) => true,
        };
        self.next = (self.next * 2).min(Duration::from_secs(30));
        waited
    }

    pub fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
}

pub(crate) struct SinkRunner {
    pub id: String,
    pub input: Arc<dyn Channel>,
    pub sink: Box<dyn Sink>,
    pub dead_letter: Option<Arc<dyn Channel>>,
    pub metrics: Arc<ComponentMetrics>,
    pub batch_size: usize,
    /// How long a smaller batch may wait to fill (`batch_timeout`).
    pub batch_timeout: Option<Duration>,
    /// The pipeline's shutdown, cancelled on a fatal error.
    pub shutdown: CancellationToken,
    /// This task's stop (a reload).
    pub stop: CancellationToken,
    /// Keeps rejection warnings to one a second.
    pub warn: WarnLimiter,
    pub _guards: Vec<WriterGuard>,
}

impl SinkRunner {
    pub async fn run(mut self) -> Result<(), String> {
        let mut backoff = Backoff::new();
        let later = self.sink.acknowledges_later();
        // Takes written but not yet durable (a sink that acknowledges
        // later), oldest first, each with its number among the writes.
        let mut open = Open::default();
        'batches: loop {
            let taken = if open.is_empty() {
                take_batch(
                    &*self.input,
                    self.batch_size,
                    self.batch_timeout,
                    &mut backoff,
                    &self.stop,
                )
                .await?
            } else {
                let due = open.due(self.sink.sync_interval());
                if due.is_zero() || open.fills_half(&*self.input) {
                    if !self.sync(&mut open, &mut backoff).await? {
                        break 'batches;
                    }
                    continue;
                }
                tokio::select! {
                    taken = take_batch(&*self.input, self.batch_size, self.batch_timeout, &mut backoff, &self.stop) => taken?,
                    _ = tokio::time::sleep(due) => {
                        if !self.sync(&mut open, &mut backoff).await? {
                            break 'batches;
                        }
                        continue;
                    }
                }
            };
            let Taken::Batch(txn) = taken else {
                break;
            };
            self.metrics.record_in(txn.batch());
            loop {
                let started = std::time::Instant::now();
                let written = self.sink.write(txn.batch()).await;
                self.observe_write(&written, started, txn.batch());
                match written {
                    Ok(()) => {
                        self.metrics.record_out(txn.batch());
                        break;
                    }
                    Err(SinkError::Retry(e)) => {
                        // The error may quote what the far end answered.
                        tracing::warn!(
                            events = txn.len(),
                            "write failed: {}; retrying the batch",
                            sluice_core::quote::quoted(&e).max(1000)
                        );
                        if later && !open.is_empty() {
                            // What was written but not durable is lost
                            // with it: all of it is taken again, in order.
                            txn.rollback();
                            open.lost(self.sink.durable());
                            if !backoff.wait(&self.stop).await {
                                break 'batches;
                            }
                            continue 'batches;
                        }
                        if !backoff.wait(&self.stop).await {
                            tracing::info!(
                                events = txn.len(),
                                "stopped while retrying: the batch is rolled back"
                            );
                            txn.rollback();
                            break 'batches;
                        }
                    }
                    Err(SinkError::Rejected(rejected)) => {
                        rejected_events(
                            &self.id,
                            &self.metrics,
                            self.dead_letter.as_ref(),
                            &mut self.warn,
                            txn.batch(),
                            rejected,
                        )
                        .await?;
                        break;
                    }
                    Err(SinkError::Fatal(e)) => {
                        txn.rollback();
                        open.lost(0);
                        self.shutdown.cancel();
                        return Err(e);
                    }
                }
            }
            backoff.reset();
            if later {
                open.push(txn);
                open.acknowledge(self.sink.durable()).await;
            } else if let Err(e) = txn.commit().await {
                tracing::warn!("commit failed: {e}");
            }
        }
        if !open.is_empty() {
            // The input ended or the task is stopping: what is written
            // becomes durable now, or is taken again by the next run.
            if !self.sync(&mut open, &mut backoff).await? {
                open.lost(self.sink.durable());
            }
        }
        loop {
            match self.sink.flush().await {
                Ok(()) => {
                    self.metrics.health.write_succeeded();
                    return Ok(());
                }
                Err(SinkError::Retry(e)) => {
                    self.metrics.health.write_failed(&e);
                    tracing::warn!("flush failed: {e}; retrying");
                    if !backoff.wait(&self.stop).await {
                        // Everything committed was delivered already.
                        tracing::warn!("stopped while retrying the flush");
                        return Ok(());
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Asks a sink that acknowledges later to make what it wrote durable,
    /// retrying after a back-off (what was not durable is taken again
    /// first), and commits the takes it made durable. `false` when the
    /// task was stopped before a sync succeeded (the open takes are then
    /// rolled back).
    async fn sync(&mut self, open: &mut Open, backoff: &mut Backoff) -> Result<bool, String> {
        match self.sink.sync().await {
            Ok(()) => {
                self.metrics.health.write_succeeded();
                open.acknowledge(self.sink.durable()).await;
                backoff.reset();
                Ok(true)
            }
            Err(SinkError::Fatal(e)) => {
                open.lost(0);
                self.shutdown.cancel();
                Err(e)
            }
            Err(e) => {
                let e = e.to_string();
                self.metrics.health.write_failed(&e);
                tracing::warn!(
                    events = open.events,
                    "making the written batches durable failed: {}; they are written again",
                    sluice_core::quote::quoted(&e).max(1000)
                );
                open.lost(self.sink.durable());
                Ok(backoff.wait(&self.stop).await)
            }
        }
    }

    /// Keeps the latency histogram, the health and the tap of one write.
    pub fn observe_write(
        &self,
        result: &Result<(), SinkError>,
        started: std::time::Instant,
        batch: &Batch,
    ) {
        match result {
            Err(SinkError::Retry(e)) => self.metrics.health.write_failed(e),
            Err(SinkError::Fatal(_)) => {}
            Ok(()) | Err(SinkError::Rejected(_)) => {
                self.metrics.batch_latency.observe(started.elapsed());
                self.metrics.health.write_succeeded();
                self.metrics.tap.offer(batch);
            }
        }
    }
}

/// The takes a sink that acknowledges later has written but not yet made
/// durable, oldest first, each with its number among the sink's writes.
#[derive(Default)]
pub(crate) struct Open {
    takes: std::collections::VecDeque<(u64, Transaction, std::time::Instant)>,
    /// Writes counted so far (agrees with the sink's count after a loss).
    written: u64,
    /// Events in `takes`, and their body bytes.
    events: usize,
    bytes: usize,
}

impl Open {
    fn is_empty(&self) -> bool {
        self.takes.is_empty()
    }

    fn push(&mut self, txn: Transaction) {
        self.written += 1;
        self.events += txn.len();
        self.bytes += txn.batch().body_bytes();
        self.takes
            .push_back((self.written, txn, std::time::Instant::now()));
    }

    /// How long until the oldest take has waited `interval`.
    fn due(&self, interval: Duration) -> Duration {
        self.takes
            .front()
            .map_or(interval, |(_, _, at)| interval.saturating_sub(at.elapsed()))
    }

    /// Whether the open takes hold half of what `input` may hold: waiting
    /// longer would stall its writers.
    fn fills_half(&self, input: &dyn Channel) -> bool {
        let stats = input.stats();
        stats.capacity.is_some_and(|c| self.events as u64 * 2 >= c)
            || stats.max_bytes.is_some_and(|m| self.bytes as u64 * 2 >= m)
    }

    /// Commits, in order, the takes of the first `durable` writes.
    async fn acknowledge(&mut self, durable: u64) {
        while self.takes.front().is_some_and(|(n, _, _)| *n <= durable) {
            if let Some((_, txn, _)) = self.takes.pop_front() {
                self.events -= txn.len();
                self.bytes -= txn.batch().body_bytes();
                if let Err(e) = txn.commit().await {
                    tracing::warn!("commit failed: {e}");
                }
            }
        }
    }

    /// The writes after the first `durable` are lost: their takes are
    /// rolled back, newest first, so that they come back in order.
    fn lost(&mut self, durable: u64) {
        while let Some((_, txn, _)) = self.takes.pop_back() {
            txn.rollback();
        }
        self.events = 0;
        self.bytes = 0;
        self.written = durable;
    }
}

/// Handles the events a sink rejected for good: counts what was delivered,
/// and sends the rejected ones to the dead-letter channel or logs them.
pub(crate) async fn rejected_events(
    id: &str,
    metrics: &ComponentMetrics,
    dead_letter: Option<&Arc<dyn Channel>>,
    warn: &mut WarnLimiter,
    batch: &Batch,
    mut rejected: Vec<(usize, String)>,
) -> Result<(), String> {
    rejected.sort_by_key(|(i, _)| *i);
    rejected.dedup_by_key(|(i, _)| *i);
    rejected.retain(|(i, _)| *i < batch.len());
    let delivered = batch.len() - rejected.len();
    metrics
        .events_out
        .fetch_add(delivered as u64, Ordering::Relaxed);
    if rejected.is_empty() {
        return Ok(());
    }
    let mut dead = Batch::with_capacity(rejected.len());
    let mut failures = Vec::with_capacity(rejected.len());
    for (i, (idx, reason)) in rejected.into_iter().enumerate() {
        dead.push(batch.events[idx].clone());
        failures.push((i, reason));
    }
    handle_failures(
        id,
        metrics,
        dead_letter,
        warn,
        "the destination refused them: they are dropped",
        &mut dead,
        failures,
    )
    .await
    .map_err(|e| format!("dead-letter channel refused events: {e}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::testing::Full;
    use sluice_core::channel::{ChannelStats, TransactionHandle};
    use sluice_core::event::Event;

    /// Hands out its batch until committed; counts rollbacks; fails every
    /// take with a permanent error when `broken`.
    #[derive(Default)]
    pub(crate) struct Held {
        pub batch: Mutex<Option<Batch>>,
        pub rollbacks: Arc<AtomicUsize>,
        pub commits: Arc<AtomicUsize>,
        pub broken: bool,
    }

    impl Held {
        /// Holding one batch of one event.
        pub fn one() -> Arc<Held> {
            let held = Held::default();
            *held.batch.lock().unwrap() =
                Some(Batch::from(vec![Event::new("x", Default::default())]));
            Arc::new(held)
        }

        /// The events it holds (given back by a rollback).
        pub fn held(&self) -> Option<usize> {
            self.batch.lock().unwrap().as_ref().map(Batch::len)
        }
    }

    struct Handle {
        owner: Arc<Held>,
    }

    impl TransactionHandle for Handle {
        fn commit<'a>(
            self: Box<Self>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), ChannelError>> + Send + 'a>,
        > {
            self.owner.commits.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
        fn rollback(self: Box<Self>, batch: Option<Batch>) {
            self.owner.rollbacks.fetch_add(1, Ordering::SeqCst);
            *self.owner.batch.lock().unwrap() = batch;
        }
    }

    pub(crate) struct HeldChannel(pub Arc<Held>);

    #[async_trait]
    impl Channel for HeldChannel {
        async fn put(&self, _batch: Batch) -> Result<(), ChannelError> {
            Ok(())
        }
        async fn take(&self, _max: usize) -> Result<Option<Transaction>, ChannelError> {
            if self.0.broken {
                return Err(ChannelError::Broken("the writer thread is gone".into()));
            }
            let taken = self.0.batch.lock().unwrap().take();
            match taken {
                Some(b) => Ok(Some(Transaction::new(
                    b,
                    Box::new(Handle {
                        owner: self.0.clone(),
                    }),
                ))),
                None => std::future::pending().await,
            }
        }
        fn close(&self) {}
        fn stats(&self) -> ChannelStats {
            ChannelStats::default()
        }
    }

    pub(crate) struct Refusing;

    #[async_trait]
    impl Sink for Refusing {
        async fn write(&mut self, _b: &Batch) -> Result<(), SinkError> {
            Err(SinkError::Retry("connection refused".into()))
        }
    }

    fn runner(held: Arc<Held>, stop: CancellationToken) -> SinkRunner {
        SinkRunner {
            id: "s".into(),
            input: Arc::new(HeldChannel(held)),
            sink: Box::new(Refusing),
            dead_letter: None,
            metrics: Arc::default(),
            batch_size: 10,
            batch_timeout: None,
            shutdown: CancellationToken::new(),
            stop,
            warn: WarnLimiter::default(),
            _guards: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_sink_stuck_retrying_stops_at_once_and_rolls_its_batch_back() {
        let held = Held::one();
        let stop = CancellationToken::new();
        let task = tokio::spawn(runner(held.clone(), stop.clone()).run());
        // Let it fail and back off a few times (100, 200, 400 ms ...).
        tokio::time::sleep(Duration::from_millis(350)).await;
        let asked = std::time::Instant::now();
        stop.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        assert!(asked.elapsed() < Duration::from_millis(500));
        assert_eq!(held.rollbacks.load(Ordering::SeqCst), 1);
        assert_eq!(held.commits.load(Ordering::SeqCst), 0);
        assert_eq!(held.held(), Some(1));
    }

    /// Emits one batch, then counts it as saved, as a source records its
    /// checkpoint after `emit` returned.
    struct OneBatch(Arc<AtomicUsize>);

    #[async_trait]
    impl Source for OneBatch {
        async fn run(self: Box<Self>, mut cx: SourceContext) -> Result<(), ComponentError> {
            cx.emit(Batch::from(vec![Event::new("x", Default::default())]))
                .await?;
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_source_stopped_while_its_channel_is_full_ends_cleanly_without_saving() {
        let stop = StopHandle {
            stop: CancellationToken::new(),
            source: Some(CancellationToken::new()),
        };
        let (cx, emitter) = crate::testing::source_context_and_emitter(
            "s",
            std::env::temp_dir(),
            Arc::new(Full),
            stop.source.clone().unwrap_or_default(),
        );
        emitter.0.lock().await.stop = Some(stop.stop.clone());
        let saved = Arc::new(AtomicUsize::new(0));
        let source = Box::new(OneBatch(saved.clone()));
        let task = tokio::spawn(run_source(
            source,
            cx,
            emitter,
            Vec::new(),
            stop.stop.clone(),
        ));
        tokio::task::yield_now().await;
        stop.cancel();
        let ended = tokio::time::timeout(ABANDON_AFTER * 3, task).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        assert_eq!(
            saved.load(Ordering::SeqCst),
            0,
            "nothing recorded as emitted"
        );
    }

    #[tokio::test]
    async fn a_stage_stopped_while_its_output_is_full_gives_its_batch_back() {
        let held = Held::one();
        let stop = CancellationToken::new();
        let metrics: Arc<ComponentMetrics> = Arc::default();
        let mut emitter = Emitter::new(
            "s",
            Vec::new(),
            super::super::emit::Route::Replicating,
            vec![Arc::new(Full)],
            metrics.clone(),
        );
        emitter.stop = Some(stop.clone());
        let input = Arc::new(HeldChannel(held.clone()));
        let stage = tokio::spawn(run_stage(
            input,
            emitter,
            metrics,
            10,
            Vec::new(),
            stop.clone(),
        ));
        tokio::task::yield_now().await;
        stop.cancel();
        let ended = tokio::time::timeout(ABANDON_AFTER * 3, stage).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        assert_eq!(held.rollbacks.load(Ordering::SeqCst), 1);
        assert_eq!(held.commits.load(Ordering::SeqCst), 0);
        // A memory input cannot re-read: the copy kept aside went back.
        assert_eq!(held.held(), Some(1));
    }

    #[test]
    fn a_rollback_copy_keeps_the_fields_a_processor_then_changes() {
        use sluice_core::event::{Event, Timestamp, Value};
        let mut e = Event::new("line", Timestamp(1));
        e.insert("a", Value::from("x"));
        let mut batch = Batch::from(vec![e, Event::new("bare", Timestamp(2))]);
        let copy = shared_copy(&mut batch);
        batch.events[0].insert("a", Value::from("changed"));
        batch.events[0].insert("b", Value::Integer(1));
        batch.events[1].insert("c", Value::Bool(true));
        assert_eq!(copy.events[0].get("a"), Some(&Value::from("x")));
        assert_eq!(copy.events[0].fields.len(), 1);
        assert!(copy.events[1].fields.is_empty());
        assert_eq!(batch.events[0].get("a"), Some(&Value::from("changed")));
    }

    #[tokio::test]
    async fn a_broken_input_fails_the_task_instead_of_retrying() {
        let held = Arc::new(Held {
            broken: true,
            ..Held::default()
        });
        let task = runner(held, CancellationToken::new()).run();
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
        let err = ended.expect("ends at once").expect_err("fails");
        assert!(err.contains("writer thread is gone"), "{err}");
    }
}
