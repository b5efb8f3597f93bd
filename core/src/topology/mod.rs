//! The topology runtime: builds every component of a [`Pipeline`], runs each
//! source, processor stage and sink as a tokio task with channels as the only
//! edges, and tells the shutdown story in one place.
//!
//! # Shutdown
//!
//! * A bounded run ends by itself: when a source's `run` returns, its writer
//!   handles on its channels are dropped; a channel whose last writer is gone
//!   is closed; a stage or sink that finds its input closed and drained
//!   finishes its processors, flushes, drops its own writer handles, and ends.
//!   The run is over when every task has ended.
//! * A stop request (SIGINT/SIGTERM) cancels the sources' shutdown token:
//!   each source emits what it has read, saves its checkpoint and returns;
//!   from there the drain is the same as above. If the drain takes longer
//!   than the drain timeout, the remaining tasks are aborted and the run
//!   reports how many events were left in which channel.
//! * A reload ([`Topology::run_reloading`]) stops only the components whose
//!   declaration changed, each on its own (a source through a child of the
//!   shutdown token, a stage or sink between two batches), and starts their
//!   new versions on the same channels: see [`reload`].

pub(crate) mod emit;
mod group;
pub mod health;
pub mod reload;
pub mod tap;
pub mod view;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::channel::{Channel, ChannelError, ChannelStats, Transaction};
use crate::checkpoint::CheckpointStore;
use crate::config::pipeline::{Pipeline, SelectorSpec};
use crate::event::Batch;
use crate::metrics::{ComponentMetrics, MetricsSnapshot};
use crate::registry::{BuildContext, BuildError};
use crate::sink::{Sink, SinkError};
use crate::source::{Source, SourceContext};
use emit::{handle_failures, ChainLink, Emitter, Route, WarnLimiter};

/// A component's kind, id and type, with its counters.
#[derive(Clone, Debug)]
pub struct ComponentInfo {
    /// `source`, `processor` or `sink`.
    pub kind: &'static str,
    /// Its id in the pipeline file.
    pub id: String,
    /// Its `type`.
    pub type_name: String,
    /// Its counters.
    pub metrics: Arc<ComponentMetrics>,
}

/// A component that could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{kind} `{id}`: {error}")]
pub struct ComponentBuildError {
    /// `source`, `channel`, `processor` or `sink`.
    pub kind: &'static str,
    /// Its id.
    pub id: String,
    /// Why.
    pub error: BuildError,
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Components whose task ended with an error, with the error.
    pub failures: Vec<String>,
    /// Whether the drain timeout passed and tasks were aborted.
    pub timed_out: bool,
    /// Final counters of every component.
    pub components: Vec<(ComponentInfo, MetricsSnapshot)>,
    /// Final state of every channel.
    pub channels: Vec<(String, ChannelStats)>,
}

impl RunReport {
    /// Whether the run ended cleanly.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty() && !self.timed_out
    }
}

/// Closes a channel when the last of its writers is gone.
struct WriterGuard {
    channel: Arc<dyn Channel>,
    writers: Arc<AtomicUsize>,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        if self.writers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.channel.close();
        }
    }
}

#[derive(Clone)]
struct ChannelSlot {
    channel: Arc<dyn Channel>,
    writers: Arc<AtomicUsize>,
}

impl ChannelSlot {
    fn guard(&self) -> WriterGuard {
        self.writers.fetch_add(1, Ordering::AcqRel);
        WriterGuard {
            channel: self.channel.clone(),
            writers: self.writers.clone(),
        }
    }
}

/// One writer guard for each of `channels`.
fn writer_guards(slots: &HashMap<String, ChannelSlot>, channels: &[String]) -> Vec<WriterGuard> {
    channels
        .iter()
        .filter_map(|c| slots.get(c).map(ChannelSlot::guard))
        .collect()
}

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// A built pipeline, ready to run.
pub struct Topology {
    tasks: Vec<(String, tracing::Span, Task)>,
    components: Vec<ComponentInfo>,
    channels: Vec<(String, Arc<dyn Channel>)>,
    shutdown: CancellationToken,
    /// Every channel with its writer count, kept for reloads.
    slots: HashMap<String, ChannelSlot>,
    /// The stop token of each task, by task name (see [`reload`]).
    stops: HashMap<String, CancellationToken>,
    /// What was built.
    pipeline: Pipeline,
    /// What runs, for observers (see [`view`]).
    view: Arc<view::LiveView>,
}

fn context(pipeline: &Pipeline, kind: &str, id: &str) -> BuildContext {
    BuildContext {
        id: id.to_string(),
        pipeline_data_dir: pipeline.data_dir.clone(),
        data_dir: pipeline.data_dir.join(format!("{kind}s")).join(id),
        durable_input: false,
    }
}

