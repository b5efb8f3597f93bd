//! The output side shared by sources and processor stages: run the inline
//! processor chain, hand failures to the dead-letter channel, apply the
//! selector, and put into the channels.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::parallel;
use sluice_core::channel::{Channel, ChannelError};
use sluice_core::event::{Batch, Event, Value};
use sluice_core::metrics::ComponentMetrics;
use sluice_core::processor::{ProcessContext, Processor};
use sluice_core::source::Emit;
use sluice_core::warn::WarnLimiter;

/// One processor of an inline chain, with what the runtime needs around it.
pub(crate) struct ChainLink {
    pub id: Arc<str>,
    pub processor: Box<dyn Processor>,
    pub dead_letter: Option<Arc<dyn Channel>>,
    pub metrics: Arc<ComponentMetrics>,
    /// Keeps failure warnings to one a second.
    pub warn: WarnLimiter,
    /// Count events in and out on `metrics` (inline processors); a stage's
    /// own task counts them instead.
    pub count_io: bool,
    /// More instances of a stateless processor, one per extra thread a
    /// batch may be split over (see [`parallel`]); empty for one thread.
    pub replicas: Vec<Box<dyn Processor>>,
    /// Split every batch large enough (`workers: N`), rather than only
    /// those whose measured cost is worth the hand-over (`auto`).
    pub always_split: bool,
    /// Nanoseconds per event this link took lately (a moving average).
    pub cost: f64,
}

impl ChainLink {
    /// A link of one thread, counting its events when `count_io`.
    pub fn new(
        id: &str,
        processor: Box<dyn Processor>,
        dead_letter: Option<Arc<dyn Channel>>,
        metrics: Arc<ComponentMetrics>,
        count_io: bool,
    ) -> Self {
        ChainLink {
            id: id.into(),
            processor,
            dead_letter,
            metrics,
            warn: WarnLimiter::default(),
            count_io,
            replicas: Vec::new(),
            always_split: false,
            cost: 0.0,
        }
    }
}

/// Where events go after the chain.
pub(crate) enum Route {
    /// Every event to every output.
    Replicating,
    /// By the text of one field.
    Multiplexing {
        field: String,
        mapping: HashMap<String, Vec<usize>>,
        default: Vec<usize>,
    },
}

/// Runs a chain, routes, puts.
pub(crate) struct Emitter {
    pub owner: Arc<str>,
    pub chain: Vec<ChainLink>,
    pub route: Route,
    pub outputs: Vec<Arc<dyn Channel>>,
    pub metrics: Arc<ComponentMetrics>,
    pub cx: ProcessContext,
    /// Reused for the text of a non-string routing field.
    pub key: String,
    /// The task's stop token: once cancelled, a put still blocked after
    /// [`ABANDON_AFTER`](super::runner::ABANDON_AFTER) is abandoned with
    /// [`ChannelError::Stopped`].
    pub stop: Option<tokio_util::sync::CancellationToken>,
}

impl Emitter {
    /// An emitter for `owner` writing to `outputs`.
    pub fn new(
        owner: &str,
        chain: Vec<ChainLink>,
        route: Route,
        outputs: Vec<Arc<dyn Channel>>,
        metrics: Arc<ComponentMetrics>,
    ) -> Self {
        Emitter {
            owner: owner.into(),
            chain,
            route,
            outputs,
            metrics,
            cx: ProcessContext::new(),
            key: String::new(),
            stop: None,
        }
    }

    /// Puts `batch` into output `i`, abandoning a put that blocks too long
    /// after the stop (see [`Emitter::stop`]).
    async fn put(&mut self, i: usize, batch: Batch) -> Result<(), ChannelError> {
        let ch = &self.outputs[i];
        let Some(stop) = &self.stop else {
            return ch.put(batch).await;
        };
        tokio::select! {
            biased;
            put = ch.put(batch) => put,
            _ = super::runner::abandon(stop) => Err(ChannelError::Stopped),
        }
    }

    /// Runs the chain over `batch`, then routes and puts it.
    pub async fn emit(&mut self, mut batch: Batch) -> Result<(), ChannelError> {
        let mut i = 0;
        while i < self.chain.len() {
            match parallel::plan(&self.chain[i..], batch.len()) {
                Some(split) => {
                    self.run_split(i, split, &mut batch).await?;
                    i += split.links;
                }
                None => {
                    let started = std::time::Instant::now();
                    let n = batch.len();
                    self.run_link(i, &mut batch).await?;
                    if !self.chain[i].replicas.is_empty() {
                        parallel::observe(&mut self.chain[i], started.elapsed(), n);
                    }
                    i += 1;
                }
            }
            if batch.is_empty() {
                return Ok(());
            }
        }
        self.route_and_put(batch).await
    }

