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
//! * A reload ([`Topology::run_reloading`]) stops only the tasks whose
//!   declaration changed, each through its own stop handle (see
//!   `runner.rs`: a source stops reading; a stage, sink or group ends
//!   between two batches or at once while it waits to retry), and starts
//!   their new versions on the same channels: see [`reload`].
//!
//! # Layout
//!
//! [`plan`] (pure: which tasks, keyed by [`TaskKey`], what each touches and
//! holds) → `start.rs` (builds the components of chosen tasks) →
//! `runner.rs`, `group.rs`, `emit.rs` (the task loops) → this file (the run
//! loop: spawn, join, stop, drain) and [`reload`] (compare plans, stop,
//! start).

pub(crate) mod emit;
mod group;
mod health;
#[cfg(test)]
mod later_tests;
mod parallel;
pub mod plan;
pub mod reload;
mod runner;
mod start;
pub mod view;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;
use plan::context;
pub use plan::TaskKey;
use runner::StopHandle;
use sluice_core::channel::{Channel, ChannelStats};
use sluice_core::metrics::{ComponentMetrics, MetricsSnapshot};
use sluice_core::registry::BuildError;
use start::Spawn;

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

/// A channel with the number of its writers, which closes it when the
/// last one is gone.
#[derive(Clone)]
struct ChannelSlot {
    channel: Arc<dyn Channel>,
    writers: Arc<AtomicUsize>,
}

impl ChannelSlot {
    fn new(channel: Arc<dyn Channel>) -> Self {
        ChannelSlot {
            channel,
            writers: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn guard(&self) -> WriterGuard {
        self.writers.fetch_add(1, Ordering::AcqRel);
        WriterGuard {
            channel: self.channel.clone(),
            writers: self.writers.clone(),
        }
    }
}

/// A built pipeline, ready to run.
pub struct Topology {
    tasks: Vec<Spawn>,
    components: Vec<ComponentInfo>,
    channels: Vec<(String, Arc<dyn Channel>)>,
    shutdown: CancellationToken,
    /// Every channel with its writer count, kept for reloads.
    slots: HashMap<String, ChannelSlot>,
    /// The stop handle of each task (see [`reload`]).
    stops: HashMap<TaskKey, StopHandle>,
    /// What was built.
    pipeline: Pipeline,
    /// What runs, for observers (see [`view`]).
    view: Arc<view::LiveView>,
}

impl Topology {
    /// Builds every channel, then every task of the [`plan`] of `pipeline`
    /// (each component's `build` runs here). Nothing runs yet.
    ///
    /// Channels and components may do blocking I/O while they are built
    /// (open and lock files): from async code, call this on a blocking
    /// thread (`tokio::task::spawn_blocking`).
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
                    slots.insert(c.id.clone(), ChannelSlot::new(ch));
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
        let keys = plan::plan(pipeline).into_keys().collect();
        let started = start::start(pipeline, &slots, &shutdown, &keys)?;
        let view = Arc::new(view::LiveView::new(view::Snapshot {
            pipeline: pipeline.clone(),
            components: started.components.clone(),
            channels: channels.clone(),
        }));
        Ok(Topology {
            tasks: started.tasks,
            components: started.components,
            channels,
            shutdown,
            slots,
            stops: started.stops,
            pipeline: pipeline.clone(),
            view,
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
                    view: &view,
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
                next = set.join_next_with_id() => {
                    let (id, result) = match next {
                        None => break,
                        Some(Ok((id, result))) => (id, result),
                        Some(Err(e)) => (e.id(), Err(format!("panicked: {e}"))),
                    };
                    let key = names.remove(&id);
                    let name = key.as_ref().map_or_else(|| "a task".to_string(), ToString::to_string);
                    if let Err(e) = result {
                        tracing::error!("{name} failed: {e}");
                        report.failures.push(format!("{name}: {e}"));
                    }
                    if let Some(key) = key {
                        reloader.ended(&key, live!()).await;
                    }
                }
                Some(next) = reload::next(&mut reloads), if deadline.is_none() => {
                    reloader.request(next, live!()).await;
                }
                _ = &mut stop, if deadline.is_none() => {
                    tracing::info!(drain_timeout = ?drain_timeout, "stopping: sources stop, channels drain, sinks flush");
                    shutdown.cancel();
                    deadline = Some(tokio::time::Instant::now() + drain_timeout);
                }
                _ = sleep => {
                    let mut left: Vec<String> = names.values().map(ToString::to_string).collect();
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
        // The last handles on the channels: a durable channel joins its
        // writer thread and syncs when dropped, off the executor.
        let _ = tokio::task::spawn_blocking(move || drop((channels, reloader))).await;
        report
    }
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
    let p = pipeline.clone();
    let topology = tokio::task::spawn_blocking(move || Topology::build(&p))
        .await
        .map_err(|e| {
            vec![ComponentBuildError {
                kind: "pipeline",
                id: String::new(),
                error: BuildError::Other(format!("building panicked: {e}")),
            }]
        })??;
    Ok(topology.run(stop, drain_timeout).await)
}