fn route(sel: &SelectorSpec, outputs: &[String]) -> Route {
    match sel {
        SelectorSpec::Replicating => Route::Replicating,
        SelectorSpec::Multiplexing {
            field,
            mapping,
            default,
        } => {
            let idx = |ids: &Vec<String>| -> Vec<usize> {
                ids.iter()
                    .filter_map(|c| outputs.iter().position(|o| o == c))
                    .collect()
            };
            Route::Multiplexing {
                field: field.clone(),
                mapping: mapping.iter().map(|(k, v)| (k.clone(), idx(v))).collect(),
                default: idx(default),
            }
        }
    }
}

impl Topology {
    /// Builds every component. Nothing runs yet.
    ///
    /// # Errors
    ///
    /// Every component that failed to build.
    pub fn build(pipeline: &Pipeline) -> Result<Topology, Vec<ComponentBuildError>> {
        let mut errors = Vec::new();
        let shutdown = CancellationToken::new();
        let mut slots: HashMap<String, ChannelSlot> = HashMap::new();
        let mut channels = Vec::new();
        for c in &pipeline.channels {
            match c.config.build(&context(pipeline, "channel", &c.id)) {
                Ok(ch) => {
                    channels.push((c.id.clone(), ch.clone()));
                    slots.insert(
                        c.id.clone(),
                        ChannelSlot {
                            channel: ch,
                            writers: Arc::new(AtomicUsize::new(0)),
                        },
                    );
                }
                Err(error) => errors.push(ComponentBuildError {
                    kind: "channel",
                    id: c.id.clone(),
                    error,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut topology = Self::assemble(pipeline, &slots, shutdown, &|_| true)?;
        topology.channels = channels;
        topology.view = Arc::new(view::LiveView::new(view::Snapshot {
            pipeline: pipeline.clone(),
            components: topology.components.clone(),
            channels: topology.channels.clone(),
        }));
        Ok(topology)
    }

    /// Builds the tasks of the components of `pipeline` whose task name
    /// (`source `id``, `processor `id``, `sink `id``) `wanted` accepts, on
    /// the channels of `slots`. Each task gets its own stop token.
    fn assemble(
        pipeline: &Pipeline,
        slots: &HashMap<String, ChannelSlot>,
        shutdown: CancellationToken,
        wanted: &dyn Fn(&str) -> bool,
    ) -> Result<Topology, Vec<ComponentBuildError>> {
        let mut errors = Vec::new();
        let mut stops = HashMap::new();
        let chan = |id: &str| slots.get(id).map(|s| s.channel.clone());

        let mut components = Vec::new();
        let mut proc_metrics: HashMap<String, Arc<ComponentMetrics>> = HashMap::new();
        for p in pipeline
            .processors
            .iter()
            .filter(|p| reload::processor_wanted(pipeline, p, wanted))
        {
            let m = Arc::new(ComponentMetrics::default());
            proc_metrics.insert(p.id.clone(), m.clone());
            components.push(ComponentInfo {
                kind: "processor",
                id: p.id.clone(),
                type_name: p.type_name.clone(),
                metrics: m,
            });
        }

        let mut tasks: Vec<(String, tracing::Span, Task)> = Vec::new();

        // Builds the chain of inline processors `ids`, adding writer guards
        // for their dead-letter channels.
        let build_chain = |ids: &[String],
                           guards: &mut Vec<WriterGuard>,
                           errors: &mut Vec<ComponentBuildError>,
                           count_io: bool|
         -> Vec<ChainLink> {
            let mut chain = Vec::new();
            for pid in ids {
                let Some(spec) = pipeline.processor(pid) else {
                    continue;
                };
                match spec.config.build(&context(pipeline, "processor", pid)) {
                    Ok(processor) => {
                        let dead_letter = spec.dead_letter.as_deref().and_then(|d| {
                            let slot = slots.get(d)?;
                            guards.push(slot.guard());
                            Some(slot.channel.clone())
                        });
                        chain.push(ChainLink {
                            id: pid.as_str().into(),
                            processor,
                            dead_letter,
                            metrics: proc_metrics.get(pid).cloned().unwrap_or_default(),
                            warn: WarnLimiter::default(),
                            count_io,
                        });
                    }
                    Err(error) => errors.push(ComponentBuildError {
                        kind: "processor",
                        id: pid.clone(),
                        error,
                    }),
                }
            }
            chain
        };

        for s in &pipeline.sources {
            let name = format!("source `{}`", s.id);
            if !wanted(&name) {
                continue;
            }
            let cx = context(pipeline, "source", &s.id);
            let source = match s.config.build(&cx) {
                Ok(src) => src,
                Err(error) => {
                    errors.push(ComponentBuildError {
                        kind: "source",
                        id: s.id.clone(),
                        error,
                    });
                    continue;
                }
            };
            let mut guards = writer_guards(slots, &s.channels);
            let chain = build_chain(&s.processors, &mut guards, &mut errors, true);
            let metrics = Arc::new(ComponentMetrics::default());
            components.push(ComponentInfo {
                kind: "source",
                id: s.id.clone(),
                type_name: s.type_name.clone(),
                metrics: metrics.clone(),
            });
            let outputs = s.channels.iter().filter_map(|c| chan(c)).collect();
            let route = route(&s.selector, &s.channels);
            let emitter = Emitter::new(&s.id, chain, route, outputs, metrics.clone());
            let emitter = Arc::new(tokio::sync::Mutex::new(emitter));
            let metrics_of_source = metrics.clone();
            let scx = SourceContext {
                id: s.id.as_str().into(),
                shutdown: reload::source_stop(&mut stops, &name, &shutdown),
                checkpoints: CheckpointStore::new(cx.data_dir.join("checkpoints.json")),
                data_dir: cx.data_dir.clone(),
                metrics,
                emitter: emitter.clone(),
            };
            let span = tracing::info_span!("source", id = %s.id, r#type = %s.type_name);
            tasks.push((
                name,
                span,
                Box::pin(health::tracked(
                    metrics_of_source,
                    run_source(source, scx, emitter, guards),
                )),
            ));
        }

        for p in pipeline.processors.iter().filter(|p| p.input.is_some()) {
            let name = format!("processor `{}`", p.id);
            if !wanted(&name) {
                continue;
            }
            let Some(input) = p.input.as_deref().and_then(chan) else {
                continue;
            };
            let input = reload::stoppable(&mut stops, &name, input);
            let mut guards = writer_guards(slots, &p.channels);
            let chain = build_chain(std::slice::from_ref(&p.id), &mut guards, &mut errors, false);
            let metrics = proc_metrics.get(&p.id).cloned().unwrap_or_default();
            let outputs = p.channels.iter().filter_map(|c| chan(c)).collect();
            let route = route(&p.selector, &p.channels);
            let emitter = Emitter::new(&p.id, chain, route, outputs, metrics.clone());
            let span = tracing::info_span!("processor", id = %p.id, r#type = %p.type_name);
            let stage = run_stage(input, emitter, metrics.clone(), p.batch_size, guards);
            tasks.push((name, span, Box::pin(health::tracked(metrics, stage))));
        }

        // Runners of sinks that belong to a group: the group runs them.
        let mut grouped: HashMap<String, SinkRunner> = HashMap::new();
        for s in &pipeline.sinks {
            let name = format!("sink `{}`", s.id);
            // A sink of a group runs inside the group's task: the group is
            // what a reload stops and starts.
            let task = match pipeline
                .sink_groups
                .iter()
                .find(|g| g.sinks.contains(&s.id))
            {
                Some(g) => group::task_name(&g.id),
                None => name.clone(),
            };
            if !wanted(&task) {
                continue;
            }
            let Some(input) = chan(&s.channel) else {
                continue;
            };
            let input = reload::stoppable(&mut stops, &name, input);
            let mut cx = context(pipeline, "sink", &s.id);
            cx.durable_input = input.is_durable();
            let sink = match s.config.build(&cx) {
                Ok(sink) => sink,
                Err(error) => {
                    errors.push(ComponentBuildError {
                        kind: "sink",
                        id: s.id.clone(),
                        error,
                    });
                    continue;
                }
            };
            let mut guards = Vec::new();
            let dead_letter = s.dead_letter.as_deref().and_then(|d| {
                let slot = slots.get(d)?;
                guards.push(slot.guard());
                Some(slot.channel.clone())
            });
            let metrics = Arc::new(ComponentMetrics::default());
            components.push(ComponentInfo {
                kind: "sink",
                id: s.id.clone(),
                type_name: s.type_name.clone(),
                metrics: metrics.clone(),
            });
            let runner = SinkRunner {
                id: s.id.clone(),
                input,
                sink,
                dead_letter,
                metrics: metrics.clone(),
                batch_size: s.batch_size,
                shutdown: shutdown.clone(),
                warn: WarnLimiter::default(),
                _guards: guards,
            };
            if pipeline.sink_groups.iter().any(|g| g.sinks.contains(&s.id)) {
                grouped.insert(s.id.clone(), runner);
                continue;
            }
            let span = tracing::info_span!("sink", id = %s.id, r#type = %s.type_name);
            let task = health::tracked(metrics, runner.run());
            tasks.push((name, span, Box::pin(task)));
        }
        tasks.extend(group::tasks(pipeline, &mut grouped));

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Topology {
            tasks,
            components,
            channels: Vec::new(),
            shutdown,
            slots: slots.clone(),
            stops,
            pipeline: pipeline.clone(),
            view: Arc::new(view::LiveView::new(view::Snapshot {
                pipeline: pipeline.clone(),
                components: Vec::new(),
                channels: Vec::new(),
            })),
        })
    }

    /// What runs, kept up to date through reloads: for observers such as
    /// the HTTP API. Take it before [`run`](Self::run).
    pub fn live_view(&self) -> Arc<view::LiveView> {
        self.view.clone()
    }

    /// Every component with its counters (live while the topology runs).
    pub fn components(&self) -> &[ComponentInfo] {
        &self.components
    }

    /// Every channel by id.
    pub fn channels(&self) -> &[(String, Arc<dyn Channel>)] {
        &self.channels
    }

    /// Runs until every task has ended, or until `stop` resolves; then drains
    /// for at most `drain_timeout` and aborts what is left.
    pub async fn run(
        self,
        stop: impl std::future::Future<Output = ()> + Send,
        drain_timeout: Duration,
    ) -> RunReport {
        self.run_reloading(stop, drain_timeout, None).await
    }

    /// Like [`run`](Self::run), and meanwhile applies every pipeline that
    /// arrives on `reloads` (see [`reload`]).
    pub async fn run_reloading(
        self,
        stop: impl std::future::Future<Output = ()> + Send,
        drain_timeout: Duration,
        mut reloads: Option<tokio::sync::mpsc::Receiver<Pipeline>>,
    ) -> RunReport {
        let Topology {
            tasks,
            mut components,
            mut channels,
            shutdown,
            slots,
            stops,
            pipeline,
            view,
        } = self;
        let mut set = JoinSet::new();
        let mut names = HashMap::new();
        reload::spawn(&mut set, &mut names, tasks);
        let mut reloader = reload::Reloader::new(pipeline, slots, stops, shutdown.clone());
        macro_rules! live {
            () => {
                &mut reload::Live {
                    set: &mut set,
                    names: &mut names,
                    components: &mut components,
                    channels: &mut channels,
                }
            };
        }
        let mut report = RunReport::default();
        tokio::pin!(stop);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                next = set.join_next_with_id() => match next {
                    None => break,
                    Some(Ok((id, Ok(())))) => {
                        let name = names.remove(&id).unwrap_or_default();
                        reloader.ended(&name, live!());
                    }
                    Some(Ok((id, Err(e)))) => {
                        let name = names.remove(&id).unwrap_or_default();
                        tracing::error!("{name} failed: {e}");
                        report.failures.push(format!("{name}: {e}"));
                        reloader.ended(&name, live!());
                    }
                    Some(Err(e)) => {
                        let name = names.remove(&e.id()).unwrap_or_default();
                        tracing::error!("{name} panicked: {e}");
                        report.failures.push(format!("{name}: {e}"));
                        reloader.ended(&name, live!());
                    }
                },
                Some(next) = reload::next(&mut reloads), if deadline.is_none() => {
                    reloader.request(next, live!());
                }
                _ = &mut stop, if deadline.is_none() => {
                    tracing::info!(drain_timeout = ?drain_timeout, "stopping: sources stop, channels drain, sinks flush");
                    shutdown.cancel();
                    deadline = Some(tokio::time::Instant::now() + drain_timeout);
                }
                _ = sleep => {
                    let mut left: Vec<String> = names.values().cloned().collect();
                    left.sort();
                    for (id, ch) in &channels {
                        let n = ch.stats().events;
                        if n > 0 {
                            tracing::error!(channel = %id, events = n, "drain timeout: events left in channel");
                        }
                    }
                    tracing::error!(unfinished = ?left, "drain timeout passed; aborting");
                    report.timed_out = true;
                    set.abort_all();
                    while set.join_next().await.is_some() {}
                    break;
                }
            }
            view.publish(reloader.pipeline(), &components, &channels);
        }
        report.components = components
            .iter()
            .map(|c| (c.clone(), c.metrics.snapshot()))
            .collect();
        report.channels = channels
            .iter()
            .map(|(id, ch)| (id.clone(), ch.stats()))
            .collect();
        report
    }
}

async fn run_source(
    source: Box<dyn Source>,
    cx: SourceContext,
    emitter: Arc<tokio::sync::Mutex<Emitter>>,
    guards: Vec<WriterGuard>,
) -> Result<(), String> {
    tracing::debug!("started");
    let interval = emitter.lock().await.tick_interval();
    let result = match interval {
        None => source.run(cx).await.map_err(|e| e.to_string()),
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
                    emitter.lock().await.tick().await?;
                }
            };
            let run = async {
                let r = source.run(cx).await.map_err(|e| e.to_string());
                done.cancel();
                r
            };
            let (result, ticked): (_, Result<(), ChannelError>) = tokio::join!(run, ticks);
            result.and(ticked.map_err(|e| e.to_string()))
        }
    };
    let finish = emitter
        .lock()
        .await
        .finish()
        .await
        .map_err(|e| e.to_string());
    drop(guards);
    tracing::debug!("finished");
    result.and(finish)
}

async fn run_stage(
    input: Arc<dyn Channel>,
    mut emitter: Emitter,
    metrics: Arc<ComponentMetrics>,
    batch_size: usize,
    guards: Vec<WriterGuard>,
) -> Result<(), String> {
    let mut backoff = Backoff::new();
    let mut ticker = emitter.tick_interval().map(|every| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        // Take is cancel safe: a tick that wins the race loses no event.
        let taken = match ticker.as_mut() {
            None => take_retrying(&*input, batch_size, &mut backoff).await,
            Some(t) => tokio::select! {
                taken = take_retrying(&*input, batch_size, &mut backoff) => taken,
                _ = t.tick() => {
                    match emitter.tick().await {
                        Ok(()) => continue,
                        Err(ChannelError::Closed(_)) => {
                            return Err("an output channel closed while the stage was running".into())
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
            },
        };
        let Some(mut txn) = taken else {
            break;
        };
        let batch = txn.take_batch();
        metrics.record_in(&batch);
        match emitter.emit(batch).await {
            Ok(()) => {}
            Err(ChannelError::Closed(_)) => {
                return Err("an output channel closed while the stage was running".into())
            }
            Err(e) => return Err(e.to_string()),
        }
        if let Err(e) = txn.commit().await {
            tracing::warn!("commit failed: {e}");
        }
        backoff.reset();
    }
    emitter.finish().await.map_err(|e| e.to_string())?;
    drop(guards);
    Ok(())
}

/// Takes up to `max` events, retrying failed takes after a back-off;
/// `None` once the channel is closed and drained.
async fn take_retrying(
    input: &dyn Channel,
    max: usize,
    backoff: &mut Backoff,
) -> Option<Transaction> {
    loop {
        match input.take(max).await {
            Ok(taken) => return taken,
            Err(e) => {
                tracing::warn!("take failed: {e}; retrying");
                backoff.wait().await;
            }
        }
    }
}

/// Exponential back-off between retries: 100 ms doubling up to 30 s.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: Duration::from_millis(100),
        }
    }
    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(30));
    }
    fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
}