    /// Runs links `i..i + split.links` over `batch` split into
    /// `split.parts` on as many threads, then reports each link's failures
    /// in order.
    async fn run_split(
        &mut self,
        i: usize,
        split: parallel::Split,
        batch: &mut Batch,
    ) -> Result<(), ChannelError> {
        let links = &mut self.chain[i..i + split.links];
        let failed = parallel::run(links, split.parts, batch);
        for (link, failed) in links.iter_mut().zip(failed) {
            failed
                .report(
                    &link.id,
                    link.dead_letter.as_ref(),
                    &mut link.warn,
                    "they are passed on unchanged",
                )
                .await?;
        }
        Ok(())
    }

    /// Flushes every processor of the chain (end of input), passing what each
    /// emits through the rest of the chain, then routes it.
    pub async fn finish(&mut self) -> Result<(), ChannelError> {
        for i in 0..self.chain.len() {
            let mut out = Batch::new();
            self.chain[i].processor.finish(&mut out);
            if out.is_empty() {
                continue;
            }
            for j in i + 1..self.chain.len() {
                self.run_link(j, &mut out).await?;
            }
            self.route_and_put(out).await?;
        }
        Ok(())
    }

    /// The shortest tick interval of the chain's processors, if any wants ticks.
    pub fn tick_interval(&self) -> Option<std::time::Duration> {
        self.chain
            .iter()
            .filter_map(|l| l.processor.tick_interval())
            .min()
    }

    /// Ticks every processor of the chain that wants ticks, passing what each
    /// emits through the rest of the chain, then routes it.
    pub async fn tick(&mut self) -> Result<(), ChannelError> {
        let now = sluice_core::event::Timestamp::now();
        for i in 0..self.chain.len() {
            if self.chain[i].processor.tick_interval().is_none() {
                continue;
            }
            let mut out = Batch::new();
            self.chain[i].processor.tick(now, &mut out);
            if out.is_empty() {
                continue;
            }
            for j in i + 1..self.chain.len() {
                self.run_link(j, &mut out).await?;
                if out.is_empty() {
                    break;
                }
            }
            self.route_and_put(out).await?;
        }
        Ok(())
    }

    async fn run_link(&mut self, i: usize, batch: &mut Batch) -> Result<(), ChannelError> {
        let link = &mut self.chain[i];
        if link.count_io {
            link.metrics.record_in(batch);
        }
        let before = batch.len();
        self.cx.set_metrics(link.metrics.clone());
        link.processor.process(batch, &mut self.cx);
        // What the processor dropped on purpose (a filter); failures are
        // counted as errors, not here.
        if batch.len() < before {
            link.metrics.record_discarded(before - batch.len());
        }
        let failures = self.cx.take_failures();
        if !failures.is_empty() {
            handle_failures(
                &link.id,
                &link.metrics,
                link.dead_letter.as_ref(),
                &mut link.warn,
                "they are passed on unchanged",
                batch,
                failures,
            )
            .await?;
        }
        if link.count_io {
            link.metrics.record_out(batch);
            link.metrics.tap.offer(batch);
        }
        Ok(())
    }