struct SinkRunner {
    id: String,
    input: Arc<dyn Channel>,
    sink: Box<dyn Sink>,
    dead_letter: Option<Arc<dyn Channel>>,
    metrics: Arc<ComponentMetrics>,
    batch_size: usize,
    shutdown: CancellationToken,
    /// Keeps rejection warnings to one a second.
    warn: WarnLimiter,
    _guards: Vec<WriterGuard>,
}

impl SinkRunner {
    async fn run(mut self) -> Result<(), String> {
        let mut backoff = Backoff::new();
        loop {
            let Some(txn) = take_retrying(&*self.input, self.batch_size, &mut backoff).await else {
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
                            crate::quote::quoted(&e).max(1000)
                        );
                        backoff.wait().await;
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
                        self.shutdown.cancel();
                        return Err(e);
                    }
                }
            }
            backoff.reset();
            if let Err(e) = txn.commit().await {
                tracing::warn!("commit failed: {e}");
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
                    backoff.wait().await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

impl SinkRunner {
    /// Keeps the latency histogram, the health and the tap of one write.
    fn observe_write(
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

/// Handles the events a sink rejected for good: counts what was delivered,
/// and sends the rejected ones to the dead-letter channel or logs them.
async fn rejected_events(
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

/// Builds and runs a pipeline: the whole of `sluice run` after validation.
///
/// # Errors
///
/// The components that failed to build.
pub async fn run_pipeline(
    pipeline: &Pipeline,
    stop: impl std::future::Future<Output = ()> + Send,
    drain_timeout: Duration,
) -> Result<RunReport, Vec<ComponentBuildError>> {
    let topology = Topology::build(pipeline)?;
    Ok(topology.run(stop, drain_timeout).await)
}