    async fn route_and_put(&mut self, batch: Batch) -> Result<(), ChannelError> {
        if batch.is_empty() || self.outputs.is_empty() {
            return Ok(());
        }
        self.metrics.tap.offer(&batch);
        match &self.route {
            Route::Replicating => {
                let n = self.outputs.len();
                self.metrics.record_out(&batch);
                for i in 0..n {
                    if i + 1 == n {
                        return self.put(i, batch).await;
                    }
                    self.put(i, batch.clone()).await?;
                }
                Ok(())
            }
            Route::Multiplexing {
                field,
                mapping,
                default,
            } => {
                let mut per: Vec<Vec<Event>> =
                    (0..self.outputs.len()).map(|_| Vec::new()).collect();
                let (total, total_bytes) = (batch.len(), batch.body_bytes());
                let (mut unrouted, mut unrouted_bytes) = (0usize, 0usize);
                for event in batch {
                    let targets = match event.get(field) {
                        Some(Value::String(b)) => std::str::from_utf8(b)
                            .ok()
                            .and_then(|s| mapping.get(s))
                            .unwrap_or(default),
                        Some(v) => {
                            self.key.clear();
                            v.write_text(&mut self.key);
                            mapping.get(self.key.as_str()).unwrap_or(default)
                        }
                        None => default,
                    };
                    match targets.split_last() {
                        None => {
                            unrouted += 1;
                            unrouted_bytes += event.body.len();
                        }
                        Some((last, rest)) => {
                            for t in rest {
                                per[*t].push(event.clone());
                            }
                            per[*last].push(event);
                        }
                    }
                }
                // Each event emitted counts once, whatever number of channels it went to.
                self.metrics
                    .events_out
                    .fetch_add((total - unrouted) as u64, Relaxed);
                self.metrics
                    .bytes_out
                    .fetch_add((total_bytes - unrouted_bytes) as u64, Relaxed);
                if unrouted > 0 {
                    self.metrics.record_discarded(unrouted);
                    tracing::debug!(component = %self.owner, unrouted, "events matched no mapping and there is no default");
                }
                for (i, events) in per.into_iter().enumerate() {
                    if !events.is_empty() {
                        self.put(i, Batch::from(events)).await?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// A source's emitter, shared by its task (ticks, `finish`) and its
/// [`SourceContext`](sluice_core::source::SourceContext).
pub(crate) struct SourceEmitter(pub tokio::sync::Mutex<Emitter>);

#[async_trait::async_trait]
impl Emit for SourceEmitter {
    async fn emit(&self, batch: Batch) -> Result<(), ChannelError> {
        let mut emitter = self.0.lock().await;
        emitter.metrics.record_in(&batch);
        emitter.emit(batch).await
    }

    async fn emit_before(
        &self,
        batch: Batch,
        deadline: tokio::time::Instant,
    ) -> Result<bool, ChannelError> {
        let Ok(mut emitter) = tokio::time::timeout_at(deadline, self.0.lock()).await else {
            return Ok(false);
        };
        let single = emitter.chain.is_empty()
            && emitter.outputs.len() == 1
            && matches!(emitter.route, Route::Replicating);
        if !single {
            emitter.metrics.record_in(&batch);
            return emitter.emit(batch).await.map(|()| true);
        }
        let out = emitter.outputs[0].clone();
        let tapped = emitter.metrics.tap.is_tapped().then(|| batch.clone());
        let (n, bytes) = (batch.len() as u64, batch.body_bytes() as u64);
        match tokio::time::timeout_at(deadline, out.put(batch)).await {
            Err(_) => Ok(false),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => {
                let m = &emitter.metrics;
                m.events_in.fetch_add(n, Relaxed);
                m.bytes_in.fetch_add(bytes, Relaxed);
                m.events_out.fetch_add(n, Relaxed);
                m.bytes_out.fetch_add(bytes, Relaxed);
                if let Some(b) = tapped {
                    m.tap.offer(&b);
                }
                Ok(true)
            }
        }
    }
}

/// Moves failed events to the dead-letter channel (tagged with `error` and
/// `component`), or counts them and logs (at most once a second) `outcome`:
/// what becomes of them.
pub(crate) async fn handle_failures(
    component: &str,
    metrics: &ComponentMetrics,
    dead_letter: Option<&Arc<dyn Channel>>,
    warn: &mut WarnLimiter,
    outcome: &'static str,
    batch: &mut Batch,
    failures: Vec<(usize, String)>,
) -> Result<(), ChannelError> {
    Failed::sort_out(component, metrics, dead_letter.is_some(), batch, failures)
        .report(component, dead_letter, warn, outcome)
        .await
}

/// The failures of one processor over one batch, sorted out of it.
#[derive(Default)]
pub(crate) struct Failed {
    /// How many events failed.
    pub(super) count: usize,
    /// With a dead letter: the failed events, tagged, in order.
    pub(super) dead: Vec<Event>,
    /// Without: the first failure's reason and event body, for the warning.
    first: Option<(String, bytes::Bytes)>,
}

impl Failed {
    /// Counts `failures` (indexes into `batch` with their reasons) as
    /// errors and, when the failed events go to a dead letter, moves them
    /// out of `batch`, tagged with `error` and `component`.
    pub fn sort_out(
        component: &str,
        metrics: &ComponentMetrics,
        to_dead_letter: bool,
        batch: &mut Batch,
        mut failures: Vec<(usize, String)>,
    ) -> Failed {
        failures.sort_by_key(|(i, _)| *i);
        failures.dedup_by_key(|(i, _)| *i);
        metrics.record_errors(failures.len());
        let count = failures.len();
        if !to_dead_letter {
            let first = failures.into_iter().next().map(|(idx, reason)| {
                let body = batch.events.get(idx).map(|e| e.body.clone());
                (reason, body.unwrap_or_default())
            });
            return Failed {
                count,
                dead: Vec::new(),
                first,
            };
        }
        let mut dead = Vec::with_capacity(count);
        let mut kept = Vec::with_capacity(batch.len() - count.min(batch.len()));
        let mut fi = failures.into_iter().peekable();
        for (i, mut event) in std::mem::take(&mut batch.events).into_iter().enumerate() {
            if fi.peek().is_some_and(|(j, _)| *j == i) {
                let (_, reason) = fi.next().unwrap_or_default();
                event.insert("error", reason);
                event.insert("component", component);
                dead.push(event);
            } else {
                kept.push(event);
            }
        }
        batch.events = kept;
        Failed {
            count,
            dead,
            first: None,
        }
    }

    /// Adds the failures of the next part of the same batch.
    pub fn append(&mut self, mut next: Failed) {
        self.count += next.count;
        self.dead.append(&mut next.dead);
        if self.first.is_none() {
            self.first = next.first;
        }
    }

    /// Puts the failed events into the dead letter, or logs (at most once
    /// a second) that events failed and `outcome`.
    pub async fn report(
        self,
        component: &str,
        dead_letter: Option<&Arc<dyn Channel>>,
        warn: &mut WarnLimiter,
        outcome: &'static str,
    ) -> Result<(), ChannelError> {
        if self.count == 0 {
            return Ok(());
        }
        let Some(dlq) = dead_letter else {
            let (Some((reason, body)), Some(held_back)) = (self.first, warn.allow()) else {
                return Ok(());
            };
            tracing::warn!(
                component,
                failed = self.count,
                first_error = %sluice_core::quote::quoted(&reason).max(500),
                first_event = %sluice_core::quote::quoted(&body[..]),
                warnings_held_back = held_back,
                "events failed; {outcome} (configure `dead_letter` to keep them apart)"
            );
            return Ok(());
        };
        if self.dead.is_empty() {
            return Ok(());
        }
        dlq.put(Batch::from(self.dead)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use sluice_core::event::{Event, Timestamp};

    struct Scorer;
    impl Processor for Scorer {
        fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext) {
            cx.set_gauge("anomaly_score", batch.len() as f64 / 10.0);
        }
    }

    #[tokio::test]
    async fn a_processor_sets_its_own_gauges_through_its_context() {
        let own = Arc::new(ComponentMetrics::default());
        let link = ChainLink::new("score", Box::new(Scorer), None, own.clone(), true);
        let source = Arc::new(ComponentMetrics::default());
        let mut emitter = Emitter::new(
            "src",
            vec![link],
            Route::Replicating,
            Vec::new(),
            source.clone(),
        );
        let mut batch = Batch::new();
        for i in 0..3 {
            batch.push(Event::new(i.to_string(), Timestamp::now()));
        }
        emitter.emit(batch).await.expect("emit");
        assert_eq!(
            own.gauges.snapshot(),
            vec![("anomaly_score".to_string(), 0.3)]
        );
        assert!(source.gauges.snapshot().is_empty());
    }

    fn batch(n: usize) -> Batch {
        let mut b = Batch::new();
        for i in 0..n {
            b.push(Event::new(i.to_string(), Timestamp::now()));
        }
        b
    }

    #[tokio::test]
    async fn emit_before_gives_up_a_put_into_a_full_channel_counting_nothing() {
        use crate::testing::{source_context, Collector, Full};
        use std::time::Duration;
        use tokio::time::Instant;
        use tokio_util::sync::CancellationToken;
        let counts = |cx: &sluice_core::source::SourceContext| {
            let m = &cx.metrics;
            (m.events_in.load(Relaxed), m.events_out.load(Relaxed))
        };
        let dir = std::env::temp_dir();

        let mut cx = source_context("s", &dir, Arc::new(Full), CancellationToken::new());
        let deadline = Instant::now() + Duration::from_millis(30);
        assert!(!cx.emit_before(batch(3), deadline).await.expect("no error"));
        assert_eq!(counts(&cx), (0, 0));

        let out = Collector::new();
        let mut cx = source_context("s", &dir, out.clone(), CancellationToken::new());
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(cx.emit_before(batch(3), deadline).await.expect("no error"));
        assert_eq!(out.events().len(), 3);
        assert_eq!(counts(&cx), (3, 3));
    }
}
